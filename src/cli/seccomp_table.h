// The default seccomp filter, generated when togo is built.
#pragma once

#include "runtime/seccomp.h"

namespace togo::cli {

/// The same program runtime::build_default_filter(false) builds, read from a
/// table generated at build time (it is a pure function of the syscall
/// tables compiled into togo), so starting an env spends no time on it.
runtime::SeccompProgram default_seccomp_filter();

}  // namespace togo::cli
