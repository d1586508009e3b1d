#include "runtime/cgroups_apply.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <utility>

#include "base/fs.h"
#include "base/sys.h"

namespace togo::runtime {
namespace {

constexpr const char* kTogoDir = "togo";

bool requested(Controller c, const Limits& l) {
  switch (c) {
    case Controller::kMemory: return l.memory.has_value();
    case Controller::kCpu: return l.cpus.has_value();
    case Controller::kPids: return l.pids.has_value();
  }
  return false;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

std::string random_hex() {
  uint32_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
    r = static_cast<uint32_t>(::getpid()) * 2654435761u ^ static_cast<uint32_t>(::time(nullptr));
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", r);
  return buf;
}

bool on_cgroupfs(int fd) {
  struct statfs sf;
  return ::fstatfs(fd, &sf) == 0 &&
         (sf.f_type == CGROUP_SUPER_MAGIC || sf.f_type == CGROUP2_SUPER_MAGIC);
}

/// Writes one control file. On a real cgroupfs the kernel provides every
/// file; only stand-in trees get them created.
Result<void> write_control(int dirfd, const std::string& shown, const std::string& file,
                           const std::string& value, bool create, int extra_flags = O_TRUNC) {
  int flags = O_WRONLY | O_CLOEXEC | extra_flags | (create ? O_CREAT : 0);
  int fd = ::openat(dirfd, file.c_str(), flags, 0644);
  std::string shown_value = value;
  while (!shown_value.empty() && shown_value.back() == '\n') shown_value.pop_back();
  std::string what = "writing " + shown_value + " to " + fs::join(shown, file);
  if (fd < 0) return sys_error(errno, what);
  Fd owned(fd);
  // The kernel validates on write(2): a refused value shows up here.
  return sys::write_all(owned.get(), value, what);
}

/// Makes sure the v2 controllers `names` are enabled for the children of `dirfd`.
Result<void> enable_controllers(int dirfd, const std::string& shown,
                                const std::vector<std::string>& names, bool create) {
  std::string current;
  if (auto fd = sys::open_at(dirfd, "cgroup.subtree_control", O_RDONLY))
    current = sys::read_all(fd->get(), "cgroup.subtree_control").value_or("");
  std::string add;
  for (auto& n : names) {
    bool on = false;
    size_t i = 0;
    while (!on && (i = current.find(n, i)) != std::string::npos) {
      size_t end = i + n.size();
      on = (i == 0 || current[i - 1] == ' ' || current[i - 1] == '+') &&
           (end == current.size() || current[end] == ' ' || current[end] == '\n');
      i = end;
    }
    if (!on) (add += add.empty() ? "+" : " +") += n;
  }
  if (add.empty()) return {};
  return write_control(dirfd, shown, "cgroup.subtree_control", add, create);
}

/// rmdir that waits for the cgroup to empty: processes that were killed
/// leave it only once they are reaped.
Result<void> remove_cgroup_dir(const std::string& full, const std::string& shown) {
  struct timespec start, now;
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  long delay_us = 1000;
  for (;;) {
    if (::rmdir(full.c_str()) == 0 || errno == ENOENT) return {};
    int err = errno;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    double waited = static_cast<double>(now.tv_sec - start.tv_sec) +
                    static_cast<double>(now.tv_nsec - start.tv_nsec) / 1e9;
    if (err != EBUSY || waited > 1.0)
      return sys_error(err, "removing cgroup " + shown +
                                (err == EBUSY ? " (processes are still in it)" : ""));
    ::usleep(static_cast<useconds_t>(delay_us));
    delay_us = std::min(delay_us * 2, 64000L);
  }
}

}  // namespace

uint64_t cpu_quota_us(double cpus) {
  long long q = std::llround(cpus * static_cast<double>(kCpuPeriodUs));
  return q < 1000 ? 1000 : static_cast<uint64_t>(q);
}

std::vector<ControlWrite> limit_writes(int version, Controller c, const Limits& limits) {
  std::vector<ControlWrite> out;
  switch (c) {
    case Controller::kMemory: {
      if (!limits.memory) break;
      uint64_t m = *limits.memory;
      uint64_t both = m > UINT64_MAX / 2 ? UINT64_MAX / 2 : 2 * m;
      if (version == 2) {
        out.push_back({"memory.max", std::to_string(m)});
        out.push_back({"memory.swap.max", std::to_string(m), true});
      } else {
        out.push_back({"memory.limit_in_bytes", std::to_string(m)});
        out.push_back({"memory.memsw.limit_in_bytes", std::to_string(both), true});
      }
      break;
    }
    case Controller::kCpu: {
      if (!limits.cpus) break;
      std::string quota = std::to_string(cpu_quota_us(*limits.cpus));
      std::string period = std::to_string(kCpuPeriodUs);
      if (version == 2) {
        out.push_back({"cpu.max", quota + " " + period});
      } else {
        out.push_back({"cpu.cfs_period_us", period});
        out.push_back({"cpu.cfs_quota_us", quota});
      }
      break;
    }
    case Controller::kPids:
      if (limits.pids) out.push_back({"pids.max", std::to_string(*limits.pids)});
      break;
  }
  return out;
}

Result<void> check_limits(const CgroupHost& host, const Limits& limits) {
  // Flags that fail for the same reason share one sentence.
  std::vector<std::pair<std::string, std::vector<std::string>>> reasons;  // missing, flags
  for (Controller c : kControllers) {
    const ControllerSupport& s = host.support(c);
    if (!requested(c, limits) || s.usable) continue;
    auto it = std::find_if(reasons.begin(), reasons.end(),
                           [&](auto& r) { return r.first == s.missing; });
    if (it == reasons.end())
      reasons.push_back({s.missing, {limit_flag(c)}});
    else
      it->second.push_back(limit_flag(c));
  }
  if (reasons.empty()) return {};
  std::string msg;
  for (auto& [missing, flags] : reasons) {
    std::string list;
    for (size_t i = 0; i < flags.size(); i++)
      list += (i == 0 ? "" : i + 1 == flags.size() ? " and " : ", ") + flags[i];
    (msg += msg.empty() ? "" : "; ") += "cannot apply " + list + ": " + missing;
  }
  return error(ErrorKind::kFailed, msg,
               "clear the limits with `togo config NAME memory= cpus= pids=`");
}

std::vector<std::string> Cgroup::paths() const {
  std::vector<std::string> out;
  for (auto& d : dirs_) out.push_back(d.path);
  return out;
}

int Cgroup::v2_fd() const {
  for (auto& d : dirs_)
    if (d.version == 2) return d.fd.get();
  return -1;
}

Result<void> Cgroup::add(pid_t pid) const {
  for (auto& d : dirs_) {
    auto r = write_control(d.fd.get(), d.path, "cgroup.procs", std::to_string(pid) + "\n",
                           !d.cgroupfs, d.cgroupfs ? 0 : O_APPEND);
    if (!r) {
      std::string what = "moving process " + std::to_string(pid) + " into its cgroup";
      return std::unexpected(std::move(r.error()).context(what));
    }
  }
  return {};
}

Result<void> Cgroup::remove() {
  Result<void> first;
  std::vector<Dir> left;
  for (auto& d : dirs_) {
    d.fd.reset();
    // Stand-in trees hold plain files, which a cgroupfs rmdir does not mind.
    auto r = d.cgroupfs ? remove_cgroup_dir(d.full, d.path) : fs::remove_tree(AT_FDCWD, d.full);
    if (r) continue;
    if (first) first = std::move(r);
    left.push_back(std::move(d));
  }
  dirs_ = std::move(left);
  return first;
}

Result<Cgroup> create_env_cgroup(const CgroupHost& host, const std::string& name,
                                 const Limits& limits) {
  Cgroup cg;
  if (!limits.any()) return cg;
  if (!valid_name(name))
    return error(ErrorKind::kUsage, "cgroup name " + name + ": use letters, digits, '.', '_', '-'");
  TRY(check_limits(host, limits));

  // One directory per hierarchy: v1 may spread the controllers over several.
  struct Group {
    const ControllerSupport* support;
    std::vector<Controller> controllers;
  };
  std::vector<Group> groups;
  for (Controller c : kControllers) {
    if (!requested(c, limits)) continue;
    const ControllerSupport& s = host.support(c);
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const Group& g) { return g.support->mount_point == s.mount_point; });
    if (it == groups.end())
      groups.push_back({&s, {c}});
    else
      it->controllers.push_back(c);
  }

