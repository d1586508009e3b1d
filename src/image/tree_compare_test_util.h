// Test helper, header-only (its name does not end in _test.cc, so neither the
// test glob nor the library glob picks it up): a text listing of a directory
// tree, one line per entry, so that two trees compare with one EXPECT_EQ and
// a failure shows the lines that differ.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/sha256.h"
#include "base/text.h"

namespace togo::image::testing {

/// One line per entry below and including the root ("."), sorted by path:
///   path type perm uid:gid mtime.nsec [size digest | -> target | major:minor]
///   [links=N first=path] [xattr key=hex ...]
/// Directory sizes and link counts, atimes, ctimes and inode numbers are left
/// out (they differ between equal trees). Sockets are left out (archives
/// cannot hold them). Overlay attributes (trusted.overlay.*, user.overlay.*)
/// are left out. A file's digest covers its logical content, so a sparse
/// file and a dense one with the same bytes agree; it is computed over
/// 64 KiB blocks that hold data, skipping all-zero ones, so a 1 GiB sparse
/// file costs only its data.
inline std::string snapshot_tree(int root);

namespace detail {

inline std::string proc_path(int dirfd, const std::string& name) {
  return "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
}

inline std::string xattrs_of(const std::string& path) {
  char names[65536];
  ssize_t n = ::llistxattr(path.c_str(), names, sizeof names);
  if (n < 0) return errno == ENOTSUP ? "" : " xattrs=error:" + std::string(strerror(errno));
  std::vector<std::string> keys;
  for (ssize_t at = 0; at < n; at += static_cast<ssize_t>(std::strlen(names + at)) + 1)
    keys.emplace_back(names + at);
  std::sort(keys.begin(), keys.end());
  std::string out;
  for (const auto& k : keys) {
    if (k.starts_with("trusted.overlay.") || k.starts_with("user.overlay.")) continue;
    char value[65536];
    ssize_t v = ::lgetxattr(path.c_str(), k.c_str(), value, sizeof value);
    out += " xattr " + k + "=" + (v < 0 ? "error" : text::hex(std::string_view(value, v)));
  }
  return out;
}

// The digest of a file's logical content: only 64 KiB blocks that hold a
// non-zero byte count, each with its offset.
inline std::string content_digest(int dirfd, const std::string& name, off_t size) {
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return "unreadable:" + std::string(strerror(errno));
  constexpr off_t kBlock = 64 << 10;
  Sha256 sha;
  std::vector<char> buf(kBlock);
  off_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // the rest is a hole
    off_t hole = data < 0 ? -1 : ::lseek(fd, data, SEEK_HOLE);
    // A file system that cannot say where holes are: the rest is data
    // (not nothing, or two files with different bytes would agree).
    if (data < 0) data = pos;
    if (hole < 0) hole = size;
    for (off_t b = data / kBlock * kBlock; b < std::min(hole, size); b += kBlock) {
      ssize_t n = ::pread(fd, buf.data(), kBlock, b);
      if (n <= 0) break;
      if (std::all_of(buf.data(), buf.data() + n, [](char c) { return c == 0; })) continue;
      std::string at = std::to_string(b) + ":";
      sha.update(at);
      sha.update(buf.data(), static_cast<size_t>(n));
    }
    pos = std::max(hole, pos + 1);
  }
  ::close(fd);
  return sha.hex().substr(0, 16);
}

struct Walk {
  std::vector<std::pair<std::string, std::string>> lines;  // path, line
  std::map<std::pair<dev_t, ino_t>, std::string> first;    // inode -> first path seen

  void entry(int dirfd, const std::string& name, const std::string& path, const struct stat& st) {
    char head[256];
    const char* type = S_ISDIR(st.st_mode)    ? "dir"
                       : S_ISREG(st.st_mode)  ? "file"
                       : S_ISLNK(st.st_mode)  ? "symlink"
                       : S_ISCHR(st.st_mode)  ? "chr"
                       : S_ISBLK(st.st_mode)  ? "blk"
                       : S_ISFIFO(st.st_mode) ? "fifo"
                                              : "other";
    std::snprintf(head, sizeof head, " %s %04o %u:%u %lld.%09ld", type,
                  static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid,
                  static_cast<long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec);
    std::string line = path + head;
    std::string by_name = proc_path(dirfd, name.empty() ? "." : name);
    if (S_ISREG(st.st_mode)) {
      line += " size=" + std::to_string(st.st_size) + " " +
              content_digest(dirfd, name.empty() ? "." : name, st.st_size);
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlinkat(dirfd, name.c_str(), target, sizeof target);
      line += " -> " + (n < 0 ? std::string("?") : std::string(target, n));
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      line += " " + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
    }
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto [it, fresh] = first.emplace(std::pair{st.st_dev, st.st_ino}, path);
      line += " links=" + std::to_string(st.st_nlink) + " first=" + it->second;
      (void)fresh;
    }
    line += xattrs_of(by_name);
    lines.emplace_back(path, line);
  }

  void dir(int fd, const std::string& path) {
    int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR* d = dup < 0 ? nullptr : ::fdopendir(dup);
    if (!d) {
      lines.emplace_back(path + "/", path + "/ unreadable");
      return;
    }
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string child = path == "." ? n : path + "/" + n;
      struct stat st;
      if (::fstatat(fd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISSOCK(st.st_mode)) continue;
      entry(fd, n, child, st);
      if (S_ISDIR(st.st_mode)) {
        int sub = ::openat(fd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
          lines.emplace_back(child + "/", child + "/ unreadable");
          continue;
        }
        dir(sub, child);
        ::close(sub);
      }
    }
  }
};

}  // namespace detail

inline std::string snapshot_tree(int root) {
  detail::Walk w;
  struct stat st;
  if (::fstat(root, &st) < 0) return "cannot stat the root\n";
  w.entry(root, "", ".", st);
  w.dir(root, ".");
  std::sort(w.lines.begin(), w.lines.end());
  std::string out;
  for (auto& [path, line] : w.lines) out += line + "\n";
  return out;
}

}  // namespace togo::image::testing
