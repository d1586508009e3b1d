// User-mode networking for an env with `--network private`: a helper from
// Debian (pasta, else slirp4netns) attached to the env's network namespace,
// giving it an eth0 to the outside and forwarding host ports into it.
//
// In the parent, after clone(CLONE_NEWNET ...) of the env's first process
// (and, rootless, after writing its id maps) and before letting it run:
//
//   auto net = TRY(net::UserNet::start(child_pid, {.ports = ports}));
//   ... signal the child, wait for the env ...
//   net.stop();   // or let the destructor do it
//
// The helper also dies if the thread that started it dies (SIGKILL on
// parent death), so a killed supervisor leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "net/helper_argv.h"
#include "net/helper_process.h"
#include "net/settings.h"

namespace togo::net {

struct UserNetOptions {
  std::vector<PortForward> ports;
  int mtu = kDefaultMtu;
  /// Helpers to try, in order: the next is tried when one is missing or
  /// fails to start (Debian 12's pasta, for one, refuses a host with no
  /// default route, where slirp4netns still works).
  std::vector<HelperKind> helpers = {HelperKind::kPasta, HelperKind::kSlirp4netns};
  /// How long a helper may take to be ready.
  std::chrono::milliseconds timeout{10000};
  /// Where to look for the helpers: a PATH-style list ("" = $PATH, or
  /// /usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin if unset).
  std::string search_path;
  /// Let the env reach services on the host's 127.0.0.1 through 10.0.2.2.
  bool host_loopback = false;
  /// The read end of a pipe whose write end the env's init holds: the helper
  /// (slirp4netns, which has an exit fd) then ends with the env, not with
  /// this togo. -1: the helper ends with this togo.
  int env_exit_fd = -1;
};

/// Whether this user can open /dev/net/tun, which both helpers need to give
/// the env its eth0 (hosts differ: 0666 is usual, some have 0600). The error
/// says how to fix it. For `togo doctor` too.
Result<void> check_tun_device();

/// The full path of a helper program, if installed.
std::optional<std::string> find_helper(HelperKind kind, const std::string& search_path = {});

class UserNet {
 public:
  UserNet() = default;
  /// Starts a helper for the network namespace of `pid`, which must already
  /// be in its own network namespace (and, rootless, its own user namespace
  /// with id maps written). Returns once the env's eth0 is configured and
  /// every port forward listens on the host. Errors: kUsage for a host port
  /// an unprivileged user cannot bind; kFailed naming the Debian packages
  /// when no helper is installed, or each helper's own message.
  static Result<UserNet> start(pid_t pid, const UserNetOptions& opts);

  UserNet(UserNet&&) noexcept = default;
  UserNet& operator=(UserNet&& o) noexcept;
  ~UserNet() { stop(); }

  /// Stops the helper (slirp4netns: its exit fd is closed; pasta: SIGTERM),
  /// with SIGKILL after a second. Safe to call more than once.
  void stop();
  /// Leaves a helper started with env_exit_fd running when this object goes.
  void release() { process_.release(); }

  /// True while the helper runs; one that has died is reaped here (the env
  /// then has no network: a supervisor may check this to say so).
  bool running() { return !process_.exited(); }
  HelperKind helper() const { return kind_; }
  pid_t pid() const { return process_.pid(); }
  /// Why an earlier helper in the list was not used ("pasta failed: ..."),
  /// for a notice; "" when the first one started.
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  HelperKind kind_ = HelperKind::kPasta;
  std::string fallback_reason_;
  HelperProcess process_;
  Fd exit_fd_;  // slirp4netns: closing it tells the helper to exit
};

}  // namespace togo::net
