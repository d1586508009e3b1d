#include "runtime/child.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/proc_title.h"
#include "net/loopback.h"
#include "runtime/caps.h"
#include "runtime/init.h"
#include "runtime/seccomp.h"

namespace togo::runtime {

namespace {

// Reports a failure to the parent and exits; the parent builds the message.
[[noreturn]] void fail(int report_fd, int32_t step, int err, int status = 125) {
  ChildReport r{step, err};
  (void)!::write(report_fd, &r, sizeof r);
  ::_exit(status);
}

// "/proc/self/fd/N" into buf, without allocating.
const char* fd_path(char (&buf)[32], int fd) {
  char digits[12];
  int n = 0;
  do digits[n++] = static_cast<char>('0' + fd % 10);
  while ((fd /= 10) > 0);
  std::memcpy(buf, "/proc/self/fd/", 14);
  int i = 14;
  while (n > 0) buf[i++] = digits[--n];
  buf[i] = '\0';
  return buf;
}

// SECURITY: every path an image controls is resolved inside the env's root:
// symlinks and ".." cannot leave it, and magic links are refused.
int open_in_root(int root, const char* path, int flags) {
  struct open_how how = {};
  how.flags = static_cast<unsigned long long>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd;
  do fd = static_cast<int>(::syscall(SYS_openat2, root, path, &how, sizeof how));
  while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  return fd;
}

// Creates the missing directories of `path` one component at a time, each
// resolved inside the root. Allocation-free: works on a stack copy.
int make_parents(int root, const char* path) {
  char buf[4096];
  size_t len = std::strlen(path);
  if (len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char saved = buf[i];
    buf[i] = '\0';
    int fd = open_in_root(root, buf, O_PATH | O_DIRECTORY);
    if (fd < 0 && errno == ENOENT) {
      char* slash = std::strrchr(buf, '/');
      int parent = slash ? (*slash = '\0', open_in_root(root, buf, O_PATH | O_DIRECTORY))
                         : open_in_root(root, ".", O_PATH | O_DIRECTORY);
      if (slash) *slash = '/';
      if (parent < 0) return -1;
      int rc = ::mkdirat(parent, slash ? slash + 1 : buf, 0755);
      ::close(parent);
      if (rc < 0 && errno != EEXIST) return -1;
    } else if (fd < 0) {
      return -1;
    } else {
      ::close(fd);
    }
    buf[i] = saved;
  }
  return 0;
}

// The directory the last step made something in, kept open for the next
// one with the same parent (/dev has a dozen entries). A mount could hide
// the directory the descriptor names: it is dropped before every step but
// those that mount nothing or bind a file (Create::kFile: a file covers no
// directory, wherever a symlink in the image leads).
struct ParentDir {
  int fd = -1;
  const std::string* path = nullptr;

