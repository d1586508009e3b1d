#include "cli/seccomp_table.h"

#include <gtest/gtest.h>

#include <cstring>

namespace togo::cli {
namespace {

// The table compiled into togo is the filter the builder makes today: a
// stale table (the builder changed, the table was not regenerated) fails here.
TEST(SeccompTable, MatchesTheBuilder) {
  auto built = runtime::build_default_filter(false);
  ASSERT_TRUE(built) << built.error().message;
  runtime::SeccompProgram table = default_seccomp_filter();
  ASSERT_EQ(table.code.size(), built->code.size());
  EXPECT_EQ(0, std::memcmp(table.code.data(), built->code.data(),
                           table.code.size() * sizeof(sock_filter)));
}

}  // namespace
}  // namespace togo::cli
