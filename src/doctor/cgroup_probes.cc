// cgroups: which hierarchies, which controllers, what is delegated to this
// user, and so which of --memory, --cpus and --pids work. The runtime's own
// detection answers (runtime/cgroups.h): the doctor and `togo run` agree.
#include <algorithm>

#include "doctor/probes.h"
#include "runtime/cgroups.h"

namespace togo::doctor {
namespace {

/// "a", "a and b", "a, b and c".
std::string and_list(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); i++)
    (out += i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") += items[i];
  return out;
}

}  // namespace

Finding probe_cgroups(const HostView& v) {
  Finding f;
  auto host = runtime::detect_cgroups(v.root, v.uid);
  if (!host) {
    f.status = Status::kMissing;
    f.found = host.error().message;
    return f;
  }
  f.found = runtime::describe_layout(*host);
  if (host->layout == runtime::CgroupLayout::kNone) {
    f.status = Status::kMissing;
    f.why = "limits (--memory, --cpus, --pids) cannot be enforced";
    f.fix = "mount cgroup2: sudo mount -t cgroup2 none /sys/fs/cgroup";
    return f;
  }
  std::vector<std::string> work, fail, reasons, versions, bases;
  for (runtime::Controller c : runtime::kControllers) {
    const runtime::ControllerSupport& s = host->support(c);
    if (s.usable) {
      work.push_back(runtime::limit_flag(c));
      std::string ver = "v" + std::to_string(s.version);
      if (std::find(versions.begin(), versions.end(), ver) == versions.end())
        versions.push_back(ver);
      if (std::find(bases.begin(), bases.end(), s.base) == bases.end()) bases.push_back(s.base);
    } else {
      fail.push_back(runtime::limit_flag(c));
      if (std::find(reasons.begin(), reasons.end(), s.missing) == reasons.end())
        reasons.push_back(s.missing);
    }
  }
  const bool root = v.uid == 0;
  if (!work.empty()) {
    f.found += "; " + and_list(work) + (work.size() == 1 ? " works" : " work") + " (" +
               (root ? "as root, " : "delegated to " + v.user_name() + ", ") + "through " +
               join(versions, " and ") + (root ? "" : " under " + and_list(bases)) + ")";
  }
  if (fail.empty()) return f;
  f.status = Status::kDegraded;
  f.found += "; " + and_list(fail) + (fail.size() == 1 ? " does not" : " do not");
  f.why = join(reasons, "; ");
  // The runtime's sentences carry their own remedies; say the short form.
  bool v2_limits = false;  // a v2 tree that could hold the limits, if delegated
  if (auto* v2 = host->v2())
    for (runtime::Controller c : runtime::kControllers)
      v2_limits = v2_limits || v2->has(runtime::controller_name(c));
  if (!root && !v2_limits)
    f.fix =
        "run togo as root for limits, or boot with cgroup v2 alone "
        "(systemd.unified_cgroup_hierarchy=1) and systemd's Delegate=yes";
  else if (!root && host->systemd)
    f.fix = "run togo under `systemd-run --user --scope togo ...` (systemd's Delegate=yes)";
  return f;
}

}  // namespace togo::doctor