  int open(int root, const std::string& p) {
    if (fd >= 0 && *path == p) return fd;
    drop();
    fd = open_in_root(root, p.c_str(), O_PATH | O_DIRECTORY);
    if (fd >= 0) path = &p;
    return fd;
  }
  void drop() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    path = nullptr;
  }
};

// Opens a mount target, creating it (a directory or an empty file, and any
// missing parent directory) if missing.
int open_target(int root, const Step& s, ParentDir& dir) {
  int fd = open_in_root(root, s.a.c_str(), O_PATH);
  if (fd >= 0 || errno != ENOENT || s.create == Create::kNone) return fd;
  int parent = dir.open(root, s.parent);
  // An optional step only fills in a file where its directory exists.
  if (parent < 0 && errno == ENOENT && s.parent != "." && !s.optional) {
    if (make_parents(root, s.parent.c_str()) < 0) return -1;
    parent = dir.open(root, s.parent);
  }
  if (parent < 0) return -1;
  // One component under a directory resolved inside the root, and no
  // symlink followed: what is made is what is mounted on.
  if (s.create == Create::kDir) {
    if (::mkdirat(parent, s.base.c_str(), 0755) == 0)
      return ::openat(parent, s.base.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  } else {
    fd = ::openat(parent, s.base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  0644);
    if (fd >= 0) return fd;
  }
  // Already there after all: a symlink that led nowhere, made meanwhile.
  if (errno != EEXIST) return -1;
  return open_in_root(root, s.a.c_str(), O_PATH);
}

// A bind mount through the new mount API: the clone is made read-only
// before it is attached, so there is no window where it is writable.
int bind_mount(int store, int target, const Step& s) {
  int src_dir = s.b[0] == '/' ? AT_FDCWD : store;
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (s.recursive ? AT_RECURSIVE : 0);
  int tree = static_cast<int>(::syscall(SYS_open_tree, src_dir, s.b.c_str(), flags));
  if (tree < 0) return -1;
  if (s.readonly) {
    struct mount_attr attr = {};
    attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (::syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (s.recursive ? AT_RECURSIVE : 0),
                  &attr, sizeof attr) < 0) {
      int err = errno;
      ::close(tree);
      errno = err;
      return -1;
    }
  }
  int rc = static_cast<int>(::syscall(SYS_move_mount, tree, "", target, "",
                                      MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
  int err = errno;
  ::close(tree);
  errno = err;
  return rc;
}

// Makes the tree at `target` a read-only bind of itself.
int remount_readonly(int target) {
  int tree = static_cast<int>(::syscall(SYS_open_tree, target, "",
                                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH |
                                            AT_RECURSIVE));
  if (tree < 0) return -1;
  struct mount_attr attr = {};
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  int rc = static_cast<int>(
      ::syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr));
  if (rc == 0)
    rc = static_cast<int>(::syscall(SYS_move_mount, tree, "", target, "",
                                    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
  int err = errno;
  ::close(tree);
  errno = err;
  return rc;
}

// Hides a directory under the masking tmpfs: the first one mounted, then a
// bind of it (`mask`, an O_PATH descriptor of its root, kept for the next).
int mask_dir(int root, const Step& s, int& mask) {
  int t = open_in_root(root, s.a.c_str(), O_PATH);
  if (t < 0) return -1;
  int rc;
  if (mask < 0) {
    char buf[32];
    rc = ::mount("tmpfs", fd_path(buf, t), "tmpfs", s.flags, s.c.c_str());
    if (rc == 0) mask = open_in_root(root, s.a.c_str(), O_PATH | O_DIRECTORY);
    if (rc == 0 && mask < 0) rc = -1;
  } else {
    int tree = static_cast<int>(::syscall(SYS_open_tree, mask, "",
                                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
    rc = tree < 0 ? -1
                  : static_cast<int>(::syscall(SYS_move_mount, tree, "", t, "",
                                               MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
    int err = errno;
    if (tree >= 0) ::close(tree);
    errno = err;
  }
  int err = errno;
  ::close(t);
  errno = err;
  return rc;
}

// Performs one step; returns -1 with errno set on failure. `mask`: see
// mask_dir. The umask is 0 while steps run.
int run_step(const Step& s, int store, int& root, int& mask, ParentDir& dir) {
  char buf[32];
  bool keeps_dir = s.kind == StepKind::kDevice || s.kind == StepKind::kSymlink ||
                   s.kind == StepKind::kHostname || s.kind == StepKind::kLoopbackUp ||
                   (s.kind == StepKind::kBind && s.create == Create::kFile);
  if (!keeps_dir) dir.drop();
  switch (s.kind) {
    case StepKind::kMakePrivate:
      return ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    case StepKind::kHostname:
      return ::sethostname(s.a.c_str(), s.a.size());
    // SECURITY: the root is nodev: a device node an image brought opens
    // nothing (as root, without a device cgroup, a node of the host's disk
    // would open the disk). The env's devices are on its own /dev.
    case StepKind::kMountOverlay:
      // Paths in the options are relative to the store (our cwd), which keeps
      // them short and free of the characters overlayfs treats specially.
      return ::mount("overlay", s.a.c_str(), "overlay", MS_NODEV, s.b.c_str());
    case StepKind::kBindSelf: {
      if (::mount(s.a.c_str(), s.a.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) return -1;
      struct mount_attr attr = {};
      attr.attr_set = MOUNT_ATTR_NODEV;
      return static_cast<int>(
          ::syscall(SYS_mount_setattr, AT_FDCWD, s.a.c_str(), AT_RECURSIVE, &attr, sizeof attr));
    }
    case StepKind::kOpenRoot:
      root = ::openat(store, s.a.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      return root < 0 ? -1 : 0;
    case StepKind::kMountFs: {
      int t = open_target(root, s, dir);
      if (t < 0) return -1;
      int rc = ::mount(s.b.c_str(), fd_path(buf, t), s.b.c_str(), s.flags,
                       s.c.empty() ? nullptr : s.c.c_str());
      int err = errno;
      ::close(t);
      errno = err;
      return rc;
    }
    case StepKind::kBind: {
      int t = open_target(root, s, dir);
      if (t < 0) return -1;
      // SECURITY: a share never covers /proc or /sys, even through a
      // symlink in the image that leads there.
      struct statfs sfs;
      if (s.not_on_kernel_fs && ::fstatfs(t, &sfs) == 0 &&
          (sfs.f_type == PROC_SUPER_MAGIC || sfs.f_type == SYSFS_MAGIC)) {
        ::close(t);
        errno = EPERM;
        return -1;
      }
      int rc = bind_mount(store, t, s);
      int err = errno;
      ::close(t);
      errno = err;
      return rc;
    }
    case StepKind::kSymlink: {
      int parent = dir.open(root, s.parent);
      if (parent < 0) return -1;
      int rc = ::symlinkat(s.b.c_str(), parent, s.base.c_str());
      return rc < 0 && errno == EEXIST ? 0 : rc;
    }
    case StepKind::kReadOnly: {
      int t = open_in_root(root, s.a.c_str(), O_PATH);
      if (t < 0) return -1;
      int rc = remount_readonly(t);
      int err = errno;
      ::close(t);
      errno = err;
      return rc;
    }
    case StepKind::kDevice: {
      int parent = dir.open(root, s.parent);
      if (parent < 0) return -1;
      return ::mknodat(parent, s.base.c_str(), S_IFCHR | 0666, s.dev);
    }
    case StepKind::kMaskDir:
      return mask_dir(root, s, mask);
    case StepKind::kLoopbackUp:
      if (int err = net::loopback_up()) {
        errno = err;
        return -1;
      }
      return 0;
    case StepKind::kPivotRoot:
      // pivot_root(".", ".") stacks the old root on the new one; detaching
      // it leaves nothing of the host's tree reachable.
      if (::fchdir(root) < 0) return -1;
      if (::syscall(SYS_pivot_root, ".", ".") < 0) return -1;
      if (::umount2(".", MNT_DETACH) < 0) return -1;
      return ::chdir("/");
  }
  errno = EINVAL;
  return -1;
}

// Closes every descriptor but those in keep[0..n) (n <= 8), allocation-free.
void close_all_except(int* keep, int n) {
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && keep[j] < keep[j - 1]; j--) {
      int t = keep[j];
      keep[j] = keep[j - 1];
      keep[j - 1] = t;
    }
  unsigned from = 3;
  for (int i = 0; i < n; i++) {
    if (keep[i] < 0) continue;
    if (static_cast<unsigned>(keep[i]) > from)
      ::syscall(SYS_close_range, from, static_cast<unsigned>(keep[i]) - 1, 0);
    if (static_cast<unsigned>(keep[i]) + 1 > from) from = static_cast<unsigned>(keep[i]) + 1;
  }
  ::syscall(SYS_close_range, from, ~0U, 0);
}

}  // namespace

void child_main(const Plan& plan, const ChildFds& fds) {
  char go;
  if (fds.sync_w >= 0) ::close(fds.sync_w);
  if (::read(fds.sync, &go, 1) != 1) ::_exit(125);  // the parent is gone
  ::close(fds.sync);

  // The store is entered by path, not through an fd from the parent: mount
  // sources must belong to this new mount namespace, and a descriptor
  // opened before clone() points into the parent's.
  int store = ::open(plan.store.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (store < 0 || ::fchdir(store) < 0) fail(fds.report, kStoreStep, errno);
  int root = -1, mask = -1;
  ParentDir dir;
  // What the steps make has the modes they give it (devices 0666), not the
  // caller's umask; the command gets that umask back.
  mode_t umask_before = ::umask(0);
  for (size_t i = 0; i < plan.steps.size(); i++)
    if (run_step(plan.steps[i], store, root, mask, dir) < 0 &&
        !(plan.steps[i].optional && errno == ENOENT))
      fail(fds.report, static_cast<int32_t>(i), errno);
  ::umask(umask_before);
  // SECURITY: init keeps no descriptor of the host's tree (the store, the
  // old root): a process in the env could otherwise reach it through
  // /proc/1/fd. What it keeps are sockets, the log and the env's lock file.
  // Non-dumpable, /proc/1 is closed to the env (runc CVE-2019-5736 went
  // through /proc/<init>/exe).
  int keep[] = {fds.report, fds.listen, fds.first, fds.log, fds.lock, fds.hold, fds.drive};
  close_all_except(keep, 7);
  ::prctl(PR_SET_DUMPABLE, 0);
  // Off the terminal's session: only the host's togo signals sessions.
  ::setsid();
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(fds.log >= 0 ? fds.log : null, 1);
    ::dup2(fds.log >= 0 ? fds.log : null, 2);
    ::close(null);
  }
  // pid 1's command line in the env: "togo-init", not the host's togo
  // command line with its store path.
  proc_title::set("togo-init");
  // SECURITY: from here on nothing in the env gains privileges by exec, and
  // the capabilities and system calls are those container engines allow.
  if (plan.harden) {
    if (set_no_new_privs() < 0) fail(fds.report, kHardenStep, errno);
    if (apply_caps(plan.caps, plan.last_cap) < 0) fail(fds.report, kHardenStep - 1, errno);
    if (install_filter(plan.seccomp) < 0) fail(fds.report, kHardenStep - 2, errno);
  }
  ChildReport ready{kReady, 0};
  (void)!::write(fds.report, &ready, sizeof ready);
  ::close(fds.report);

  InitConfig config;
  config.listen = fds.listen;
  config.first = fds.first;
  config.log = fds.log;
  config.persistent = fds.persistent;
  config.linger_ms = fds.linger_ms;
  config.drive = fds.drive;
  config.lock = fds.lock;
  init_main(config);
}

}  // namespace togo::runtime
