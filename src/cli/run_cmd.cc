// togo run NAME [-- CMD...]
#include <fcntl.h>

#include <cstdlib>

#include "base/fs.h"
#include "base/sys.h"
#include "cli/commands.h"
#include "cli/env_spec.h"
#include "runtime/launcher.h"
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

Result<int> run(Context& c) {
  const std::string& name = c.inv.args[0];
  auto path = TRY(c.store_path());
  auto existing = TRY(store::Store::open_existing(path, store::Store::Access::kRead));
  if (!existing)
    return error(ErrorKind::kNotFound, name + ": no such environment (the store " + path +
                                           " is empty)",
                 "`togo image create debian` then `togo create " + name + " --image debian`");
  store::Store& st = *existing;
  auto env = TRY(st.catalog().find_env(name));
  if (!env)
    return error(ErrorKind::kNotFound, name + ": no such environment",
                 "`togo ls` lists environments; `togo create " + name +
                     " --image IMAGE` makes one");
  auto img = TRY(st.catalog().find_image(env->image_id));
  if (!img) return error(ErrorKind::kFailed, name + ": its image is missing from the catalog",
                         "run `togo fsck`");
  Fd held = TRY(store::try_lock_env(st, *env));
  if (!held.valid())
    return error(ErrorKind::kConflict, name + ": the environment is already running",
                 "wait for the other `togo run " + name + "` to end");

  runtime::RunSpec spec = run_spec(st.path(), *env, *img);
  spec.resolv_conf = TRY_CTX(refresh_resolv_conf(st, *env), name);
  spec.argv = c.inv.rest;
  if (const char* term = std::getenv("TERM")) spec.env.push_back(std::string("TERM=") + term);
  runtime::Plan plan = runtime::build_plan(spec);
  auto status = runtime::launch(plan);
  if (!status) {
    Error e = std::move(status.error().error).context(name);
    e.exit_code = status.error().exit_code;
    return std::unexpected(std::move(e));
  }
  return *status;
}

}  // namespace

Result<int> cmd_run(Context& c) {
  auto r = run(c);
  // Before the command runs, every failure is togo's: 125, like podman.
  if (!r && !r.error().exit_code) r.error().exit_code = kExitRunFailed;
  return r;
}

}  // namespace togo::cli
