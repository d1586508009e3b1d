#include "store/tree_listing.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string_view>
#include <utility>

#include "base/fs.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "base/text.h"

namespace togo::store {

namespace {

// Paths and values are escaped so that a line never holds a tab or newline
// of its own.
void append_escaped(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || c == '\\' || c >= 0x80) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
}

// "key=hexvalue,..." sorted by key. Symlinks and special files are read
// through /proc/self/fd of their directory, since *xattr takes no dirfd.
Result<std::string> xattrs_of(int fd, int dirfd, const std::string& name, const std::string& shown) {
  std::string path = fd >= 0 ? "" : "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
  char keys[4096];
  ssize_t n = fd >= 0 ? ::flistxattr(fd, keys, sizeof keys) : ::llistxattr(path.c_str(), keys, sizeof keys);
  if (n < 0) {
    if (errno == ENOTSUP) return std::string();
    return sys_error(errno, "listing xattrs of " + shown);
  }
  std::map<std::string, std::string> kv;
  for (ssize_t i = 0; i < n;) {
    std::string key = keys + i;
    i += static_cast<ssize_t>(key.size()) + 1;
    char val[4096];
    ssize_t m = fd >= 0 ? ::fgetxattr(fd, key.c_str(), val, sizeof val)
                        : ::lgetxattr(path.c_str(), key.c_str(), val, sizeof val);
    // security.* attributes this user may not read are left out of both
    // the recorded and the checked listing alike.
    if (m < 0 && (errno == ENODATA || errno == EPERM || errno == EACCES)) continue;
    if (m < 0) return sys_error(errno, "reading xattr " + key + " of " + shown);
    kv[key] = text::hex(std::string_view(val, static_cast<size_t>(m)));
  }
  std::string out;
  for (auto& [k, v] : kv) {
    if (!out.empty()) out += ',';
    append_escaped(out, k);
    out += '=' + v;
  }
  return out;
}

// "\tMODE\tUID:GID\tMTIME\t". A directory's mtime is left out ("-"): it
// only says when an entry last changed, and is not part of what a layer
// holds (a directory rebuilt from the same blob differs there).
std::string head_of(const struct stat& st) {
  char head[96];
  if (S_ISDIR(st.st_mode))
    std::snprintf(head, sizeof head, "\t%o\t%u:%u\t-\t", st.st_mode, st.st_uid, st.st_gid);
  else
    std::snprintf(head, sizeof head, "\t%o\t%u:%u\t%lld.%09ld\t", st.st_mode, st.st_uid,
                  st.st_gid, static_cast<long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec);
  return head;
}

// Opens a directory or file to read it. Rootless, an image's 0000
// directory (or 0200 file) belongs to the user, who may open it up for a
// moment to read it: a file's mode is put back at once, a directory's (set
// `opened_up`) once its entries are listed; only the ctime changes.
Result<Fd> open_entry(int dirfd, const std::string& name, const struct stat& st,
                      const std::string& path, bool& opened_up) {
  opened_up = false;
  int flags = (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0) | O_RDONLY | O_NOFOLLOW;
  auto fd = sys::open_at(dirfd, name, flags);
  if (fd || fd.error().err != EACCES || st.st_uid != ::geteuid()) return fd;
  mode_t need = S_ISDIR(st.st_mode) ? 0500 : 0400;
  if (::fchmodat(dirfd, name.c_str(), (st.st_mode & 07777) | need, 0) < 0)
    return sys_error(errno, "opening " + path);
  fd = sys::open_at(dirfd, name, flags);
  if (S_ISDIR(st.st_mode) && fd)
    opened_up = true;
  else
    (void)::fchmodat(dirfd, name.c_str(), st.st_mode & 07777, 0);
  return fd;
}

class Lister {
 public:
  Result<void> walk(int dirfd, const std::string& prefix) {
    std::vector<std::string> names = TRY_CTX(fs::read_dir(dirfd), prefix.empty() ? "/" : prefix);
    std::sort(names.begin(), names.end());
    for (auto& name : names) {
      std::string path = prefix + "/" + name;
      struct stat st;
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
        return sys_error(errno, "stat " + path);
      Fd fd;
      bool opened_up = false;
      if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))
        fd = TRY(open_entry(dirfd, name, st, path, opened_up));
      std::string line;
      append_escaped(line, path);
      line += head_of(st);
      if (S_ISREG(st.st_mode)) {
        line += std::to_string(st.st_size) + ":" + TRY(content_hash(fd.get(), st, path));
      } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = ::readlinkat(dirfd, name.c_str(), target, sizeof target);
        if (n < 0) return sys_error(errno, "readlink " + path);
        append_escaped(line, std::string_view(target, static_cast<size_t>(n)));
      } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        line += std::to_string(major(st.st_rdev)) + "," + std::to_string(minor(st.st_rdev));
      }
      line += "\t" + TRY(xattrs_of(fd.get(), dirfd, name, path)) + "\n";
      out_ += line;
      if (S_ISDIR(st.st_mode)) {
        auto walked = walk(fd.get(), path);
        if (opened_up) (void)::fchmodat(dirfd, name.c_str(), st.st_mode & 07777, 0);
        TRY(std::move(walked));
      }
    }
    return {};
  }
  std::string take() { return std::move(out_); }

 private:
  // Hardlinked files are hashed once.
  Result<std::string> content_hash(int fd, const struct stat& st, const std::string& path) {
    auto key = std::make_pair(st.st_dev, st.st_ino);
    if (auto it = seen_.find(key); it != seen_.end()) return it->second;
    uint64_t size = 0;
    std::string d = TRY(Sha256::digest_of_fd(fd, size, path)).substr(7);
    if (st.st_nlink > 1) seen_[key] = d;
    return d;
  }

  std::string out_;
  std::map<std::pair<dev_t, ino_t>, std::string> seen_;
};

