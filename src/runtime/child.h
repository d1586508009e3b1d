// The code that runs inside the new namespaces: it performs a Plan's steps,
// changes root, then stays as pid 1 (the env's init) while the command runs.
// Nothing here allocates or logs: failures travel to the parent as a
// ChildReport over a close-on-exec pipe.
#pragma once

#include <signal.h>

#include <cstdint>

#include "runtime/plan.h"

namespace togo::runtime {

/// Sent by the child when a step fails; step is an index into Plan::steps,
/// or kExecStep when the command itself could not be executed.
struct ChildReport {
  int32_t step;
  int32_t err;
};
inline constexpr int32_t kExecStep = -1;
inline constexpr int32_t kCwdStep = -2;
inline constexpr int32_t kStoreStep = -3;

/// What the child receives from the parent: descriptors by number, and the
/// signal mask togo had before it blocked signals to wait for the child.
struct ChildFds {
  int sync;     // read end: one byte once the parent has set up id maps
  int report;   // write end for ChildReport
  const sigset_t* command_mask;  // the mask the command starts with
};

/// Runs in the child right after clone(); never returns.
[[noreturn]] void child_main(const Plan& plan, const ChildFds& fds,
                             const char* const* argv, const char* const* envp);

}  // namespace togo::runtime
