// togo export | import: an environment as one file, and back.
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <utility>

#include "base/fs.h"
#include "base/sys.h"
#include "cli/commands.h"
#include "cli/env_access.h"
#include "cli/output_file.h"
#include "cli/settings.h"
#include "image/env_archive.h"
#include "runtime/idmap_apply.h"
#include "runtime/idmap_plan.h"
#include "store/envs.h"
#include "store/layout.h"

namespace togo::cli {

namespace {

// The env's lock, held while its files are read so that nothing starts it.
// An env that only lingers after its last session is stopped first, as
// `togo rm` does; one in use is refused: its files may be changing, and an
// export is meant to recreate the env, not a torn copy of it.
Result<Fd> hold_stopped(EnvAccess& e) {
  Fd held = TRY(store::try_lock_env(e.store, e.env));
  if (held.valid()) return held;
  if (auto ch = runtime::connect_env(e.dir.get()); ch && *ch) {
    auto status = runtime::query_status((*ch)->get());
    if (status && status->sessions == 0 && !status->persistent) {
      (void)runtime::stop_env((*ch)->get(), e.dir.get(), 0);
      held = TRY(store::try_lock_env(e.store, e.env));
      if (held.valid()) return held;
    }
  }
  return error(ErrorKind::kConflict, "the environment is running",
               "stop it first: `togo stop " + e.env.name + "`");
}

// Rootless, the env's files belong to host ids that stand for others inside
// it (the caller for root, subordinate ids for the rest). An export records
// the owners the env sees and may read what the env's root may: so this
// process enters a user namespace with the env's id maps before it reads
// the tree. A helper child, still outside, writes the maps: newuidmap and
// newgidmap only work from there. Nothing runs in other threads yet.
Result<void> enter_env_ids(const runtime::IdentityPlan& id) {
  if (!id.user_namespace) return {};
  int fds[2];
  TRY(sys::pipe(fds));
  Fd go_r(fds[0]), go_w(fds[1]);
  TRY(sys::pipe(fds));
  Fd said_r(fds[0]), said_w(fds[1]);
  pid_t self = ::getpid();
  pid_t helper = ::fork();
  if (helper < 0) return sys_error(errno, "fork");
  if (helper == 0) {
    char c = 0;
    ssize_t n;
    do n = ::read(go_r.get(), &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) ::_exit(1);  // the parent could not unshare; it says why
    auto r = runtime::write_id_maps(self, id.uids, id.gids);
    if (!r) (void)sys::write_all(said_w.get(), r.error().message, "status");
    ::_exit(r ? 0 : 1);
  }
  go_r.reset();
  said_w.reset();
  int unshared = ::unshare(CLONE_NEWUSER) < 0 ? errno : 0;
  if (!unshared) (void)sys::write_all(go_w.get(), "g", "the id mapper");
  go_w.reset();
  int status = 0;
  while (::waitpid(helper, &status, 0) < 0 && errno == EINTR) {
  }
  if (unshared) return sys_error(unshared, "creating a user namespace to read the env's files");
  std::string said = sys::read_all(said_r.get(), "the id mapper").value_or("");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return error("entering the environment's user namespace: " +
                 (said.empty() ? std::string("mapping ids failed") : said));
  return {};
}

}  // namespace

Result<int> cmd_export(Context& c) {
  const std::string& name = c.inv.args[0];
  const std::string& path = c.inv.args[1];
  std::string what = "export " + name;
  image::EnvExportOptions opts;
  opts.compression =
      TRY_CTX(image::parse_export_compression(c.inv.value("--compression").value_or("zstd")), what);
  opts.include_image = !c.inv.flag("--no-image");
  opts.notice = Context::notice;
  if (path == "-" && ::isatty(STDOUT_FILENO))
    return error(ErrorKind::kUsage, what + ": refusing to write an archive to a terminal",
                 "redirect the output, or give a FILE");
  EnvAccess e = TRY(open_env(c, name));
  Fd held = TRY_CTX(hold_stopped(e), what);
  store::EnvPaths p = store::env_paths(e.env.id);
  // SECURITY: beneath the store, no symlink followed; pack() walks it by
  // directory fds from there.
  Fd tree = TRY_CTX(
      sys::open_dir_beneath(e.store.fd(), e.env.rootfs == "copy" ? p.rootfs : p.upper), what);
  // Private (0600): an env's files may hold secrets.
  std::optional<OutputFile> file;
  if (path != "-") file.emplace(TRY_CTX(OutputFile::open(path, 0600), what));
  TRY_CTX(enter_env_ids(e.identity), what);
  TRY_CTX(
      image::write_env_archive(e.store, e.env, tree.get(), file ? file->fd() : STDOUT_FILENO, opts),
      what);
  if (file) {
    TRY_CTX(file->commit(), what);
    std::printf("%s\n", path.c_str());
  }
  return 0;
}

Result<int> cmd_import(Context& c) {
  const std::string& path = c.inv.args[0];
  std::string name = c.inv.args.size() > 1 ? c.inv.args[1] : "";
  std::string what = "import " + path;
  if (!name.empty() && !store::valid_env_name(name))
    return error(ErrorKind::kUsage, what + ": " + name + ": not a valid environment name",
                 "use up to 63 letters, digits, '.', '_' or '-', starting with a letter or digit");
  Fd file;
  int in = STDIN_FILENO;
  if (path != "-") {
    file = TRY_CTX(sys::open_at(AT_FDCWD, path, O_RDONLY), what);
    struct stat sb;
    if (::fstat(file.get(), &sb) < 0) return sys_error(errno, what);
    if (S_ISDIR(sb.st_mode))
      return error(ErrorKind::kUsage, what + ": is a directory, not an export");
    in = file.get();
  } else if (::isatty(STDIN_FILENO)) {
    return error(ErrorKind::kUsage, what + ": refusing to read an archive from a terminal",
                 "redirect the input, or give a FILE");
  }
  auto st = TRY(c.open_store(store::Store::Access::kWrite));
  image::EnvImportOptions opts;
  opts.name = name;
  opts.what = path == "-" ? "stdin" : fs::absolute(path);
  opts.notice = Context::notice;
  bool as_user = false;
  // Settings are checked as `togo config` would, and kept in canonical form.
  opts.check_header = [&](image::ExportHeader& h) -> Result<void> {
    auto s = parse_settings(image::settings_text(h.settings));
    if (!s) return error(ErrorKind::kBadInput, "its settings: " + s.error().message);
    if (auto ok = check_settings(*s); !ok)
      return error(ErrorKind::kBadInput, "its settings: " + ok.error().message);
    h.settings = image::settings_lines(format_settings(*s));
    as_user = s->user;
    return {};
  };
  auto r = TRY_CTX(image::import_env_archive(st, in, opts), what);
  // Once, here rather than at every run: what a rootless env will lack.
  if (auto facts = runtime::read_id_facts()) {
    auto id = runtime::plan_identity(*facts, as_user);
    if (!id.notice.empty()) Context::notice(id.notice);
  }
  std::printf("%s\n", r.env.name.c_str());
  return 0;
}

}  // namespace togo::cli
