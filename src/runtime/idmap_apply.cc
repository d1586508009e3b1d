#include "runtime/idmap_apply.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/fd.h"
#include "base/fs.h"
#include "base/sys.h"
#include "base/text.h"
#include "runtime/userdb_env.h"

namespace togo::runtime {

namespace {

constexpr const char* kInstallHint =
    "install it (Debian, Ubuntu: `sudo apt install uidmap`; Fedora, RHEL: `sudo dnf install "
    "shadow-utils`; Arch: `sudo pacman -S shadow`)";

// True if the file capabilities in the xattr grant `cap` as permitted.
bool file_caps_grant(const std::string& path, int cap) {
  struct vfs_ns_cap_data data {};
  ssize_t n = ::getxattr(path.c_str(), "security.capability", &data, sizeof data);
  if (n < static_cast<ssize_t>(XATTR_CAPS_SZ_1)) return false;
  uint32_t rev = data.magic_etc & VFS_CAP_REVISION_MASK;
  if (rev != VFS_CAP_REVISION_1 && rev != VFS_CAP_REVISION_2 && rev != VFS_CAP_REVISION_3)
    return false;
  return cap < 32 && (data.data[0].permitted & (1u << cap));
}

}  // namespace

std::string id_helper_problem(const std::string& path, int cap) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) return path + ": " + std::strerror(errno);
  bool setuid_root = (st.st_mode & S_ISUID) && st.st_uid == 0;
  if (!setuid_root && !file_caps_grant(path, cap))
    return path + " is neither setuid root nor given " +
           (cap == CAP_SETUID ? "cap_setuid" : "cap_setgid") +
           " as a file capability; reinstall it, or `sudo chmod u+s " + path + "`";
  struct statvfs vfs;
  if (::statvfs(path.c_str(), &vfs) == 0 && (vfs.f_flag & ST_NOSUID))
    return path + " is on a filesystem mounted nosuid, where it cannot gain privileges";
  if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1)
    return "togo runs with no_new_privs set (inside another sandbox?), so " + path +
           " cannot gain privileges";
  return {};
}

namespace {

Result<void> write_proc(const std::string& dir, const char* file, const std::string& text) {
  Fd fd = TRY(sys::open_at(AT_FDCWD, dir + file, O_WRONLY));
  // The kernel takes a map in exactly one write.
  ssize_t n;
  do n = ::write(fd.get(), text.data(), text.size());
  while (n < 0 && errno == EINTR);
  if (n < 0) return sys_error(errno, "writing " + dir + file);
  if (static_cast<size_t>(n) != text.size()) return sys_error(EIO, "writing " + dir + file);
  return {};
}

// A helper started and not yet waited for.
struct Running {
  pid_t pid = -1;
  Fd output;            // its stdout and stderr
  std::string command;  // for messages
};

Result<Running> start_helper(std::string_view name, int cap, pid_t child,
                             const std::vector<IdMapping>& map) {
  const char* path_env = std::getenv("PATH");
  IdHelper helper = find_id_helper(name, path_env ? path_env : "", cap);
  if (!helper.problem.empty()) return error(ErrorKind::kFailed, helper.problem);

  std::vector<std::string> args = {helper.path, std::to_string(child)};
  for (auto& a : map_args(map)) args.push_back(std::move(a));
  Running r;
  for (size_t i = 0; i < args.size(); i++) (r.command += i ? " " : "") += args[i];
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char env_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char env_lang[] = "LC_ALL=C";
  char* envp[] = {env_path, env_lang, nullptr};

  int fds[2];
  TRY(sys::pipe(fds));
  Fd out_r(fds[0]), out_w(fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  ::posix_spawn_file_actions_adddup2(&actions, out_w.get(), 2);
  // The launcher blocks signals while it waits; the helper starts clean.
  sigset_t none, all;
  ::sigemptyset(&none);
  ::sigfillset(&all);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  int err = ::posix_spawn(&r.pid, helper.path.c_str(), &actions, &attr, argv.data(), envp);
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  if (err != 0) return sys_error(err, "running " + helper.path);
  r.output = std::move(out_r);
  return r;
}

Result<void> finish_helper(Running& r) {
  auto output = sys::read_all(r.output.get(), r.command);
  int status = 0;
  while (::waitpid(r.pid, &status, 0) < 0)
    if (errno != EINTR) return sys_error(errno, "waiting for " + r.command);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  std::string said = output ? *output : std::string();
  while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
  // One line: the helper's own lines are joined.
  for (size_t pos; (pos = said.find('\n')) != std::string::npos;) said.replace(pos, 1, "; ");
  std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status));
  return error(ErrorKind::kFailed, r.command + ": " + how + (said.empty() ? "" : ": " + said),
               "check the caller's lines in /etc/subuid and /etc/subgid");
}

}  // namespace

