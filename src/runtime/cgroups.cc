#include "runtime/cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <optional>

#include "base/fs.h"
#include "base/text.h"

namespace togo::runtime {
namespace {

std::vector<std::string> tokens(std::string_view s, std::string_view seps = " \t\n") {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = s.find_first_not_of(seps, i);
    if (start == std::string_view::npos) break;
    size_t end = s.find_first_of(seps, start);
    if (end == std::string_view::npos) end = s.size();
    out.emplace_back(s.substr(start, end - start));
    i = end;
  }
  return out;
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string join_list(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string out;
  for (auto& s : v) (out += out.empty() ? "" : sep) += s;
  return out;
}

std::optional<std::string> read_opt(const std::string& path) {
  auto r = fs::read_file(AT_FDCWD, path);
  if (!r) return std::nullopt;
  return std::move(*r);
}

/// The owner of a file, or -1 if it cannot be seen.
long owner(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) return -1;
  return static_cast<long>(st.st_uid);
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

/// `own` seen from a mount whose root is `mount_root`: "/x/y" under "/x" is
/// "/y"; nullopt when `own` lies outside.
std::optional<std::string> relative(const std::string& own, const std::string& mount_root) {
  if (own.empty() || own[0] != '/') return std::nullopt;
  if (mount_root == "/" || mount_root.empty()) return own;
  if (own == mount_root) return std::string("/");
  if (own.starts_with(mount_root) && own[mount_root.size()] == '/')
    return own.substr(mount_root.size());
  return std::nullopt;
}

std::string parent_of(const std::string& cg) {
  size_t slash = cg.find_last_of('/');
  return slash == 0 || slash == std::string::npos ? "/" : cg.substr(0, slash);
}

/// The directory of cgroup `rel` (relative to the mount) in a hierarchy.
std::string dir_of(const CgroupHierarchy& h, const std::string& rel) {
  return rel == "/" ? h.mount_point : fs::join(h.mount_point, rel);
}

// Options in a v1 mount's super block that are not controllers.
bool is_v1_option(std::string_view o) {
  static const char* kOptions[] = {"rw", "ro", "xattr", "noprefix", "clone_children",
                                   "cpuset_v2_mode", "favordynmods", "none"};
  for (const char* k : kOptions)
    if (o == k) return true;
  return o.starts_with("release_agent=");
}

/// Why a controller cannot be used, as one sentence, and where it would go.
class Assessor {
 public:
  explicit Assessor(const CgroupHost& host) : h_(host) {}

  ControllerSupport assess(Controller c) const {
    const std::string name = controller_name(c);
    ControllerSupport s;
    // A controller is bound to one hierarchy at a time; v1 takes it from v2.
    const CgroupHierarchy* hier = nullptr;
    for (int version : {1, 2})
      for (auto& x : h_.hierarchies)
        if (!hier && x.version == version && x.has(name)) hier = &x;
    if (!hier) return none_has(s, name);
    s.version = hier->version;
    s.mount_point = hier->mount_point;
    if (hier->read_only)
      return fail(s, "the cgroup hierarchy at " + hier->mount_point +
                         " is mounted read-only (as inside most containers), so togo cannot "
                         "create cgroups there");

    // The base: the top as root, else the highest owned ancestor of our cgroup.
    std::optional<std::string> base;
    auto rel = relative(hier->own_cgroup, hier->mount_root);
    if (h_.uid == 0 && owner(path(hier->mount_point)) == 0) {
      base = "/";
    } else if (hier->own_cgroup.empty()) {
      return fail(s, "/proc/self/cgroup does not say where this process is in the hierarchy "
                     "mounted at " + hier->mount_point);
    } else if (!rel) {
      return fail(s, "this process's cgroup (" + hier->own_cgroup +
                         ") lies outside the hierarchy mounted at " + hier->mount_point);
    } else if (owned(*hier, *rel)) {
      base = *rel;
      while (*base != "/" && owned(*hier, parent_of(*base))) base = parent_of(*base);
    }
    if (!base) return not_delegated(s, *hier, *rel);
    s.base = dir_of(*hier, *base);
    return hier->version == 1 ? check_v1(s, c) : check_v2(s, *hier, name, *base);
  }

 private:
  std::string path(const std::string& p) const { return h_.root + p; }

  /// The user may create cgroups below `rel` and move processes through it.
  bool owned(const CgroupHierarchy& hier, const std::string& rel) const {
    std::string dir = path(dir_of(hier, rel));
    if (owner(dir) != static_cast<long>(h_.uid)) return false;
    std::string procs = dir + "/cgroup.procs";
    return !exists(procs) || owner(procs) == static_cast<long>(h_.uid);
  }

  static ControllerSupport fail(ControllerSupport& s, std::string why) {
    s.usable = false;
    s.missing = std::move(why);
    return s;
  }

  std::string uid_text() const { return "uid " + std::to_string(h_.uid); }

