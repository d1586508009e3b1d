// togo run NAME [-- CMD...] and togo exec NAME -- CMD...
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "cli/commands.h"
#include "cli/env_access.h"
#include "cli/env_state.h"
#include "store/drive.h"
#include "store/envs.h"

namespace togo::cli {

namespace {

// What a run that started its env does beside the command: it removes
// the overlay work directory the start moved aside (while init starts the
// command), then, once the command runs, syncs the store's filesystem. The
// start wrote there (the overlay's work directory, the control socket, the
// pid, the log's session line); synced while the command runs, that is on
// the drive before the command ends, and the sync at its end (see `ended`)
// waits only for what the command wrote. A command that ends first makes
// that sync pointless: the run's own sync covers both. Each decision
// replaces the one before until the thread acts on it, so a sync not begun
// by then is dropped. On a thread: a sync may wait long for a busy drive,
// and the session's terminal and signals must not.
class Settle {
 public:
  explicit Settle(int env_dir) : state_(std::make_shared<State>()) {
    // Its own open file: it may outlive the run, and a sync's error is
    // reported once to each open file, so the run's own sync still sees it.
    state_->dir = Fd(::openat(env_dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    try {
      thread_ = std::thread([state = state_] { state->work(); });
    } catch (const std::system_error&) {
      store::remove_retired_work(env_dir);  // no thread: the sync at the end does it all
    }
  }
  ~Settle() { wait(); }
  Settle(const Settle&) = delete;
  Settle& operator=(const Settle&) = delete;

  // The command runs: the sync goes ahead.
  void command_runs() { state_->decide(true); }

  // The command ended (or never ran) and the run syncs the store itself.
  void run_syncs() { state_->decide(false); }

  // Waits for the thread.
  void wait() {
    run_syncs();
    if (thread_.joinable()) thread_.join();
  }

  // Lets the thread end on its own (it keeps what it uses): togo reports
  // without waiting for it. (A sync stuck on a drive that hangs still
  // holds up the process's exit: the kernel cannot stop it.)
  void abandon() {
    run_syncs();
    if (thread_.joinable()) thread_.detach();
  }

 private:
  struct State {
    Fd dir;
    std::mutex mu;
    std::condition_variable cv;
    bool told = false, sync = false;

    void decide(bool want_sync) {
      {
        std::lock_guard lock(mu);
        told = true;
        sync = want_sync;
      }
      cv.notify_one();
    }

    void work() {
      store::remove_retired_work(dir.get());
      std::unique_lock lock(mu);
      cv.wait(lock, [this] { return told; });
      if (!sync) return;
      lock.unlock();
      (void)::syncfs(dir.get());
    }
  };

  std::shared_ptr<State> state_;
  std::thread thread_;
};

std::unexpected<Error> run_failure(std::string message, std::string hint, int exit_code) {
  Error err = error(ErrorKind::kFailed, std::move(message), std::move(hint)).error();
  err.exit_code = exit_code;
  return std::unexpected(std::move(err));
}

// What the command wrote is on the disk before togo says it ended: the
// env's files live in the store, on a drive that may be pulled next. A
// session that ended badly may have been ended by init because that drive
// failed: then that is what togo says (137, as for `togo stop`). A sync
// that fails fails the run (125): the command ended, but what it wrote may
// be lost.
Result<int> ended(Result<int> r, const EnvAccess& e) {
  const char* replug =
      "plug the drive back in, then `togo fsck`: what was acknowledged before is there";
  if (!r || *r == 128 + 9)
    if (auto why = store::drive_failure(e.store.fd(), e.store.path()))
      return run_failure(e.env.name + ": stopped: " + *why, replug, 137);
  if (!r || ::syncfs(e.dir.get()) == 0) return r;
  int err = errno;
  std::string what = e.env.name + ": the command ended, but what it wrote did not reach the drive: ";
  if (auto why = store::drive_failure(e.store.fd(), e.store.path()))
    return run_failure(what + *why, replug, kExitRunFailed);
  return run_failure(what + "syncing the store: " + std::strerror(err),
                     "`togo fsck` checks the store", kExitRunFailed);
}

std::unexpected<Error> launch_error(runtime::LaunchFailure f, const std::string& name) {
  Error e = std::move(f.error).context(name);
  e.exit_code = f.exit_code;
  return std::unexpected(std::move(e));
}

// Runs the command as a session of the env, starting the env first if it is
// not running and `may_start`.
Result<int> session(Context& c, bool may_start) {
  const std::string& name = c.inv.args[0];
  auto e = TRY(open_env_to_run(c, name));
  runtime::SpawnRequest req = session_request(e, c.inv.rest);
  // The command may run (and a signal to togo be meant for it) before
  // run_session is reached: its signals are held from here.
  runtime::HeldSignals held;
  for (int attempt = 0; attempt < 200; attempt++) {
    if (auto ch = TRY(runtime::connect_env(e.dir.get()))) {
      auto status = runtime::run_session(ch->get(), req);
      if (status) return ended(*status, e);
      // The env ended between our connect and its answer: start it again.
      if (status.error().error.kind == ErrorKind::kNotFound && attempt + 1 < 200) continue;
      return ended(launch_error(std::move(status.error()), name), e);
    }
    if (!may_start)
      return error(ErrorKind::kConflict, name + ": the environment is not running",
                   "`togo start " + name + "` first, or use `togo run " + name + " -- CMD`");
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
      return sys_error(errno, "socketpair");
    Fd mine(pair[0]), theirs(pair[1]);
    // Sent now, the request is there when init first looks.
    TRY(runtime::send_spawn(mine.get(), req));
    auto started = start_env(e, /*persistent=*/false, theirs.get());
    if (!started) return launch_error(std::move(started.error()), name);
    if (!*started) {
      ::usleep(10000);  // another togo is starting or stopping it
      continue;
    }
    theirs.reset();
    Settle settle(e.dir.get());
    auto status =
        runtime::run_session(mine.get(), req, /*sent=*/true, [&] { settle.command_runs(); });
    // An env this run started and that ends with its session is not
    // waited for: init frees its lock before it reports, once nothing of
    // the env runs any more, and a start waits for the rest of its end. One
    // that ends another way (a `togo stop` meanwhile, a request that came
    // in as the session ended) frees it only at init's exit: that is
    // waited for, so that the env reads as stopped once this returns.
    if (e.settings.linger_ms == 0)
      if (auto s = env_state(e.store, e.env); s == EnvState::kIdle || s == EnvState::kEnding)
        runtime::wait_init_gone(e.dir.get(), 2000);
    // A run that failed may have failed for a drive that is gone: the
    // sync of the start may never end, and togo says why without it.
    if (!status || *status == 128 + 9) {
      settle.abandon();
      if (!status) return ended(launch_error(std::move(status.error()), name), e);
      return ended(*status, e);
    }
    // Not after the thread's sync: one that has not begun is dropped, and
    // one under way runs alongside.
    settle.run_syncs();
    auto r = ended(*status, e);
    settle.wait();
    return r;
  }
  return error(ErrorKind::kConflict, name + ": the environment keeps starting and stopping");
}

Result<int> as_run_failure(Result<int> r) {
  // Before the command runs, every failure is togo's: 125, like podman.
  if (!r && !r.error().exit_code) r.error().exit_code = kExitRunFailed;
  return r;
}

}  // namespace

Result<int> cmd_run(Context& c) { return as_run_failure(session(c, /*may_start=*/true)); }

Result<int> cmd_exec(Context& c) {
  if (c.inv.rest.empty())
    return as_run_failure(error(ErrorKind::kUsage, "exec " + c.inv.args[0] + ": no command given",
                                "togo exec NAME -- CMD [ARGS...]"));
  return as_run_failure(session(c, /*may_start=*/false));
}

}  // namespace togo::cli
