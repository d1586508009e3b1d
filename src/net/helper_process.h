// A helper program run as togo's child: a fixed descriptor layout, its own
// session, and killed by the kernel if togo dies (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

namespace togo::net {

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is the program's path
  /// {descriptor in togo, number in the helper}; numbers 3-9. Nothing else
  /// of togo's is inherited.
  std::vector<std::pair<int, int>> fds;
  int output_fd = -1;  // the helper's stdout and stderr (-1: /dev/null); stdin is /dev/null
  /// When both are set, the helper starts in a private mount namespace in
  /// which `bind_from` (a namespace file such as /proc/PID/ns/net) is bound
  /// onto `bind_onto` (an existing empty file): a path it can open without
  /// the ptrace access check /proc/PID/ns needs. The host sees no mount.
  std::string bind_from, bind_onto;
  /// False: the helper outlives togo (its life is tied to something else,
  /// such as an env's exit pipe) and is reparented when togo exits.
  bool die_with_togo = true;
};

class HelperProcess {
 public:
  HelperProcess() = default;
  /// Forks and execs. Returns once the program is executing; an error names
  /// the step that failed ("starting /usr/bin/pasta: No such file ...").
  /// The helper gets SIGKILL when the thread that spawned it exits.
  static Result<HelperProcess> spawn(const SpawnSpec& spec);

  HelperProcess(HelperProcess&& o) noexcept { *this = std::move(o); }
  HelperProcess& operator=(HelperProcess&& o) noexcept;
  HelperProcess(const HelperProcess&) = delete;
  HelperProcess& operator=(const HelperProcess&) = delete;
  ~HelperProcess() { stop(0, std::chrono::milliseconds(0)); }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  /// Without blocking: true once it has exited (it is then reaped, and
  /// `status` is its wait status, or -1 if someone else reaped it).
  bool exited(int* status = nullptr);
  /// Sends `sig` (none if 0), waits up to `grace` for it to exit, then
  /// SIGKILLs and reaps it. Does nothing once it has exited.
  void stop(int sig, std::chrono::milliseconds grace);
  /// Forgets the helper: it keeps running and is neither stopped nor waited for.
  void release() { pid_ = -1; }

 private:
  pid_t pid_ = -1;
};

/// "exited with status 1", "was killed by signal 9": for error messages.
std::string describe_status(int status);

}  // namespace togo::net