  std::string delegation_fix() const {
    if (h_.systemd)
      return "systemd's user@.service Delegate=yes gives it (from a login shell, run togo "
             "under `systemd-run --user --scope`)";
    return "without systemd, root can create a cgroup, chown it to " + uid_text() +
           " and start togo in it";
  }

  ControllerSupport none_has(ControllerSupport& s, const std::string& name) const {
    if (h_.layout == CgroupLayout::kNone)
      return fail(s, "no cgroup filesystem is mounted (cgroup2 on /sys/fs/cgroup gives one)");
    if (auto* v2 = h_.v2())
      return fail(s, "cgroup v2 at " + v2->mount_point + " offers no " + name +
                         " controller and no v1 hierarchy has it (the kernel lacks it or "
                         "it is disabled)");
    return fail(s, "no cgroup v1 hierarchy has the " + name + " controller mounted");
  }

  ControllerSupport not_delegated(ControllerSupport& s, const CgroupHierarchy& hier,
                                  const std::string& rel) const {
    // Worded without the controller: the cause is the same for all of them.
    std::string where = hier.mount_point.substr(0, hier.mount_point.find_last_of('/'));
    if (where.empty()) where = "/";
    if (hier.version == 1) {
      if (h_.uid == 0)
        return fail(s, "the cgroup v1 hierarchies under " + where +
                           " belong to the host, not to root in this user namespace");
      return fail(s, "cgroup v1 controllers need root: " + uid_text() +
                         " cannot write the v1 hierarchies under " + where +
                         " (cgroup v2 with systemd's user@.service Delegate=yes gives rootless "
                         "limits)");
    }
    long who = owner(path(dir_of(hier, rel)));
    return fail(s, "cgroup v2 is mounted but nothing is delegated to " + uid_text() +
                       " (its cgroup " + hier.own_cgroup + " belongs to " +
                       (who < 0 ? std::string("another user") : "uid " + std::to_string(who)) +
                       "): " + delegation_fix());
  }

  ControllerSupport check_v1(ControllerSupport& s, Controller c) const {
    // The root cgroup has these too; pids.max exists only below the root.
    const char* needed = c == Controller::kMemory ? "memory.limit_in_bytes"
                         : c == Controller::kCpu  ? "cpu.cfs_quota_us"
                                                  : nullptr;
    if (needed && !exists(path(fs::join(s.base, needed))))
      return fail(s, std::string("the kernel lacks ") + needed + " in " + s.base + ", so " +
                         limit_flag(c) + " cannot be enforced" +
                         (c == Controller::kCpu ? " (CONFIG_CFS_BANDWIDTH)" : ""));
    s.usable = true;
    return s;
  }

  ControllerSupport check_v2(ControllerSupport& s, const CgroupHierarchy& hier,
                             const std::string& name, const std::string& base_rel) const {
    std::string base = path(s.base);
    auto offered = tokens(read_opt(base + "/cgroup.controllers").value_or(""));
    if (!contains(offered, name)) {
      if (h_.uid == 0)
        return fail(s, "cgroup v2 at " + s.base + " does not offer " + name +
                           " (its parent cgroup does not enable it)");
      return fail(s, "cgroup v2 is mounted but " + name + " is not delegated to " + uid_text() +
                         ": " +
                         (h_.systemd ? "systemd's user@.service Delegate=yes gives it (a "
                                       "drop-in with Delegate=cpu memory pids adds the ones "
                                       "missing)"
                                     : "the cgroup " + s.base + " that it owns lacks it"));
    }
    auto enabled = tokens(read_opt(base + "/cgroup.subtree_control").value_or(""));
    if (contains(enabled, name)) {
      s.usable = true;
      return s;
    }
    // Enabling is refused while processes sit in the base, except at the
    // real root (the only cgroup without a cgroup.type file).
    bool real_root = base_rel == "/" && hier.mount_root == "/" && !exists(base + "/cgroup.type");
    bool has_procs = !tokens(read_opt(base + "/cgroup.procs").value_or("")).empty();
    if (has_procs && !real_root)
      return fail(s, "cgroup v2 controllers cannot be enabled below " + s.base +
                         " because processes live in it (v2 allows them only above leaves): " +
                         (h_.uid == 0 ? std::string("move them into a child cgroup")
                                      : "run togo in a cgroup of its own, e.g. under "
                                        "`systemd-run --user --scope`"));
    if (h_.uid != 0 && owner(base + "/cgroup.subtree_control") != static_cast<long>(h_.uid))
      return fail(s, "cgroup v2 is mounted but nothing is delegated to " + uid_text() + ": " +
                         s.base + "/cgroup.subtree_control belongs to another user");
    s.enable = true;
    s.usable = true;
    return s;
  }

