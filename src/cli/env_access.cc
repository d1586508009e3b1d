#include "cli/env_access.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"
#include "base/sys.h"
#include "cli/env_spec.h"
#include "base/text.h"
#include "runtime/cgroups_apply.h"
#include "runtime/idmap_apply.h"
#include "runtime/idmap_plan.h"
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

// The limits of an env, as a cgroup its init is put in before setup. The
// cgroups of earlier runs of this env are removed first: nothing else
// removes them, since an env's last process can do nothing on the host.
Result<runtime::Cgroup> env_cgroup(EnvAccess& e) {
  runtime::Limits limits;
  if (!e.settings.memory.empty()) limits.memory = TRY(runtime::parse_memory(e.settings.memory));
  if (!e.settings.cpus.empty()) limits.cpus = TRY(runtime::parse_cpus(e.settings.cpus));
  if (!e.settings.pids.empty()) limits.pids = TRY(runtime::parse_pids(e.settings.pids));
  if (!limits.any()) return runtime::Cgroup();
  auto host = TRY(runtime::detect_cgroups());
  TRY(runtime::check_limits(host, limits));
  for (auto c : runtime::kControllers) {
    const auto& s = host.support(c);
    if (!s.usable) continue;
    std::string dir = fs::join(s.base, "togo");
    auto fd = sys::open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY);
    if (!fd) continue;
    for (auto& name : fs::list_dir(fd->get()))
      if (text::starts_with(name, e.env.id + "-")) ::unlinkat(fd->get(), name.c_str(), AT_REMOVEDIR);
  }
  return runtime::create_env_cgroup(host, e.env.id, limits);
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
  Settings settings = TRY_CTX(parse_settings(env->settings), name);
  return EnvAccess{std::move(*existing), std::move(*env), std::move(*img), std::move(settings),
                   std::move(dir)};
}

Result<runtime::Plan> env_plan(EnvAccess& e) {
  runtime::RunSpec spec = run_spec(e.store.path(), e.env, e.image);
  if (!e.settings.hostname.empty()) spec.hostname = e.settings.hostname;
  for (auto& sh : e.settings.shares) {
    auto st = sys::stat_at(AT_FDCWD, sh.host, 0);
    if (!st)
      return std::unexpected(std::move(st.error()).context("share " + sh.host).with_hint(
          "create it, or remove the share with `togo config " + e.env.name + " share-=" +
          sh.host + ":" + sh.path + (sh.readonly ? ":ro" : "") + "`"));
    spec.shares.push_back({sh.host, sh.path, sh.readonly, S_ISDIR(st->st_mode)});
  }
  auto resolv = refresh_resolv_conf(e.store, e.env);
  spec.resolv_conf = resolv ? *resolv : "";
  spec.privileged = e.settings.privileged;
  runtime::Plan plan = runtime::build_plan(spec);
  if (plan.harden) {
    plan.caps = runtime::default_caps();
    plan.last_cap = runtime::read_last_cap();
    plan.seccomp = TRY(runtime::build_default_filter(false));
  }
  if (plan.rootless) {
    // Your own id is root inside; your subordinate ids, where the host
    // grants them, are everyone else (so chown and apt's _apt work).
    auto facts = TRY(runtime::read_id_facts());
    runtime::IdentityPlan id = runtime::plan_identity(facts, /*as_user=*/false);
    plan.uid_map = id.uids;
    plan.gid_map = id.gids;
  }
  return plan;
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
  cfg.linger_ms = e.settings.linger_ms;
  auto plan = env_plan(e);
  if (!plan) return fail(std::move(plan.error()));
  auto cgroup = env_cgroup(e);
  if (!cgroup) return fail(std::move(cgroup.error()));
  if (!cgroup->empty()) cfg.before_setup = [&](pid_t pid) { return cgroup->add(pid); };
  auto pid = runtime::start_env(*plan, cfg);
  if (!pid) {
    (void)cgroup->remove();
    return std::unexpected(std::move(pid.error()));
  }
  return std::optional<pid_t>(*pid);
}

runtime::SpawnRequest session_request(const Settings& settings,
                                      const std::vector<std::string>& argv) {
  runtime::SpawnRequest req;
  req.argv = argv;
  if (const char* term = std::getenv("TERM")) req.env.push_back(std::string("TERM=") + term);
  for (auto& e : settings.env) req.env.push_back(e);
  req.cwd = settings.workdir;
  req.pty = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
  struct winsize ws;
  if (req.pty && ::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
    req.rows = ws.ws_row;
    req.cols = ws.ws_col;
  }
  return req;
}

}  // namespace togo::cli
