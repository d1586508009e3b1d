// What this host's cgroups let togo do: which hierarchies are mounted (v1,
// v2, or both: "hybrid"), where this process sits in each, and for every
// limit (--memory, --cpus, --pids) whether togo can apply it and, if not, the
// one missing piece. Detection only reads files, all below an injectable
// root, so tests and `togo doctor` fixtures are plain directory trees.
//
// Where an env's cgroup goes (the "base"; cgroups_apply.h creates
// <base>/togo/<name>-<random> below it):
//  - as root: the top of each hierarchy, as container engines do;
//  - otherwise: the highest cgroup above this process's own that the user
//    owns, with every cgroup between them also owned (systemd's Delegate=
//    chowns a unit's subtree, e.g. .../user@1000.service). Moving a process
//    needs write access to the common ancestor's cgroup.procs, which is why
//    the base must be an ancestor the user owns.
// On v2 a controller is usable only if the base's cgroup.controllers offers
// it and it is, or can be, enabled in the base's cgroup.subtree_control (the
// kernel refuses that while processes sit in the base, unless it is the root).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/mountinfo.h"
#include "base/error.h"

namespace togo::runtime {

enum class Controller { kMemory, kCpu, kPids };
inline constexpr Controller kControllers[] = {Controller::kMemory, Controller::kCpu,
                                              Controller::kPids};
/// The kernel's names: "memory", "cpu", "pids".
const char* controller_name(Controller c);
/// The flags that ask for them: "--memory", "--cpus", "--pids".
const char* limit_flag(Controller c);

enum class CgroupLayout { kNone, kV1, kV2, kHybrid };
/// "none", "v1", "v2", "hybrid".
const char* layout_name(CgroupLayout layout);

/// One mounted cgroup hierarchy.
struct CgroupHierarchy {
  int version = 0;                       // 1 or 2
  std::vector<std::string> controllers;  // v1: bound controllers and "name=..."; v2: the
                                         //     mount's cgroup.controllers
  std::string mount_point;               // e.g. /sys/fs/cgroup/memory
  std::string mount_root;                // the cgroup shown at mount_point, "/" normally
  bool read_only = false;
  std::string own_cgroup;                // this process's cgroup in it ("" if unknown)
  bool has(std::string_view controller) const;
};

/// Whether one limit can be applied, and where.
struct ControllerSupport {
  bool usable = false;
  std::string missing;      // when not usable: the missing piece, one sentence
  int version = 0;          // version of the hierarchy holding the controller (0: none)
  std::string mount_point;  // that hierarchy's mount point
  std::string base;         // the cgroup directory under which togo/ is created
  bool enable = false;      // v2: "+<controller>" must still go into base's subtree_control
};

struct CgroupHost {
  std::string root;         // prefix of every path read or written ("" on a real host)
  uid_t uid = 0;            // whose rights count (the effective uid)
  CgroupLayout layout = CgroupLayout::kNone;
  std::vector<CgroupHierarchy> hierarchies;  // v1 and v2, in mount order
  bool systemd = false;     // pid 1 is systemd, so its delegation is the usual fix
  ControllerSupport memory, cpu, pids;

  const ControllerSupport& support(Controller c) const;
  /// The v2 hierarchy, or null.
  const CgroupHierarchy* v2() const;
};

/// Reads <root>/proc/self/mountinfo, <root>/proc/self/cgroup, <root>/proc/1/comm
/// and the cgroup directories they name, judging rights as `uid`. Fails only
/// when the mount table cannot be read; anything else missing makes a
/// controller unusable, with the reason.
Result<CgroupHost> detect_cgroups(const std::string& root = "", uid_t uid = ::geteuid());

/// One line for people, e.g. "hybrid: v1 (cpu, memory, pids, ...) at
/// /sys/fs/cgroup, v2 at /sys/fs/cgroup/unified (hugetlb)".
std::string describe_layout(const CgroupHost& host);

// The parsers, pure; exposed for tests and for other host checks.

/// One line of /proc/<pid>/cgroup: "4:memory:/a/b", or "0::/a" for v2.
struct ProcCgroup {
  std::vector<std::string> controllers;  // empty for v2
  std::string path;
};
std::vector<ProcCgroup> parse_proc_cgroup(std::string_view text);

}  // namespace togo::runtime