IdHelper find_id_helper(std::string_view name, std::string_view path_env, int cap) {
  std::string path = fs::find_program(name, std::string(path_env) + ":/usr/bin:/bin");
  if (path.empty()) return IdHelper{{}, std::string(name) + " is not installed; " + kInstallHint};
  return IdHelper{path, id_helper_problem(path, cap)};
}

Result<IdFacts> read_id_facts() {
  IdFacts f;
  f.uid = ::getuid();
  f.gid = ::getgid();
  f.invoker = TRY(read_invoker());
  if (f.uid == 0) return f;  // root maps nothing
  f.subuid = read_host_file("/etc/subuid");
  f.subgid = read_host_file("/etc/subgid");
  const char* path_env = std::getenv("PATH");
  std::string_view path = path_env ? path_env : "";
  if (!parse_subids(f.subuid, f.invoker.user.name, f.uid).empty())
    f.uid_helper_problem = find_id_helper("newuidmap", path, CAP_SETUID).problem;
  if (!parse_subids(f.subgid, f.invoker.user.name, f.uid).empty())
    f.gid_helper_problem = find_id_helper("newgidmap", path, CAP_SETGID).problem;
  // newuidmap and newgidmap look the caller up in /etc/passwd and refuse
  // one that is not there.
  if (!f.invoker.in_passwd) {
    std::string why = "uid " + std::to_string(f.uid) + " is not in /etc/passwd, which newuidmap needs";
    if (f.uid_helper_problem.empty()) f.uid_helper_problem = why;
    if (f.gid_helper_problem.empty()) f.gid_helper_problem = why;
  }
  return f;
}

Result<void> write_id_maps(pid_t child, const std::vector<IdMapping>& uids,
                           const std::vector<IdMapping>& gids) {
  auto shown = [](const std::vector<IdMapping>& m) {
    std::string out;
    for (auto& a : map_args(m)) out += (out.empty() ? "" : " ") + a;
    return out;
  };
  if (!valid_map(uids)) return error(ErrorKind::kFailed, "invalid uid map: " + shown(uids));
  if (!valid_map(gids)) return error(ErrorKind::kFailed, "invalid gid map: " + shown(gids));
  const bool root = ::geteuid() == 0;
  const bool uid_direct = root || is_single_own(uids, ::geteuid());
  const bool gid_direct = root || is_single_own(gids, ::getegid());
  const std::string dir = "/proc/" + std::to_string(child) + "/";

  // Every error says which map it was about, once.
  Result<void> result;
  auto keep_first = [&](Result<void> r, const char* what) {
    if (result && !r) result = std::unexpected(std::move(r.error()).context(what));
  };
  constexpr const char* kUids = "mapping user ids";
  constexpr const char* kGids = "mapping group ids";

  // The helpers run in parallel with each other and with the direct writes:
  // the two maps are independent, and only newgidmap touches setgroups.
  Running uid_helper, gid_helper;
  if (!uid_direct)
    uid_helper = TRY_CTX(start_helper("newuidmap", CAP_SETUID, child, uids), kUids);
  if (!gid_direct) {
    auto started = start_helper("newgidmap", CAP_SETGID, child, gids);
    if (started)
      gid_helper = std::move(*started);
    else
      keep_first(std::unexpected(std::move(started.error())), kGids);
  }

  if (result && uid_direct) keep_first(write_proc(dir, "uid_map", map_text(uids)), kUids);
  if (result && gid_direct) {
    // SECURITY: an unprivileged writer may map its own gid only after
    // setgroups is denied, so nobody inside can drop a group that denies
    // them access on the host.
    if (!root) keep_first(write_proc(dir, "setgroups", "deny"), kGids);
    if (result) keep_first(write_proc(dir, "gid_map", map_text(gids)), kGids);
  }
  if (uid_helper.pid > 0) keep_first(finish_helper(uid_helper), kUids);
  if (gid_helper.pid > 0) keep_first(finish_helper(gid_helper), kGids);
  return result;
}

}  // namespace togo::runtime
