// The togo binary itself: one static executable that needs nothing from the
// host's environment.
#include "fixture.h"

namespace togo::test {
namespace {

TEST(Binary, IsStaticallyLinked) {
  RunResult r = run({"file", "-L", togo_bin()});
  if (r.status == 127) GTEST_SKIP() << "file(1) is not installed";
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_NE(r.out.find("statically linked"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("interpreter"), std::string::npos) << r.out;
}

TEST(Binary, RunsWithAnEmptyEnvironment) {
  RunResult r = run({"env", "-i", togo_bin(), "version"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(r.out.starts_with("togo ")) << r.out;
  EXPECT_EQ(r.err, "");
  RunResult help = run({"env", "-i", togo_bin(), "help"});
  EXPECT_EQ(help.status, 0) << describe(help);
}

TEST(Binary, WorksWithAnEmptyEnvironmentGivenAStore) {
  TOGO_REQUIRE_BUSYBOX();
  TempDir d;
  std::string store = d.sub("store");
  RunResult imp = run({"env", "-i", togo_bin(), "--store", store, "image", "import",
                       test_rootfs_tar(), "--name", "test"});
  ASSERT_EQ(imp.status, 0) << describe(imp);
  ASSERT_EQ(
      run({"env", "-i", togo_bin(), "--store", store, "create", "dev", "--image", "test"}).status,
      0);
  RunResult r = run({"env", "-i", togo_bin(), "--store", store, "run", "dev", "--", "hostname"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "dev\n");
}

TEST(Binary, WithoutHomeOrStoreSaysWhereToPutIt) {
  // A copy with no togo-store/ beside it, no HOME, no TOGO_STORE.
  TempDir d;
  std::string bin = d.sub("togo");
  ASSERT_EQ(run({"cp", togo_bin(), bin}).status, 0);
  RunResult r = run({"env", "-i", bin, "ls"});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(one_line_error(r, "store"));
}

}  // namespace
}  // namespace togo::test
