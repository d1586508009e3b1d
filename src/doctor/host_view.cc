#include "doctor/host_view.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/fd.h"
#include "base/fs.h"
#include "base/text.h"
#include "runtime/userdb.h"

extern char** environ;

namespace togo::doctor {

std::optional<std::string> HostView::read(const std::string& path) const {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return std::nullopt;
  Fd owned(fd);
  struct stat st;
  // Only regular files (and /proc's, /sys's): never block on a FIFO or device.
  if (::fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  std::string out;
  char buf[8192];
  constexpr size_t kMax = 1u << 20;
  while (out.size() < kMax) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::vector<std::string> HostView::list(const std::string& dir) const {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return {};
  Fd owned(fd);
  auto names = fs::list_dir(fd);
  std::sort(names.begin(), names.end());
  return names;
}

std::string HostView::getenv(const std::string& name) const {
  auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

std::string HostView::user_name() const {
  return passwd_name ? *passwd_name : "uid " + std::to_string(uid);
}

void HostView::load_tables() {
  mounts = parse_mountinfo(read(proc() + "/self/mountinfo").value_or(""));
  passwd_name.reset();
  if (auto user = runtime::find_user(read(etc() + "/passwd").value_or(""), uid))
    passwd_name = user->name;
}

HostView HostView::real(const std::string& store) {
  HostView v;
  v.store = store;
  v.uid = ::geteuid();
  v.gid = ::getegid();
  struct utsname u;
  if (::uname(&u) == 0) v.machine = u.machine;
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) v.exe.assign(exe, static_cast<size_t>(n));
  for (char** e = environ; e && *e; e++) {
    const char* eq = std::strchr(*e, '=');
    if (eq) v.env.emplace(std::string(*e, static_cast<size_t>(eq - *e)), std::string(eq + 1));
  }
  std::string path = v.getenv("PATH");
  path += (path.empty() ? "" : ":") + std::string("/usr/sbin:/usr/bin:/sbin:/bin");
  v.which = [path](const std::string& name) { return fs::find_program(name, path); };
  v.live = real_live();
  v.load_tables();
  return v;
}

std::string trim(std::string_view s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos) return {};
  size_t b = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(a, b - a + 1));
}

std::string errno_text(int err) { return std::strerror(err); }

std::string first_line(std::string_view s) { return trim(s.substr(0, s.find('\n'))); }

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); i++) (out += i ? sep : "") += items[i];
  return out;
}

}  // namespace togo::doctor
