// Copying a tree with everything a store's files carry: owners, modes,
// xattrs, hardlinks, symlinks, special files, holes and times.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <vector>

#include "base/fs.h"
#include "base/sys.h"
#include "crash_state.h"

namespace togo::crashfs {
namespace {

std::string proc(int fd, const std::string& name) {
  std::string p = "/proc/self/fd/" + std::to_string(fd);
  return name.empty() ? p : p + "/" + name;
}

Result<std::vector<std::string>> xattr_names(const std::string& path) {
  for (;;) {
    ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP || errno == EPERM) return std::vector<std::string>{};
      return sys_error(errno, "listing xattrs");
    }
    std::string buf(static_cast<size_t>(n), '\0');
    n = ::llistxattr(path.c_str(), buf.data(), buf.size());
    if (n < 0 && errno == ERANGE) continue;
    if (n < 0) return sys_error(errno, "listing xattrs");
    std::vector<std::string> out;
    for (size_t i = 0; i < static_cast<size_t>(n);) {
      size_t end = buf.find('\0', i);
      out.push_back(buf.substr(i, end - i));
      i = end + 1;
    }
    return out;
  }
}

Result<void> copy_xattrs(const std::string& from, const std::string& to) {
  for (const std::string& key : TRY(xattr_names(from))) {
    ssize_t n = ::lgetxattr(from.c_str(), key.c_str(), nullptr, 0);
    if (n < 0) return sys_error(errno, "reading xattr " + key);
    std::string value(static_cast<size_t>(n), '\0');
    n = ::lgetxattr(from.c_str(), key.c_str(), value.data(), value.size());
    if (n < 0) return sys_error(errno, "reading xattr " + key);
    if (::lsetxattr(to.c_str(), key.c_str(), value.data(), static_cast<size_t>(n), 0) < 0)
      return sys_error(errno, "setting xattr " + key);
  }
  return {};
}

// Copies the data of `from` to `to`, leaving holes where `from` has them.
Result<void> copy_contents(int from, int to, off_t size) {
  off_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(from, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0) data = pos;               // no SEEK_DATA here: copy all
    off_t hole = ::lseek(from, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    while (data < hole) {
      off_t in = data, out = data;
      ssize_t n = ::copy_file_range(from, &in, to, &out, static_cast<size_t>(hole - data), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        char buf[65536];
        n = ::pread(from, buf, std::min<off_t>(hole - data, sizeof buf), data);
        if (n > 0 && ::pwrite(to, buf, static_cast<size_t>(n), data) != n) n = -1;
      }
      if (n < 0) return sys_error(errno, "copying");
      if (n == 0) break;  // the file shrank
      data += n;
    }
    pos = hole;
  }
  if (::ftruncate(to, size) < 0) return sys_error(errno, "truncating");
  return {};
}

class Copier {
 public:
  explicit Copier(int dest_root) : dest_root_(dest_root) {}

  // Copies the entries of directory `from` into `to` (`rel` is `to`'s path
  // from the destination's root, for hardlinks).
  Result<void> copy_children(int from, int to, const std::string& rel, dev_t dev) {
    for (const std::string& name : TRY(fs::read_dir(from))) {
      std::string child_rel = rel.empty() ? name : rel + "/" + name;
      TRY_CTX(copy_entry(from, to, name, child_rel, dev), child_rel);
    }
    return {};
  }

  // Owner, xattrs, mode and times of `to`/`name` (the directory itself if
  // `name` is empty) as `st` and `from`/`name` have them.
  Result<void> copy_attrs(int from, int to, const std::string& name, const struct stat& st) {
    const char* n = name.c_str();
    int at = AT_SYMLINK_NOFOLLOW | (name.empty() ? AT_EMPTY_PATH : 0);
    if (::fchownat(to, n, st.st_uid, st.st_gid, at) < 0) return sys_error(errno, "chown");
    TRY(copy_xattrs(proc(from, name), proc(to, name)));
    if (!S_ISLNK(st.st_mode)) {
      int r = name.empty() ? ::fchmod(to, st.st_mode & 07777)
                           : ::fchmodat(to, n, st.st_mode & 07777, AT_SYMLINK_NOFOLLOW);
      if (r < 0) return sys_error(errno, "chmod");
    }
    struct timespec tv[2] = {st.st_atim, st.st_mtim};
    int r = name.empty() ? ::futimens(to, tv) : ::utimensat(to, n, tv, AT_SYMLINK_NOFOLLOW);
    if (r < 0) return sys_error(errno, "setting times");
    return {};
  }

 private:
  Result<void> copy_entry(int from, int to, const std::string& name, const std::string& rel,
                          dev_t dev) {
    struct stat st;
    if (::fstatat(from, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
      return sys_error(errno, "stat");
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto [it, first] = links_.try_emplace({st.st_dev, st.st_ino}, rel);
      if (!first) {
        if (::linkat(dest_root_, it->second.c_str(), to, name.c_str(), 0) < 0)
          return sys_error(errno, "linking to " + it->second);
        return {};
      }
    }
    const char* n = name.c_str();
    switch (st.st_mode & S_IFMT) {
      case S_IFDIR: {
        if (::mkdirat(to, n, 0700) < 0) return sys_error(errno, "mkdir");
        if (st.st_dev == dev) {
          Fd sub_from = TRY(sys::open_at(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
          Fd sub_to = TRY(sys::open_at(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
          TRY(copy_children(sub_from.get(), sub_to.get(), rel, dev));
        }
        break;
      }
      case S_IFREG: {
        Fd in = TRY(sys::open_at(from, name, O_RDONLY | O_NOFOLLOW));
        Fd out = TRY(sys::open_at(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
        TRY(copy_contents(in.get(), out.get(), st.st_size));
        break;
      }
      case S_IFLNK: {
        std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
        ssize_t len = ::readlinkat(from, n, target.data(), target.size());
        if (len < 0) return sys_error(errno, "readlink");
        target.resize(static_cast<size_t>(len));
        if (::symlinkat(target.c_str(), to, n) < 0) return sys_error(errno, "symlink");
        break;
      }
      default:
        if (::mknodat(to, n, st.st_mode & S_IFMT, st.st_rdev) < 0) return sys_error(errno, "mknod");
    }
    return copy_attrs(from, to, name, st);
  }

  int dest_root_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

}  // namespace

Result<void> snapshot(const std::string& dir, const std::string& dest) {
  Fd from = TRY(sys::open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY));
  struct stat st;
  if (::fstat(from.get(), &st) < 0) return sys_error(errno, "stat " + dir);
  if (::mkdir(dest.c_str(), 0700) < 0 && errno != EEXIST) return sys_error(errno, "mkdir " + dest);
  Fd to = TRY(sys::open_at(AT_FDCWD, dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  if (!TRY(fs::read_dir(to.get())).empty()) return error(dest + " is not empty");
  Copier c(to.get());
  TRY_CTX(c.copy_children(from.get(), to.get(), "", st.st_dev), "copying " + dir);
  TRY_CTX(c.copy_attrs(from.get(), to.get(), "", st), "copying " + dir);
  return {};
}

}  // namespace togo::crashfs
