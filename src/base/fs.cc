#include "base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <set>
#include <utility>
#include <vector>

#include "base/sys.h"
#include "base/text.h"

namespace togo::fs {

std::string temp_name(std::string_view prefix) {
  unsigned long long r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
    r = static_cast<unsigned long long>(::getpid()) * 2654435761u ^ reinterpret_cast<uintptr_t>(&r);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%d-%012llx", ::getpid(), r & 0xffffffffffffULL);
  return std::string(prefix) + buf;
}

Result<void> sync_dir(int dirfd, const std::string& what) {
  if (::fsync(dirfd) < 0 && errno != EINVAL) return sys_error(errno, "syncing directory " + what);
  return {};
}

Result<void> sync_dir_at(int dirfd, const std::string& path) {
  Fd dir = TRY(sys::open_at(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  return sync_dir(dir.get(), path);
}

Result<void> copy_file(int in, int out, const std::string& what) {
  loff_t off = 0;
  for (;;) {
    ssize_t n = ::copy_file_range(in, &off, out, nullptr, 1 << 30, 0);
    if (n == 0) return {};
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
      return sys_error(errno, "copying " + what);
    break;  // not in the kernel here: by hand
  }
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::pread(in, buf.data(), buf.size(), off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(errno, "reading " + what);
    if (n == 0) return {};
    TRY(sys::write_all(out, std::string_view(buf.data(), static_cast<size_t>(n)), what));
    off += n;
  }
}

Result<void> write_file_atomic(int dirfd, const std::string& name, std::string_view data,
                               mode_t mode) {
  std::string tmp = temp_name(".tmp-");
  Fd fd = TRY(sys::open_at(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode));
  auto done = [&]() -> Result<void> {
    TRY(sys::write_all(fd.get(), data, name));
    if (::fchmod(fd.get(), mode) < 0) return sys_error(errno, "chmod " + name);
    TRY(sys::fsync(fd.get(), name));
    fd.reset();
    TRY(sys::rename_at(dirfd, tmp, dirfd, name));
    return sync_dir(dirfd, name);
  }();
  if (!done) ::unlinkat(dirfd, tmp.c_str(), 0);
  return done;
}

Result<void> write_file_if_changed(int dirfd, const std::string& name, std::string_view data,
                                   mode_t mode) {
  if (auto fd = sys::open_at(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)) {
    struct stat st;
    if (::fstat(fd->get(), &st) == 0 && S_ISREG(st.st_mode) &&
        static_cast<size_t>(st.st_size) == data.size() && (st.st_mode & 07777) == mode) {
      auto old = sys::read_all(fd->get(), name);
      if (old && *old == data) return {};
    }
  }
  return write_file_atomic(dirfd, name, data, mode);
}

Result<std::string> read_file(int dirfd, const std::string& path) {
  Fd fd = TRY(sys::open_at(dirfd, path, O_RDONLY | O_NOFOLLOW));
  return sys::read_all(fd.get(), path);
}

Result<void> make_dirs(const std::string& path, mode_t mode) {
  std::string cur;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    cur = path.substr(0, next);
    pos = next + 1;
    if (cur.empty() || cur == "." ) continue;
    if (::mkdir(cur.c_str(), mode) < 0 && errno != EEXIST)
      return sys_error(errno, "creating directory " + cur);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) return sys_error(errno, "creating directory " + path);
  if (!S_ISDIR(st.st_mode)) return sys_error(ENOTDIR, "creating directory " + path);
  return {};
}

namespace {

Result<void> remove_children(int dirfd, const std::string& shown) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return sys_error(errno, "reading directory " + shown);
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    return sys_error(errno, "reading directory " + shown);
  }
  std::vector<std::pair<std::string, bool>> entries;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    entries.emplace_back(n, e->d_type == DT_DIR || e->d_type == DT_UNKNOWN);
  }
  ::closedir(d);
  for (auto& [n, maybe_dir] : entries) {
    if (maybe_dir) {
      struct stat st;
      if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
        TRY_CTX(remove_tree(dirfd, n), shown);
        continue;
      }
    }
    if (::unlinkat(dirfd, n.c_str(), 0) < 0 && errno != ENOENT)
      return sys_error(errno, "removing " + join(shown, n));
  }
  return {};
}

}  // namespace

Result<void> remove_tree(int dirfd, const std::string& name) {
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) return {};
    return sys_error(errno, "removing " + name);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(dirfd, name.c_str(), 0) < 0 && errno != ENOENT)
      return sys_error(errno, "removing " + name);
    return {};
  }
  if ((st.st_mode & 0700) != 0700) ::fchmodat(dirfd, name.c_str(), st.st_mode | 0700, 0);
  auto fd = sys::open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd && fd.error().err == ENOENT) return {};  // removed meanwhile by another
  if (!fd) return std::unexpected(std::move(fd.error()).context("removing " + name));
  TRY(remove_children(fd->get(), name));
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT)
    return sys_error(errno, "removing " + name);
  return {};
}

Result<std::vector<std::string>> read_dir(int dirfd) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return sys_error(errno, "reading directory");
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    return sys_error(errno, "reading directory");
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(d);
    if (!e) break;
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  int err = errno;
  ::closedir(d);
  if (err) return sys_error(err, "reading directory");
  return names;
}

std::vector<std::string> list_dir(int dirfd) {
  auto names = read_dir(dirfd);
  return names ? std::move(*names) : std::vector<std::string>{};
}

namespace {
Result<void> add_sizes(int dirfd, unsigned long long& total,
                       std::set<std::pair<dev_t, ino_t>>& seen) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return sys_error(errno, "reading directory");
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    return sys_error(errno, "reading directory");
  }
  Result<void> r;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st;
    if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
    if (S_ISDIR(st.st_mode)) {
      int sub = ::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) continue;
      r = add_sizes(sub, total, seen);
      ::close(sub);
      if (!r) break;
    } else if (S_ISREG(st.st_mode)) {
      if (st.st_nlink > 1 && !seen.insert({st.st_dev, st.st_ino}).second) continue;
      total += static_cast<unsigned long long>(st.st_size);
    }
  }
  ::closedir(d);
  return r;
}
}  // namespace

Result<unsigned long long> tree_size(int dirfd) {
  unsigned long long total = 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  TRY(add_sizes(dirfd, total, seen));
  return total;
}

std::string join(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  std::string out(a);
  while (!out.empty() && out.back() == '/' && out.size() > 1) out.pop_back();
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  if (out != "/") out += '/';
  out += b;
  return out;
}

std::string absolute(std::string_view path) {
  std::string base;
  if (path.empty() || path.front() != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd)) base = cwd;
  }
  std::string full = base.empty() ? std::string(path) : join(base, path);
  std::vector<std::string_view> parts;
  std::string_view rest = full;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (auto p : parts) (out += '/') += p;
  return out.empty() ? "/" : out;
}

std::string find_program(std::string_view name, std::string_view search_path) {
  if (name.empty() || name.find('/') != std::string_view::npos) return {};
  for (const std::string& dir : text::split(search_path, ':')) {
    if (dir.empty() || dir[0] != '/') continue;
    std::string path = dir + (dir.back() == '/' ? "" : "/") + std::string(name);
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0)
      return path;
  }
  return {};
}

}  // namespace togo::fs
