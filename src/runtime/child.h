// The code that runs inside the new namespaces: it performs a Plan's steps,
// changes root, then stays as pid 1 (the env's init) while the command runs.
// Nothing here allocates or logs: failures travel to the parent as a
// ChildReport over a close-on-exec pipe.
#pragma once

#include <cstdint>

#include "runtime/plan.h"

namespace togo::runtime {

/// Sent by the child when a step fails (step is an index into Plan::steps),
/// or once the env is ready (step kReady).
struct ChildReport {
  int32_t step;
  int32_t err;
};
inline constexpr int32_t kReady = -1;
inline constexpr int32_t kStoreStep = -3;
inline constexpr int32_t kHardenStep = -10;  // -10 no_new_privs, -11 caps, -12 seccomp

/// What the child receives from the parent, by number.
struct ChildFds {
  int sync;    // read end: one byte once the parent has set up id maps, cgroup
               // and network (written before clone when there is none of them)
  int sync_w;  // its write end, or -1: closed first, so that a parent gone reads as EOF
  int report;  // write end for ChildReport; closed when the env is ready
  int listen;  // the env's control socket, listening
  int first;   // a connected session channel for the first session, or -1
  int log;     // the env's log file
  int lock;    // the env's lock, held while the env runs
  int hold;    // held open while the env runs (a helper's exit pipe), or -1
  int drive;   // the store's marker, O_DIRECT (see InitConfig::drive), or -1
  bool persistent;
  int linger_ms;
};

/// Runs in the child right after clone(); never returns. Until it becomes
/// init it does not allocate.
[[noreturn]] void child_main(const Plan& plan, const ChildFds& fds);

}  // namespace togo::runtime
