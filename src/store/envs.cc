#include "store/envs.h"

#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "base/fs.h"
#include "base/sys.h"
#include "store/layout.h"

namespace togo::store {

std::string new_env_id() {
  unsigned long long r[1] = {0};
  if (::getrandom(r, sizeof r, 0) != sizeof r) r[0] ^= static_cast<unsigned long long>(::getpid());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", r[0]);
  return buf;
}

Result<void> create_env(Store& st, const EnvRecord& env,
                        const std::function<Result<void>(const std::string&)>& fill) {
  int s = st.fd();
  std::string stage = TRY(st.make_staging_dir());
  bool moved = false;
  auto work = [&]() -> Result<void> {
    for (const char* sub : {"upper", "work", "mount", "run"})
      TRY(sys::mkdir_at(s, stage + "/" + sub, 0755));
    // Everything under the stage is made durable by the syncfs below.
    Fd lock = TRY(sys::open_at(s, stage + "/lock", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644));
    TRY(fill(stage));
    if (::syncfs(s) < 0) return sys_error(errno, "syncing the store's filesystem");
    EnvPaths p = env_paths(env.id);
    TRY(sys::rename_at(s, stage, s, p.dir, RENAME_NOREPLACE));
    moved = true;
    // A rename is durable once both directories are synced.
    TRY(fs::sync_dir_at(s, kEnvs));
    TRY(fs::sync_dir_at(s, kTmp));
    return st.catalog().transaction([&] { return st.catalog().put_env(env); });
  }();
  if (!work) {
    (void)fs::remove_tree(s, stage);
    if (moved) (void)fs::remove_tree(s, env_paths(env.id).dir);
  }
  return work;
}

Result<Fd> try_lock_env(Store& st, const EnvRecord& env) {
  Fd fd = TRY(sys::open_at(st.fd(), env_paths(env.id).lock, O_RDWR | O_NOFOLLOW));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) return Fd();
    return sys_error(errno, "locking environment " + env.name);
  }
  return fd;
}

namespace {
constexpr std::string_view kRetiredPrefix = "retired-";
}  // namespace

Result<void> retire_overlay_work(int env_dir) {
  // Only an empty one: what a crash left in it may belong to ids of the
  // env's user namespace that this user cannot remove; overlayfs can.
  auto work = sys::open_at(env_dir, "work/work", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!work && work.error().err == EACCES) {
    // Overlayfs makes it mode 0; in a user namespace it is ours on the host.
    struct stat st;
    if (::fstatat(env_dir, "work/work", &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_uid != ::geteuid() ||
        ::fchmodat(env_dir, "work/work", 0700, 0) < 0)
      return {};
    work = sys::open_at(env_dir, "work/work", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  }
  if (!work) return work.error().err == ENOENT ? Result<void>() : std::unexpected(work.error());
  if (!fs::list_dir(work->get()).empty()) return {};
  std::string to = "work/" + fs::temp_name(kRetiredPrefix);
  if (::renameat(env_dir, "work/work", env_dir, to.c_str()) == 0 || errno == ENOENT) return {};
  return sys_error(errno, "moving aside the env's overlay work directory");
}

void remove_retired_work(int env_dir) {
  auto work = sys::open_at(env_dir, "work", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!work) return;
  for (const auto& name : fs::list_dir(work->get()))
    if (name.starts_with(kRetiredPrefix)) (void)fs::remove_tree(work->get(), name);
}

Result<void> remove_env(Store& st, const EnvRecord& env) {
  TRY(st.catalog().transaction([&] { return st.catalog().delete_env(env.id); }));
  // Forgotten first: a crash from here leaves an orphan directory that
  // `togo fsck` removes, never a catalog entry without its files.
  (void)::unlinkat(st.fd(), (std::string(kRunCache) + "/" + env.name).c_str(), 0);
  return fs::remove_tree(st.fd(), env_paths(env.id).dir);
}

}  // namespace togo::store
