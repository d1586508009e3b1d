// The real LiveProbes: the few things `togo doctor` must try rather than
// read. Anything that changes namespaces, mounts or the seccomp state runs in
// a child process (child_run.h) that reports {step, errno}.
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/fd.h"
#include "base/fs.h"
#include "doctor/child_run.h"
#include "doctor/host_view.h"
#include "runtime/overlay_probe.h"

namespace togo::doctor {
namespace {

constexpr int kChildTimeoutMs = 500;

/// What a child reports: the index of the step that failed (-1: none).
struct Failed {
  int step = -1;
  int err = 0;
};

double now_ms() {
  struct timespec t;
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

/// Runs `body` (system calls only) in a child and names the step it failed at.
template <typename Body>
Outcome in_child(Body body, std::initializer_list<const char*> steps) {
  auto c = run_child<Failed>(
      [&](int out) {
        Failed f = body();
        (void)!::write(out, &f, sizeof f);
      },
      kChildTimeoutMs);
  switch (c.end) {
    case ChildEnd::kNoPipe:
      return {"creating a pipe", c.err};
    case ChildEnd::kNoFork:
      return {"fork", c.err};
    case ChildEnd::kTimedOut:
      return {"the test process did not answer within 500 ms", ETIMEDOUT};
    case ChildEnd::kDied:
      return {"the test process died", ECHILD};
    case ChildEnd::kAnswered:
      break;
  }
  if (c.report.step < 0) return {};
  auto it = steps.begin();
  for (int i = 0; i < c.report.step && it != steps.end(); i++) ++it;
  return {it == steps.end() ? "?" : *it, c.report.err};
}

/// write(2) of a whole short text to a file; errno or 0. No allocation.
int write_file(const char* path, const char* text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, text, std::strlen(text));
  int err = n < 0 ? errno : 0;
  ::close(fd);
  return err;
}

/// "/proc/<pid>/<file>" into `buf`, without allocating.
void proc_path(char* buf, size_t size, long pid, const char* file) {
  char digits[24];
  int n = 0;
  do digits[n++] = static_cast<char>('0' + pid % 10);
  while ((pid /= 10) > 0 && n < 23);
  size_t i = 0;
  for (const char* s = "/proc/"; *s && i + 1 < size; s++) buf[i++] = *s;
  while (n > 0 && i + 1 < size) buf[i++] = digits[--n];
  if (i + 1 < size) buf[i++] = '/';
  for (const char* s = file; *s && i + 1 < size; s++) buf[i++] = *s;
  buf[i] = '\0';
}

/// Own-id maps, formatted before fork.
struct SelfMaps {
  char uid_map[48], gid_map[48];
  explicit SelfMaps(uid_t uid, gid_t gid) {
    std::snprintf(uid_map, sizeof uid_map, "0 %u 1\n", static_cast<unsigned>(uid));
    std::snprintf(gid_map, sizeof gid_map, "0 %u 1\n", static_cast<unsigned>(gid));
  }
  int write() const {
    if (int e = write_file("/proc/self/setgroups", "deny")) return e;
    if (int e = write_file("/proc/self/uid_map", uid_map)) return e;
    return write_file("/proc/self/gid_map", gid_map);
  }
};

Outcome try_namespaces(int flags, bool as_nobody) {
  const bool root = ::geteuid() == 0 && !as_nobody;
  SelfMaps maps(as_nobody ? 65534 : ::geteuid(), as_nobody ? 65534 : ::getegid());
  return in_child(
      [&]() -> Failed {
        if (as_nobody && (::setgroups(0, nullptr) < 0 || ::setresgid(65534, 65534, 65534) < 0 ||
                          ::setresuid(65534, 65534, 65534) < 0))
          return {0, errno};
        // Changing ids made /proc/self root's; a dumpable process owns it again.
        if (as_nobody && ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) return {0, errno};
        if (::unshare(flags) < 0) return {1, errno};
        if ((flags & CLONE_NEWUSER) && !root)
          if (int e = maps.write()) return {2, e};
        if (flags & CLONE_NEWNS) {
          if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return {3, errno};
          if (::mount("togo-doctor", "/", "tmpfs", 0, "size=4k") < 0) return {4, errno};
        }
        return {};
      },
      {"becoming nobody", "unshare", "writing the id maps", "making mounts private",
       "mounting a tmpfs in the new mount namespace"});
}

Outcome try_idmapped(const std::string& dir) {
  const bool root = ::geteuid() == 0;
  SelfMaps maps(::geteuid(), ::getegid());
  const char* path = dir.c_str();
  return in_child(
      [&]() -> Failed {
        if (!root) {
          if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) return {0, errno};
          if (int e = maps.write()) return {0, e};
        }
        int tree = ::open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (tree < 0) return {1, errno};
        // A user namespace to map through: a child that waits in one.
        int hold[2];
        if (::pipe2(hold, O_CLOEXEC) < 0) return {2, errno};
        long helper =
            ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
        if (helper < 0) return {2, errno};
        if (helper == 0) {
          ::close(hold[1]);
          char c;
          (void)!::read(hold[0], &c, 1);
          ::_exit(0);
        }
        Failed f;
        char file[64];
        proc_path(file, sizeof file, helper, "uid_map");
        int e = write_file(file, "0 0 1\n");
        if (!e) {
          proc_path(file, sizeof file, helper, "gid_map");
          e = write_file(file, "0 0 1\n");
        }
        if (e) f = {3, e};
        int userns = -1;
        if (f.step < 0) {
          proc_path(file, sizeof file, helper, "ns/user");
          userns = ::open(file, O_RDONLY | O_CLOEXEC);
          if (userns < 0) f = {3, errno};
        }
        if (f.step < 0) {
          struct mount_attr attr = {};
          attr.attr_set = MOUNT_ATTR_IDMAP;
          attr.userns_fd = static_cast<uint64_t>(userns);
          if (::mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) f = {4, errno};
        }
        ::close(hold[1]);
        ::waitpid(static_cast<pid_t>(helper), nullptr, 0);
        return f;
      },
      {"entering a user namespace", "open_tree", "creating a user namespace to map through",
       "mapping its ids", "mount_setattr MOUNT_ATTR_IDMAP"});
}

Outcome try_seccomp() {
  return in_child(
      []() -> Failed {
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return {0, errno};
        struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
        struct sock_fprog prog = {1, allow};
        if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) return {1, errno};
        // togo's filter answers EPERM and ENOSYS: SECCOMP_RET_ERRNO.
        uint32_t action = SECCOMP_RET_ERRNO;
        if (::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) < 0) return {2, errno};
        return {};
      },
      {"setting no_new_privs", "installing a seccomp filter", "SECCOMP_RET_ERRNO"});
}

