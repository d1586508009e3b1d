// The host side of an env: start its init in new namespaces, connect to a
// running one, run a session over the control channel, stop it.
#pragma once

#include <signal.h>

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/plan.h"
#include "runtime/protocol.h"

namespace togo::runtime {

/// Why a command could not run, told apart so the CLI can use the
/// conventional exit codes (125 togo, 126 cannot execute, 127 not found).
struct LaunchFailure {
  int exit_code;  // 125, 126 or 127
  Error error;
};

/// Files of a running env, in its directory (envs/<id>).
inline constexpr const char* kControlSocket = "ctl.sock";
inline constexpr const char* kInitPid = "init.pid";  // "<pid> <start time>\n"
inline constexpr const char* kLog = "log";

struct StartConfig {
  int env_dir = -1;         // the env's directory in the store
  int lock = -1;            // the env's lock, already held; init keeps it
  int first = -1;           // a session channel for init to serve first, or -1
  int hold = -1;            // init keeps it open until the env ends, or -1
  int drive = -1;           // a file on the store's drive opened O_DIRECT, or -1: init
                            // reads it every few seconds to notice a drive that went away
  bool persistent = false;  // `togo start`: stay up without sessions
  int linger_ms = 0;        // otherwise: stay up this long after the last session
  /// Called with init's pid after clone, before init does anything (e.g. to
  /// put it in the env's cgroup, which every session then inherits). Left
  /// empty where there is nothing to do: init then does not wait for it.
  std::function<Result<void>(pid_t)> before_setup;
};

/// An env whose init is up.
struct StartedEnv {
  pid_t init = 0;
};

/// Starts the env's init with `plan` and returns once the env's root is
/// ready and the control socket listens.
std::expected<StartedEnv, LaunchFailure> start_env(const Plan& plan, const StartConfig& config);

/// Connects to a running env's control socket; nothing if it is not running.
Result<std::optional<Fd>> connect_env(int env_dir);

/// The init recorded in the env's directory, if that process still exists.
std::optional<pid_t> live_init(int env_dir);

/// Waits (up to `timeout_ms`) until the init recorded in the env's directory
/// is gone, so that its mounts are gone too.
void wait_init_gone(int env_dir, int timeout_ms);

/// Asks for a session over `channel`, passing stdio unless `req.pty`. A
/// request sent before the env is started waits there for its init.
Result<void> send_spawn(int channel, const SpawnRequest& req);

/// Blocks, while it lives, the signals run_session forwards to the command
/// (SIGINT, SIGTERM, SIGHUP, ...): one sent while the env starts waits for
/// run_session, which forwards it, instead of ending togo.
class HeldSignals {
 public:
  HeldSignals();
  ~HeldSignals();
  HeldSignals(const HeldSignals&) = delete;
  HeldSignals& operator=(const HeldSignals&) = delete;
  static sigset_t forwarded();

 private:
  sigset_t old_;
};

/// Runs one session over `channel`: sends the request (unless `sent`),
/// passes stdio (or relays a pty), forwards signals sent to togo, and
/// returns the command's exit status. A channel that closes before the
/// command started is kNotFound (the env went away).
/// `on_started`, if given, is called once the command runs.
std::expected<int, LaunchFailure> run_session(int channel, const SpawnRequest& req,
                                              bool sent = false,
                                              const std::function<void()>& on_started = {});

/// Init's answer to kStatus.
struct EnvStatus {
  uint32_t sessions = 0;
  int64_t started = 0;
  bool persistent = false;
};
Result<EnvStatus> query_status(int channel);

/// Asks init to stop the env (SIGTERM to everything, SIGKILL after `grace`
/// seconds) and waits until it is gone.
Result<void> stop_env(int channel, int env_dir, uint32_t grace);

}  // namespace togo::runtime
