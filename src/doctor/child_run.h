// The one way the doctor's live actions run something risky: in a forked
// child that reports a plain-data struct over a pipe and is killed if it
// does not answer in time. Between fork and _exit the child makes only
// system calls (togo runs its probes on several threads).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "base/fd.h"

namespace togo::doctor {

/// Waits for `pid` without blocking for more than `ms`; kills it first if
/// `kill_first` (a process stuck in the kernel dies late: it is not waited for).
inline void reap(pid_t pid, bool kill_first, int ms = 200) {
  if (kill_first) ::kill(pid, SIGKILL);
  for (int waited = 0; waited <= ms; waited += 5) {
    if (::waitpid(pid, nullptr, WNOHANG) != 0) return;
    ::usleep(5000);
  }
}

/// How a child's report came back.
enum class ChildEnd {
  kAnswered,  // `report` holds what it wrote
  kNoPipe,    // pipe2 failed (err)
  kNoFork,    // fork failed (err)
  kTimedOut,  // no answer within the timeout: killed
  kDied,      // it ended without writing a whole report
};

template <typename T>
struct ChildReport {
  ChildEnd end = ChildEnd::kDied;
  int err = 0;
  T report{};
};

/// Forks a child that runs `body(fd)`, which must make only system calls,
/// write one T to `fd` and _exit; only `fd` (3) stays open in it, so no
/// other probe waits for this child's end. Waits up to `timeout_ms` for the
/// report, then reaps the child (killing it when it did not answer).
template <typename T, typename Body>
ChildReport<T> run_child(Body body, int timeout_ms) {
  ChildReport<T> out;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) return {ChildEnd::kNoPipe, errno};
  Fd r(fds[0]), w(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) return {ChildEnd::kNoFork, errno};
  if (pid == 0) {
    if (::dup2(w.get(), 3) < 0) ::_exit(1);
    ::close_range(4, ~0U, 0);
    body(3);
    ::_exit(0);
  }
  w.reset();
  struct pollfd p = {r.get(), POLLIN, 0};
  int ready;
  do ready = ::poll(&p, 1, timeout_ms);
  while (ready < 0 && errno == EINTR);
  if (ready > 0 && ::read(r.get(), &out.report, sizeof out.report) ==
                       static_cast<ssize_t>(sizeof out.report)) {
    out.end = ChildEnd::kAnswered;
    reap(pid, false);
    return out;
  }
  out.end = ready == 0 ? ChildEnd::kTimedOut : ChildEnd::kDied;
  reap(pid, true);
  return out;
}

}  // namespace togo::doctor
