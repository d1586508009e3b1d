// A session: one command run in an env on behalf of one togo on the host.
// When the command ends, what it left behind ends too, then the host is
// told the status. Init serves one session itself (the command is its
// child, and the command's orphans come to init as pid 1); every other
// session at the same time gets a leader, forked by init, that is a
// subreaper for its own command.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "base/fd.h"
#include "runtime/protocol.h"

namespace togo::runtime {

/// One session's command and the channel to the host's togo, in the
/// process that started the command (init or a leader), which feeds it
/// the channel's messages and the command's end.
class Session {
 public:
  /// Resolves the user, opens a pty if the request asks for one, starts
  /// the command as a child of this process (its stdio `stdio`, or the
  /// pty) and tells the host it runs. If it cannot, tells the host why and
  /// returns false. The caller blocks the signals it reads before this:
  /// the command starts with none blocked. This process waits until the
  /// command's child has exec'd or failed to. `announce`, if given, is
  /// called with the command's pid just before the host is told it runs;
  /// `failing` just before the host is told it does not.
  bool start(Fd channel, const SpawnRequest& req, std::vector<Fd> stdio,
             const std::function<void(pid_t)>& announce = {},
             const std::function<void()>& failing = {});

  /// The channel to poll for the host's messages; -1 once the host hung up.
  int channel() const { return hung_up_ ? -1 : channel_.get(); }
  pid_t command() const { return cmd_; }
  /// A message from the host (a signal for the command) or its hang-up.
  void on_channel();
  /// After a hang-up the command gets a few seconds, then SIGKILL: how
  /// long until then (for poll), -1 for no limit; on_timeout() when it passed.
  int timeout_ms() const;
  void on_timeout();

  /// The command ended with this wait status.
  void command_ended(int wait_status);
  bool ended() const { return ended_; }
  /// Tells the host the command's status (unless it hung up). Called once
  /// what the command left behind is gone.
  void report();

 private:
  Fd channel_;
  pid_t cmd_ = -1;
  bool hung_up_ = false;
  int64_t kill_at_ = -1;  // CLOCK_MONOTONIC ms
  bool ended_ = false;
  int status_ = 0;
};

/// Runs in a leader, inside the env, after init forked it; never returns.
/// `channel` talks to the host's togo; `stdio` are the command's stdin,
/// stdout and stderr (ignored when the request asks for a pty).
[[noreturn]] void leader_main(Fd channel, const SpawnRequest& req, std::vector<Fd> stdio);

/// The calling process's children (empty if they cannot be listed).
std::vector<pid_t> child_pids();

/// The environment a command starts with: defaults, the user's identity,
/// then the request's own variables (which win).
std::vector<std::string> command_environment(const SpawnRequest& req, const std::string& hostname,
                                             const std::string& user, const std::string& home,
                                             const std::string& shell);

}  // namespace togo::runtime