Result<void> try_overlay(const std::string& dir) {
  std::string tmp = fs::join(dir, fs::temp_name(".togo-doctor-"));
  if (::mkdir(tmp.c_str(), 0700) < 0) return sys_error(errno, "creating " + tmp);
  runtime::RunSpec spec;
  spec.store = tmp;
  spec.layers = {"lower"};
  spec.upper = "upper";
  spec.work = "work";
  spec.mount = "mnt";
  spec.rootless = ::geteuid() != 0;
  Result<void> r;
  for (const char* d : {"lower", "upper", "work", "mnt"})
    if (r && ::mkdir(fs::join(tmp, d).c_str(), 0755) < 0)
      r = sys_error(errno, "creating " + tmp + "/" + d);
  if (r) r = runtime::probe_overlay(spec);
  (void)fs::remove_tree(AT_FDCWD, tmp);
  return r;
}

int try_openat2() {
  struct open_how how = {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
  if (fd < 0) return errno;
  ::close(static_cast<int>(fd));
  return 0;
}

int try_open_rw(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

std::optional<FsStats> fs_stats(const std::string& path) {
  struct statfs sf;
  struct statvfs sv;
  struct stat st;
  if (::statfs(path.c_str(), &sf) < 0 || ::statvfs(path.c_str(), &sv) < 0 ||
      ::stat(path.c_str(), &st) < 0)
    return std::nullopt;
  FsStats f;
  f.magic = static_cast<int64_t>(sf.f_type);
  f.block_size = sv.f_frsize;
  f.blocks = sv.f_blocks;
  f.available = sv.f_bavail;
  f.dev_major = major(st.st_dev);
  f.dev_minor = minor(st.st_dev);
  return f;
}

std::optional<std::string> program_output(const std::vector<std::string>& args) {
  if (args.empty()) return std::nullopt;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) return std::nullopt;
  Fd r(fds[0]), w(fds[1]);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  char env_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char env_lang[] = "LC_ALL=C";
  char* envp[] = {env_path, env_lang, nullptr};
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, w.get(), 1);
  ::posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int err = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp);
  ::posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return std::nullopt;
  w.reset();
  std::string out;
  const double deadline = now_ms() + 500;
  for (;;) {
    int left = static_cast<int>(deadline - now_ms());
    struct pollfd p = {r.get(), POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, left) <= 0) {
      reap(pid, true);
      return std::nullopt;
    }
    char buf[4096];
    ssize_t n = ::read(r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out.size() < 65536) out.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < deadline) ::usleep(2000);
  if (done == 0) {
    reap(pid, true);
    return std::nullopt;
  }
  if (done != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return first_line(out);
}

}  // namespace

LiveProbes real_live() {
  LiveProbes l;
  l.namespaces = [](int flags) { return try_namespaces(flags, false); };
  l.unprivileged_userns = [] { return try_namespaces(CLONE_NEWUSER | CLONE_NEWNS, true); };
  l.overlay = try_overlay;
  l.idmapped_mount = try_idmapped;
  l.openat2 = try_openat2;
  l.seccomp = try_seccomp;
  l.kvm = [](const std::string& device) { return run_kvm_test(device, 300); };
  l.open_rw = try_open_rw;
  l.fs_stats = fs_stats;
  l.output = program_output;
  return l;
}

}  // namespace togo::doctor
