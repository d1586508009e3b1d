// Small helpers shared by togo-crashfs's own tests (header-only; the
// integration harness is not linked into them).
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/fs.h"
#include "base/sys.h"

namespace togo::crashfs::test {

/// A fresh directory under $TMPDIR or /tmp, removed with everything in it
/// on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/togo-crashfs-test-XXXXXX";
    if (::mkdtemp(tmpl.data())) path_ = tmpl;
    ::chmod(path_.c_str(), 0755);
  }
  ~ScratchDir() {
    if (path_.empty()) return;
    (void)fs::remove_tree(AT_FDCWD, path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Writes `data` to `path` (created 0644 or truncated), optionally fsyncing it.
inline bool write_file(const std::string& path, const std::string& data, bool sync = false) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  if (sync) ok = ok && ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

/// The file's content, or nullopt if it cannot be read.
inline std::optional<std::string> read_file(const std::string& path) {
  auto text = fs::read_file(AT_FDCWD, path);
  if (!text) return std::nullopt;
  return std::move(*text);
}

/// fsync of a directory.
inline bool sync_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

/// Runs argv (searched in PATH) and returns its exit status (128+N for a
/// signal, -1 if it could not be started).
inline int run_status(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  if (::posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int ws;
  while (::waitpid(pid, &ws, 0) < 0) {
  }
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

struct ListOptions {
  bool times = false;  // include mtimes of everything but directories
};

/// Everything about a tree a crash test compares, one line per path: type,
/// mode, owner, size, content (or link target), xattrs, and which paths are
/// hardlinks of each other. Directories' sizes and times are left out.
inline std::map<std::string, std::string> list_tree(const std::string& root, ListOptions o = {}) {
  std::map<std::string, std::string> out;
  std::map<std::pair<dev_t, ino_t>, std::string> first_name;
  std::vector<std::string> todo = {""};
  while (!todo.empty()) {
    std::string rel = todo.back();
    todo.pop_back();
    std::string dir = rel.empty() ? root : root + "/" + rel;
    auto fd = sys::open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) continue;
    std::vector<std::string> names = fs::list_dir(fd->get());
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      std::string path = rel.empty() ? name : rel + "/" + name;
      std::string full = root + "/" + path;
      struct stat st;
      if (::lstat(full.c_str(), &st) < 0) continue;
      char buf[128];
      std::snprintf(buf, sizeof buf, "mode=%o uid=%u gid=%u", st.st_mode, st.st_uid, st.st_gid);
      std::string line = buf;
      if (S_ISREG(st.st_mode)) {
        auto [it, first] = first_name.try_emplace({st.st_dev, st.st_ino}, path);
        if (!first) line += " link-of=" + it->second;
        line += " size=" + std::to_string(st.st_size);
        auto content = read_file(full);
        line += " content=" + std::to_string(std::hash<std::string>{}(content.value_or("?")));
      } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = ::readlink(full.c_str(), target, sizeof target);
        line += " target=" + std::string(target, n > 0 ? static_cast<size_t>(n) : 0);
      } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        line += " rdev=" + std::to_string(st.st_rdev);
      }
      if (o.times && !S_ISDIR(st.st_mode))
        line += " mtime=" + std::to_string(st.st_mtim.tv_sec) + "." +
                std::to_string(st.st_mtim.tv_nsec);
      char names[4096];
      ssize_t n = ::llistxattr(full.c_str(), names, sizeof names);
      std::vector<std::string> keys;
      for (ssize_t i = 0; n > 0 && i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1)
        keys.push_back(names + i);
      std::sort(keys.begin(), keys.end());
      for (const auto& k : keys) {
        char value[4096];
        ssize_t v = ::lgetxattr(full.c_str(), k.c_str(), value, sizeof value);
        line += " " + k + "=" + std::string(value, v > 0 ? static_cast<size_t>(v) : 0);
      }
      out[path] = line;
      if (S_ISDIR(st.st_mode)) todo.push_back(path);
    }
  }
  return out;
}

}  // namespace togo::crashfs::test
