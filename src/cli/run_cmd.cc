// togo run NAME [-- CMD...] and togo exec NAME -- CMD...
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/env_access.h"
#include "store/drive.h"

namespace togo::cli {

namespace {

// True for a store on FUSE. There the kernel passes neither syncfs(2) nor
// an unmount's sync to the server (FUSE_SYNCFS goes to virtiofs only); what
// stands in for a disk there, as the crash tests' recorder does, can see
// the call but not the unmount.
bool on_fuse(int dir) {
  struct statfs st;
  return ::fstatfs(dir, &st) == 0 && st.f_type == FUSE_SUPER_MAGIC;
}

// What the command wrote is on the disk before togo says it ended: the
// env's files live in the store, on a drive that may be pulled next.
// `unmounted`: the env this run started is gone and so is the overlay that
// was its root, which the kernel synced the store's filesystem for when it
// let it go: a second sync would only wait for the drive again. A session
// that ended badly may have been ended by init because that drive failed:
// then that is what togo says.
Result<int> ended(Result<int> r, const EnvAccess& e, bool unmounted = false) {
  if (!r || *r == 128 + 9)
    if (auto why = store::drive_failure(e.store.fd(), e.store.path())) {
      Error err = error(ErrorKind::kFailed, e.env.name + ": stopped: " + *why,
                        "plug the drive back in, then `togo fsck`: what was acknowledged "
                        "before is there").error();
      err.exit_code = 137;
      return std::unexpected(std::move(err));
    }
  if (r && (!unmounted || on_fuse(e.dir.get()))) (void)::syncfs(e.dir.get());
  return r;
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
    // The root is an overlay of the env's own: mounted now, gone once the
    // env ends, unless something outside holds it. A --rootfs copy root is
    // the store's filesystem, which stays.
    dev_t root = (*started)->root_dev;
    bool watched = root != 0 && runtime::filesystem_mounted(root) == true;
    auto status = runtime::run_session(mine.get(), req, /*sent=*/true);
    // The env this run started stops with its last session: wait (briefly:
    // another session may keep it up) so that it is gone when run returns.
    bool unmounted = false;
    if (e.settings.linger_ms == 0) {
      runtime::wait_init_gone(e.dir.get(), 2000);
      unmounted = watched && runtime::filesystem_mounted(root) == false;
    }
    if (!status) return ended(launch_error(std::move(status.error()), name), e, unmounted);
    return ended(*status, e, unmounted);
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
