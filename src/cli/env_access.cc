#include "cli/env_access.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"
#include "base/sys.h"
#include "cli/env_spec.h"
#include "store/envs.h"
#include "store/layout.h"

namespace togo::cli {

namespace {

// The env resolves names with the host's resolver settings (the network is
// the host's): a copy in the env's run/ directory, rewritten only when the
// host's changed, is bound read-only over /etc/resolv.conf.
Result<std::string> refresh_resolv_conf(store::Store& st, const store::EnvRecord& env) {
  auto host = sys::open_at(AT_FDCWD, "/etc/resolv.conf", O_RDONLY);
  if (!host) return std::string();
  std::string text = TRY(sys::read_all(host->get(), "/etc/resolv.conf"));
  std::string file = store::env_paths(env.id).run + "/resolv.conf";
  auto old = fs::read_file(st.fd(), file);
  if (!old || *old != text) {
    Fd run = TRY(sys::open_at(st.fd(), store::env_paths(env.id).run, O_RDONLY | O_DIRECTORY));
    TRY(fs::write_file_atomic(run.get(), "resolv.conf", text, 0644));
  }
  return file;
}

}  // namespace

Result<EnvAccess> open_env(Context& c, const std::string& name) {
  auto path = TRY(c.store_path());
  auto existing = TRY(store::Store::open_existing(path, store::Store::Access::kRead));
  if (!existing)
    return error(ErrorKind::kNotFound, name + ": no such environment (the store " + path +
                                           " is empty)",
                 "`togo image create debian` then `togo create " + name + " --image debian`");
  auto env = TRY(existing->catalog().find_env(name));
  if (!env)
    return error(ErrorKind::kNotFound, name + ": no such environment",
                 "`togo ls` lists environments; `togo create " + name +
                     " --image IMAGE` makes one");
  auto img = TRY(existing->catalog().find_image(env->image_id));
  if (!img)
    return error(ErrorKind::kFailed, name + ": its image is missing from the catalog",
                 "run `togo fsck`");
  Fd dir = TRY(sys::open_at(existing->fd(), store::env_paths(env->id).dir,
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  return EnvAccess{std::move(*existing), std::move(*env), std::move(*img), std::move(dir)};
}

runtime::Plan env_plan(EnvAccess& e) {
  runtime::RunSpec spec = run_spec(e.store.path(), e.env, e.image);
  auto resolv = refresh_resolv_conf(e.store, e.env);
  spec.resolv_conf = resolv ? *resolv : "";
  return runtime::build_plan(spec);
}

std::expected<std::optional<pid_t>, runtime::LaunchFailure> start_env(EnvAccess& e,
                                                                      bool persistent, int first) {
  auto fail = [](Error err) {
    return std::unexpected(runtime::LaunchFailure{125, std::move(err)});
  };
  auto lock = store::try_lock_env(e.store, e.env);
  if (!lock) return fail(lock.error());
  if (!lock->valid()) return std::nullopt;
  // The previous init may still be tearing down its mounts.
  runtime::wait_init_gone(e.dir.get(), 5000);
  runtime::StartConfig cfg;
  cfg.env_dir = e.dir.get();
  cfg.lock = lock->get();
  cfg.first = first;
  cfg.persistent = persistent;
  auto pid = runtime::start_env(env_plan(e), cfg);
  if (!pid) return std::unexpected(std::move(pid.error()));
  return std::optional<pid_t>(*pid);
}

runtime::SpawnRequest session_request(const std::vector<std::string>& argv) {
  runtime::SpawnRequest req;
  req.argv = argv;
  if (const char* term = std::getenv("TERM")) req.env.push_back(std::string("TERM=") + term);
  req.pty = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
  struct winsize ws;
  if (req.pty && ::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
    req.rows = ws.ws_row;
    req.cols = ws.ws_col;
  }
  return req;
}

}  // namespace togo::cli
