#include "base/sys.h"

#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace togo::sys {

Result<Fd> open_at(int dirfd, const std::string& path, int flags, mode_t mode) {
  int fd;
  do fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return sys_error(errno, "opening " + path);
  return Fd(fd);
}

Result<Fd> open_at2(int dirfd, const std::string& path, int flags, mode_t mode,
                    unsigned long long resolve) {
  struct open_how how = {};
  how.flags = static_cast<unsigned long long>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = resolve;
  long fd;
  do fd = ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
  while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  if (fd < 0) return sys_error(errno, "opening " + path);
  return Fd(static_cast<int>(fd));
}

Result<Fd> open_dir_beneath(int root, const std::string& path) {
  return open_at2(root, path.empty() ? "." : path, O_RDONLY | O_DIRECTORY, 0,
                  RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}

Result<void> mkdir_at(int dirfd, const std::string& name, mode_t mode) {
  if (::mkdirat(dirfd, name.c_str(), mode) < 0)
    return sys_error(errno, "creating directory " + name);
  return {};
}

Result<void> ensure_dir_at(int dirfd, const std::string& name, mode_t mode) {
  if (::mkdirat(dirfd, name.c_str(), mode) == 0) return {};
  int err = errno;
  struct stat st;
  if (err == EEXIST && ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(st.st_mode))
    return {};
  return sys_error(err == EEXIST ? ENOTDIR : err, "creating directory " + name);
}

Result<void> unlink_at(int dirfd, const std::string& name, int flags) {
  if (::unlinkat(dirfd, name.c_str(), flags) < 0) return sys_error(errno, "removing " + name);
  return {};
}

Result<void> rename_at(int olddir, const std::string& oldname, int newdir,
                       const std::string& newname, unsigned flags) {
  if (::renameat2(olddir, oldname.c_str(), newdir, newname.c_str(), flags) < 0)
    return sys_error(errno, "renaming " + oldname + " to " + newname);
  return {};
}

Result<struct stat> stat_at(int dirfd, const std::string& path, int flags) {
  struct stat st;
  if (::fstatat(dirfd, path.c_str(), &st, flags) < 0) return sys_error(errno, "stat " + path);
  return st;
}

Result<void> fsync(int fd, const std::string& what) {
  if (::fsync(fd) < 0) return sys_error(errno, "syncing " + what);
  return {};
}

Result<void> write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error(errno, "writing " + what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<std::string> read_all(int fd, const std::string& what) {
  // Straight into the string, doubled as it fills: a 64 KiB buffer on the
  // stack cost every short-lived process page faults to reach past it.
  std::string out(4096, '\0');
  size_t used = 0;
  for (;;) {
    if (used == out.size()) out.resize(2 * out.size());
    ssize_t n = ::read(fd, out.data() + used, out.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error(errno, "reading " + what);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  out.resize(used);
  return out;
}

Result<void> pipe(int fds[2]) {
  if (::pipe2(fds, O_CLOEXEC) < 0) return sys_error(errno, "pipe");
  return {};
}

}  // namespace togo::sys
