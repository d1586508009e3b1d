// An env's cgroup, used by the parent process around clone:
// create_env_cgroup() makes <base>/togo/<name>-<random> in every hierarchy
// holding a requested controller and writes the limits; add() moves the
// env's first process in (its children follow by inheritance); remove()
// takes the directories away once the env's processes are gone.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/cgroups.h"
#include "runtime/cgroups_limits.h"

namespace togo::runtime {

/// One control file to write, in order. Optional ones are written only where
/// the kernel has them (swap accounting may be off).
struct ControlWrite {
  std::string file, value;
  bool optional = false;
};

inline constexpr uint64_t kCpuPeriodUs = 100000;
/// The CFS quota for `cpus` per kCpuPeriodUs period, at least the kernel's 1 ms.
uint64_t cpu_quota_us(double cpus);

/// The writes that enforce `limits` for controller `c` in a cgroup v`version`
/// directory (none if that limit is unset). Pure. --memory caps RAM and lets
/// as much again be swap, as podman and docker do by default:
///   v2: memory.max, memory.swap.max; cpu.max "<quota> 100000"; pids.max
///   v1: memory.limit_in_bytes, memory.memsw.limit_in_bytes (RAM + swap);
///       cpu.cfs_period_us then cpu.cfs_quota_us; pids.max
std::vector<ControlWrite> limit_writes(int version, Controller c, const Limits& limits);

/// Succeeds if every limit that `limits` asks for can be applied on `host`;
/// otherwise a kFailed error naming the flags and the missing piece, with a
/// hint on clearing the limits. Lets the CLI refuse early.
Result<void> check_limits(const CgroupHost& host, const Limits& limits);

class Cgroup {
 public:
  Cgroup() = default;
  Cgroup(Cgroup&&) = default;
  Cgroup& operator=(Cgroup&&) = default;

  /// No directories: nothing was asked for.
  bool empty() const { return dirs_.empty(); }
  /// The directories, as host paths, one per hierarchy.
  std::vector<std::string> paths() const;
  /// The cgroup v2 directory, open, for clone3's CLONE_INTO_CGROUP; -1 if none.
  int v2_fd() const;

  /// Moves process `pid` (all its threads) into the cgroup in every hierarchy.
  Result<void> add(pid_t pid) const;
  /// Removes the directories, retrying for about a second while exiting
  /// processes drain out (EBUSY). Directories that could not be removed stay
  /// listed, so it can be called again. The destructor removes nothing.
  Result<void> remove();

 private:
  friend Result<Cgroup> create_env_cgroup(const CgroupHost&, const std::string&, const Limits&);
  struct Dir {
    std::string path;      // as shown to people (host path)
    std::string full;      // with the host's root prefix
    Fd fd;
    int version = 0;
    bool cgroupfs = false; // false only for the stand-in trees of tests
  };
  std::vector<Dir> dirs_;
};

/// Creates the cgroup of env `name` (letters, digits, '.', '_', '-') with
/// `limits`: <base>/togo/<name>-<random> in each hierarchy that holds a
/// requested controller, enabling v2 controllers on the way down. Nothing is
/// left behind on failure. With no limits asked for, returns an empty Cgroup.
Result<Cgroup> create_env_cgroup(const CgroupHost& host, const std::string& name,
                                 const Limits& limits);

/// Removes the empty cgroups an env left behind (<base>/togo/<env_id>-*):
/// the env's last process cannot remove its own, so a later start, or the
/// env's removal, does. A cgroup still in use is left alone.
void remove_env_cgroups(const CgroupHost& host, const std::string& env_id);

}  // namespace togo::runtime