  const CgroupHost& h_;
};

}  // namespace

const char* controller_name(Controller c) {
  switch (c) {
    case Controller::kMemory: return "memory";
    case Controller::kCpu: return "cpu";
    case Controller::kPids: return "pids";
  }
  return "?";
}

const char* limit_flag(Controller c) {
  switch (c) {
    case Controller::kMemory: return "--memory";
    case Controller::kCpu: return "--cpus";
    case Controller::kPids: return "--pids";
  }
  return "?";
}

const char* layout_name(CgroupLayout layout) {
  switch (layout) {
    case CgroupLayout::kNone: return "none";
    case CgroupLayout::kV1: return "v1";
    case CgroupLayout::kV2: return "v2";
    case CgroupLayout::kHybrid: return "hybrid";
  }
  return "?";
}

bool CgroupHierarchy::has(std::string_view controller) const {
  return contains(controllers, controller);
}

const ControllerSupport& CgroupHost::support(Controller c) const {
  switch (c) {
    case Controller::kMemory: return memory;
    case Controller::kCpu: return cpu;
    case Controller::kPids: return pids;
  }
  return memory;
}

const CgroupHierarchy* CgroupHost::v2() const {
  for (auto& h : hierarchies)
    if (h.version == 2) return &h;
  return nullptr;
}

std::vector<ProcCgroup> parse_proc_cgroup(std::string_view text) {
  std::vector<ProcCgroup> out;
  for (auto& line : text::split(text, '\n')) {
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    ProcCgroup p;
    p.controllers = tokens(std::string_view(line).substr(a + 1, b - a - 1), ",");
    p.path = line.substr(b + 1);
    out.push_back(std::move(p));
  }
  return out;
}

Result<CgroupHost> detect_cgroups(const std::string& root_in, uid_t uid) {
  CgroupHost h;
  h.root = root_in;
  while (!h.root.empty() && h.root.back() == '/') h.root.pop_back();
  h.uid = uid;
  std::string mountinfo = TRY_CTX(fs::read_file(AT_FDCWD, h.root + "/proc/self/mountinfo"),
                                  "reading the mount table");
  auto own = parse_proc_cgroup(read_opt(h.root + "/proc/self/cgroup").value_or(""));
  auto comm = tokens(read_opt(h.root + "/proc/1/comm").value_or(""));
  h.systemd = !comm.empty() && comm[0] == "systemd";

  bool have_v1 = false;
  for (auto& m : parse_mountinfo(mountinfo)) {
    CgroupHierarchy x;
    x.mount_point = m.mount_point;
    x.mount_root = m.root;
    x.read_only = contains(m.options, "ro");
    if (m.fstype == "cgroup") {
      x.version = 1;
      for (auto& o : m.super_options)
        if (!is_v1_option(o)) x.controllers.push_back(o);
      if (x.controllers.empty()) continue;
      bool seen = false;  // the same hierarchy mounted twice: the first counts
      for (auto& y : h.hierarchies)
        seen = seen || (y.version == 1 && y.controllers == x.controllers);
      if (seen) continue;
      auto sorted = x.controllers;
      std::sort(sorted.begin(), sorted.end());
      for (auto& p : own) {
        auto s = p.controllers;
        std::sort(s.begin(), s.end());
        if (!s.empty() && s == sorted) x.own_cgroup = p.path;
      }
      have_v1 = true;
    } else if (m.fstype == "cgroup2") {
      if (h.v2()) continue;
      x.version = 2;
      x.controllers =
          tokens(read_opt(h.root + fs::join(m.mount_point, "cgroup.controllers")).value_or(""));
      for (auto& p : own)
        if (p.controllers.empty()) x.own_cgroup = p.path;
    } else {
      continue;
    }
    h.hierarchies.push_back(std::move(x));
  }
  h.layout = have_v1 ? (h.v2() ? CgroupLayout::kHybrid : CgroupLayout::kV1)
                     : (h.v2() ? CgroupLayout::kV2 : CgroupLayout::kNone);

  Assessor a(h);
  h.memory = a.assess(Controller::kMemory);
  h.cpu = a.assess(Controller::kCpu);
  h.pids = a.assess(Controller::kPids);
  return h;
}

std::string describe_layout(const CgroupHost& host) {
  std::string out = layout_name(host.layout);
  if (host.layout == CgroupLayout::kNone) return out + ": no cgroup filesystem is mounted";
  std::vector<std::string> v1, v1_dirs, parts;
  for (auto& h : host.hierarchies) {
    if (h.version != 1) continue;
    for (auto& c : h.controllers) v1.push_back(c);
    std::string parent = h.mount_point.substr(0, h.mount_point.find_last_of('/'));
    if (parent.empty()) parent = "/";
    if (!contains(v1_dirs, parent)) v1_dirs.push_back(parent);
  }
  if (!v1.empty()) parts.push_back("v1 (" + join_list(v1) + ") at " + join_list(v1_dirs));
  if (auto* v2 = host.v2())
    parts.push_back("v2 at " + v2->mount_point + " (" +
                    (v2->controllers.empty() ? "no controllers" : join_list(v2->controllers)) +
                    ")");
  return out + ": " + join_list(parts, ", ");
}

}  // namespace togo::runtime
