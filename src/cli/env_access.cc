#include "cli/env_access.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"
#include "base/host_check.h"
#include "base/sys.h"
#include "cli/env_spec.h"
#include "cli/seccomp_table.h"
#include "image/oci.h"
#include "net/etc_files.h"
#include "net/settings.h"
#include "net/usernet.h"
#include "runtime/cgroups_apply.h"
#include "runtime/idmap_apply.h"
#include "runtime/idmap_plan.h"
#include "runtime/userdb_env.h"
#include "store/drive.h"
#include "store/envs.h"
#include "store/layout.h"
#include "store/run_cache.h"

namespace togo::cli {

namespace {

// The files generated for each start go to the env's run/ directory
// (rewritten only when they change) and are bound read-only over the env's
// own; `spec` gets their store-relative paths.
struct RunDir {
  Fd fd;
  std::string path;  // store-relative
  Result<std::string> write(const char* name, std::string_view text) {
    TRY(fs::write_file_if_changed(fd.get(), name, text));
    return path + "/" + name;
  }
};

// /etc/resolv.conf, /etc/hosts and /etc/hostname, from the host's and the
// env's settings.
Result<void> write_etc_files(RunDir& run, runtime::RunSpec& spec, net::NetworkMode mode) {
  using runtime::read_host_file;
  spec.resolv_conf = TRY(run.write("resolv.conf",
                                   net::resolv_conf(mode, read_host_file("/etc/resolv.conf"))));
  spec.hosts = TRY(run.write("hosts",
                             net::hosts_file(spec.hostname, mode, read_host_file("/etc/hosts"))));
  spec.hostname_file = TRY(run.write("hostname", net::hostname_file(spec.hostname)));
  return {};
}

// --user: the env's passwd and group gain the invoking user, and the user's
// home is shared at the same path, as distrobox does.
Result<void> add_user(EnvAccess& e, RunDir& run, runtime::RunSpec& spec,
                      const runtime::IdentityPlan& id) {
  int s = e.store.fd();
  std::vector<Fd> trees;
  if (e.env.rootfs == "copy") {
    trees.push_back(TRY(sys::open_at(s, store::env_paths(e.env.id).rootfs, O_RDONLY | O_DIRECTORY)));
  } else {
    trees.push_back(TRY(sys::open_at(s, store::env_paths(e.env.id).upper, O_RDONLY | O_DIRECTORY)));
    for (auto it = e.image.layers.rbegin(); it != e.image.layers.rend(); ++it)
      trees.push_back(TRY(sys::open_at(s, store::layer_root(*it), O_RDONLY | O_DIRECTORY)));
  }
  std::vector<int> fds;
  for (auto& t : trees) fds.push_back(t.get());
  std::string passwd = runtime::read_layered_file(fds, "etc/passwd").value_or("");
  std::string group = runtime::read_layered_file(fds, "etc/group").value_or("");
  // The invoker's own login shell: a session falls back where the env lacks it.
  auto files = TRY(runtime::env_user_files(passwd, group, id.user, id.user.user.shell));
  spec.passwd = TRY(run.write(runtime::kRunPasswd, files.passwd));
  spec.group = TRY(run.write(runtime::kRunGroup, files.group));
  const std::string& home = id.user.user.home;
  if (auto st = sys::stat_at(AT_FDCWD, home, 0); st && S_ISDIR(st->st_mode) && home != "/")
    spec.shares.push_back({home, home, false, true});
  return {};
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
  runtime::remove_env_cgroups(host, e.env.id);
  auto cgroup = runtime::create_env_cgroup(host, e.env.id, limits);
  if (!cgroup && cgroup.error().kind == ErrorKind::kFailed)
    return std::unexpected(host_check::point_at(std::move(cgroup.error()), host_check::kCgroups));
  return cgroup;
}

}  // namespace

std::unexpected<Error> no_such_env(const std::string& name) {
  return error(ErrorKind::kNotFound, name + ": no such environment",
               "`togo ls` lists environments; `togo create " + name + " --image IMAGE` makes one");
}

namespace {

std::unexpected<Error> empty_store(const std::string& name, const std::string& path) {
  return error(ErrorKind::kNotFound, name + ": no such environment (the store " + path +
                                         " is empty)",
               "`togo image create debian` then `togo create " + name + " --image debian`");
}

// The env and its image from the catalog, in one read transaction; with
// `copy`, a found pair is copied for the next run.
Result<void> look_up(store::Store& st, const std::string& name, bool copy,
                     std::optional<store::EnvRecord>& env, std::optional<store::ImageRecord>& img) {
  uint32_t generation = 0;
  TRY(st.catalog().read([&]() -> Result<void> {
    env = TRY(st.catalog().find_env(name));
    if (env) img = TRY(st.catalog().find_image(env->image_id));
    if (copy) generation = TRY(st.catalog().generation());
    return {};
  }));
  if (copy && env && img) store::write_run_record(st.fd(), generation, {*env, *img});
  return {};
}

Result<EnvAccess> finish_open(store::Store st, const std::string& name,
                              std::optional<store::EnvRecord> env,
                              std::optional<store::ImageRecord> img, Purpose purpose) {
  if (!env) return no_such_env(name);
  if (!img)
    return error(ErrorKind::kFailed, name + ": its image is missing from the catalog",
                 "run `togo fsck`");
  Fd dir = TRY(sys::open_at(st.fd(), store::env_paths(env->id).dir,
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  Settings settings = TRY_CTX(parse_settings(env->settings), name);
  runtime::IdentityPlan identity;
  if (purpose == Purpose::kEnter)
    identity = runtime::plan_identity(TRY_CTX(runtime::read_id_facts(), name), settings.user);
  return EnvAccess{std::move(st),       std::move(*env),      std::move(*img),
                   std::move(settings), std::move(identity), std::move(dir)};
}

}  // namespace

Result<EnvAccess> open_env(Context& c, const std::string& name, Purpose purpose) {
  auto path = TRY(c.store_path());
  auto existing = TRY(store::Store::open_existing(path, store::Store::Access::kRead));
  if (!existing) return empty_store(name, path);
  std::optional<store::EnvRecord> env;
  std::optional<store::ImageRecord> img;
  TRY(look_up(*existing, name, /*copy=*/false, env, img));
  return finish_open(std::move(*existing), name, std::move(env), std::move(img), purpose);
}

Result<EnvAccess> open_env_to_run(Context& c, const std::string& name) {
  auto path = TRY(c.store_path());
  if (!store::Store::exists(path)) return open_env(c, name);  // says what is missing
  auto st = TRY(store::Store::open_without_catalog(path));
  std::optional<store::EnvRecord> env;
  std::optional<store::ImageRecord> img;
  // Only a name an env may have names a copy (no '/', no "..").
  auto copy = store::valid_env_name(name) ? store::read_run_record(st.fd(), name) : std::nullopt;
  if (copy) {
    env = std::move(copy->env);
    img = std::move(copy->image);
  } else {
    TRY(st.open_catalog());
    TRY(look_up(st, name, /*copy=*/true, env, img));
  }
  return finish_open(std::move(st), name, std::move(env), std::move(img), Purpose::kEnter);
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
  auto mode = TRY(net::parse_network(e.settings.network));
  spec.own_network = mode != net::NetworkMode::kHost;
  spec.privileged = e.settings.privileged;
  RunDir run{Fd(), store::env_paths(e.env.id).run};
  run.fd = TRY(sys::open_at(e.store.fd(), run.path, O_RDONLY | O_DIRECTORY));
  TRY(write_etc_files(run, spec, mode));
  const runtime::IdentityPlan& id = e.identity;
  spec.rootless = id.user_namespace;  // the identity decides, as for the maps below
  if (id.add_user) TRY(add_user(e, run, spec, id));
  if (id.user_namespace && id.uids.size() == 1)
    spec.apt_no_sandbox = TRY(run.write(
        "apt-sandbox.conf",
        "// Written by togo: this env maps one user id (the host grants no subordinate\n"
        "// ids), so apt cannot switch to _apt and downloads as root.\n"
        "APT::Sandbox::User \"root\";\n"));
  runtime::Plan plan = runtime::build_plan(spec);
  if (plan.harden) {
    plan.caps = runtime::default_caps();
    plan.last_cap = runtime::read_last_cap();
    plan.seccomp = default_seccomp_filter();
  }
  if (plan.rootless) {
    // Your own id is root inside (or yourself, with --user); your
    // subordinate ids, where the host grants them, are everyone else (so
    // chown and apt's _apt work).
    plan.uid_map = id.uids;
    plan.gid_map = id.gids;
  }
  return plan;
}

std::expected<std::optional<runtime::StartedEnv>, runtime::LaunchFailure> start_env(
    EnvAccess& e, bool persistent, int first) {
  auto fail = [](Error err) {
    return std::unexpected(runtime::LaunchFailure{125, std::move(err)});
  };
  auto lock = store::try_lock_env(e.store, e.env);
  if (!lock) return fail(lock.error());
  if (!lock->valid()) return std::nullopt;
  runtime::StartConfig cfg;
  cfg.env_dir = e.dir.get();
  cfg.lock = lock->get();
  cfg.first = first;
  cfg.persistent = persistent;
  // Read by init past the page cache to notice a drive that went away; not
  // every filesystem takes O_DIRECT (tmpfs does not), and then nothing is.
  Fd drive = store::open_past_cache(e.store.fd());
  cfg.drive = drive.get();
  cfg.linger_ms = e.settings.linger_ms;
  auto plan = env_plan(e);
  if (!plan) return fail(std::move(plan.error()));
  // The env's last init may still be on its way out (it frees the lock
  // first): its overlay and its place in the env's cgroup go only with it.
  runtime::wait_init_gone(e.dir.get(), 5000);
  auto cgroup = env_cgroup(e);
  if (!cgroup) return fail(std::move(cgroup.error()));
  // A private network: slirp4netns, tied to the env by a pipe whose write
  // end init holds, so it ends with the env, not with this togo.
  Fd net_exit_r, net_exit_w;
  net::UserNetOptions net_opts;
  if (e.settings.network == "private") {
    int fds[2];
    if (auto r = sys::pipe(fds); !r) return fail(std::move(r.error()));
    net_exit_r = Fd(fds[0]);
    net_exit_w = Fd(fds[1]);
    cfg.hold = net_exit_w.get();
    for (auto& p : e.settings.ports) {
      auto port = net::parse_port(p);
      if (!port) return fail(std::move(port.error()));
      net_opts.ports.push_back(*port);
    }
    net_opts.helpers = {net::HelperKind::kSlirp4netns};
    net_opts.env_exit_fd = net_exit_r.get();
  }
  if (!cgroup->empty() || net_exit_r.valid())
    cfg.before_setup = [&](pid_t pid) -> Result<void> {
      if (!cgroup->empty()) TRY(cgroup->add(pid));
      if (net_exit_r.valid()) {
        auto net = net::UserNet::start(pid, net_opts);
        if (!net && net.error().kind != ErrorKind::kFailed)
          return std::unexpected(std::move(net.error()).context("private network"));
        if (!net)  // a helper missing, no /dev/net/tun, or a helper that would not start
          return std::unexpected(host_check::point_at(
              std::move(net.error()).context("private network"), host_check::kNetHelpers));
        net->release();
      }
      return {};
    };
  bool overlay = e.env.rootfs != "copy";
  if (overlay)
    if (auto r = store::retire_overlay_work(e.dir.get()); !r) return fail(std::move(r.error()));
  auto started = runtime::start_env(*plan, cfg);
  if (!started) {
    (void)cgroup->remove();
    return std::unexpected(std::move(started.error()));
  }
  return std::optional<runtime::StartedEnv>(*started);
}

runtime::SpawnRequest session_request(const EnvAccess& e, const std::vector<std::string>& argv) {
  const Settings& settings = e.settings;
  runtime::SpawnRequest req;
  // The image's config, as `podman run` reads it: the entrypoint always
  // runs, with the command given or else the image's Cmd; without either a
  // login shell. Its Env and WorkingDir come before the env's own settings.
  image::oci::ImageConfig config;
  if (auto parsed = image::oci::parse_config(e.image.config)) config = std::move(*parsed);
  req.argv = config.entrypoint;
  const auto& args = argv.empty() ? config.cmd : argv;
  req.argv.insert(req.argv.end(), args.begin(), args.end());
  if (const char* term = std::getenv("TERM")) req.env.push_back(std::string("TERM=") + term);
  for (auto& kv : config.env) req.env.push_back(kv);
  for (auto& kv : settings.env) req.env.push_back(kv);
  req.cwd = settings.workdir.empty() ? config.working_dir : settings.workdir;
  if (!e.settings.user && e.identity.uid == 0) req.user = config.user;
  // The identity the env is started with (see env_plan).
  req.uid = e.identity.uid;
  req.gid = e.identity.gid;
  req.pty = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
  struct winsize ws;
  if (req.pty && ::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
    req.rows = ws.ws_row;
    req.cols = ws.ws_col;
  }
  return req;
}

}  // namespace togo::cli