// The path of a listing line (still escaped: enough to compare and show).
std::string_view path_of(std::string_view line) { return line.substr(0, line.find('\t')); }

std::vector<std::string_view> lines_of(const std::string& s) {
  std::vector<std::string_view> out;
  size_t at = 0;
  while (at < s.size()) {
    size_t nl = s.find('\n', at);
    if (nl == std::string::npos) nl = s.size();
    out.emplace_back(s.data() + at, nl - at);
    at = nl + 1;
  }
  return out;
}

}  // namespace

Result<std::string> list_tree(int rootfd) {
  struct stat st;
  if (::fstat(rootfd, &st) < 0) return sys_error(errno, "stat /");
  std::string root = "/" + head_of(st) + "\t" + TRY(xattrs_of(rootfd, -1, "", "/")) + "\n";
  Lister l;
  TRY(l.walk(rootfd, ""));
  return root + l.take();
}

std::vector<std::string> listing_differences(const std::string& recorded, const std::string& found,
                                             size_t limit) {
  auto a = lines_of(recorded), b = lines_of(found);
  auto by_path = [](std::string_view x, std::string_view y) { return path_of(x) < path_of(y); };
  std::stable_sort(a.begin(), a.end(), by_path);
  std::stable_sort(b.begin(), b.end(), by_path);
  std::vector<std::string> out;
  size_t i = 0, j = 0;
  auto add = [&](std::string_view p) {
    if (out.empty() || out.back() != p) out.emplace_back(p);
  };
  while ((i < a.size() || j < b.size()) && out.size() < limit) {
    if (j == b.size() || (i < a.size() && path_of(a[i]) < path_of(b[j]))) {
      add(path_of(a[i++]));
    } else if (i == a.size() || path_of(b[j]) < path_of(a[i])) {
      add(path_of(b[j++]));
    } else {
      if (a[i] != b[j]) add(path_of(a[i]));
      i++, j++;
    }
  }
  return out;
}

}  // namespace togo::store
