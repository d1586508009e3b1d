#include "cli/seccomp_table.h"

#include <iterator>

namespace togo::cli {

namespace {
#include "seccomp_table.inc"
}  // namespace

runtime::SeccompProgram default_seccomp_filter() {
  return {{std::begin(kDefaultFilter), std::end(kDefaultFilter)}};
}

}  // namespace togo::cli