  const std::string leaf = name + "-" + random_hex();
  auto make = [&](const Group& g) -> Result<void> {
    const ControllerSupport& s = *g.support;
    Cgroup::Dir d;
    d.version = s.version;
    d.path = fs::join(fs::join(s.base, kTogoDir), leaf);
    d.full = host.root + d.path;
    Fd base = TRY_CTX(sys::open_at(AT_FDCWD, host.root + s.base, O_RDONLY | O_DIRECTORY),
                      "opening cgroup " + s.base);
    d.cgroupfs = on_cgroupfs(base.get());
    std::vector<std::string> all, to_enable;
    for (Controller c : g.controllers) {
      all.push_back(controller_name(c));
      if (host.support(c).enable) to_enable.push_back(controller_name(c));
    }
    const std::string togo = fs::join(s.base, kTogoDir);
    if (s.version == 2) TRY(enable_controllers(base.get(), s.base, to_enable, !d.cgroupfs));
    TRY_CTX(sys::ensure_dir_at(base.get(), kTogoDir, 0755), "in cgroup " + s.base);
    Fd parent = TRY(sys::open_at(base.get(), kTogoDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    if (s.version == 2) TRY(enable_controllers(parent.get(), togo, all, !d.cgroupfs));
    TRY_CTX(sys::mkdir_at(parent.get(), leaf, 0755), "in cgroup " + togo);
    d.fd = TRY(sys::open_at(parent.get(), leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    cg.dirs_.push_back(std::move(d));
    const Cgroup::Dir& made = cg.dirs_.back();
    for (Controller c : g.controllers)
      for (auto& w : limit_writes(s.version, c, limits)) {
        if (w.optional && ::faccessat(made.fd.get(), w.file.c_str(), F_OK, 0) < 0) continue;
        TRY(write_control(made.fd.get(), made.path, w.file, w.value, !made.cgroupfs));
      }
    return {};
  };
  for (auto& g : groups) {
    auto r = make(g);
    if (!r) {
      (void)cg.remove();
      return std::unexpected(std::move(r.error()).context("setting up the env's cgroup"));
    }
  }
  return cg;
}

void remove_env_cgroups(const CgroupHost& host, const std::string& env_id) {
  std::vector<std::string> done;
  for (Controller c : kControllers) {
    const ControllerSupport& s = host.support(c);
    if (!s.usable || std::find(done.begin(), done.end(), s.base) != done.end()) continue;
    done.push_back(s.base);
    std::string togo = fs::join(s.base, kTogoDir);
    auto dir = sys::open_at(AT_FDCWD, host.root + togo, O_RDONLY | O_DIRECTORY);
    if (!dir) continue;
    // rmdir only succeeds on an empty cgroup: a running env keeps its own.
    for (auto& name : fs::list_dir(dir->get()))
      if (name.rfind(env_id + "-", 0) == 0) ::unlinkat(dir->get(), name.c_str(), AT_REMOVEDIR);
  }
}

}  // namespace togo::runtime
