// The /proc and /sys paths an env must not see or must not write, as data.
//
// Masked: the union of the lists of Docker (28) and Podman. Host kernel
// memory (/proc/kcore), the host's keys (/proc/keys), kernel timer,
// scheduler and latency internals (/proc/timer_list, /proc/timer_stats,
// /proc/sched_debug, /proc/latency_stats), hardware the env has no
// business with (/proc/acpi, /proc/asound, /proc/scsi, /sys/firmware,
// /sys/dev/block), the SELinux interface (/sys/fs/selinux: the env sees
// SELinux as off), and the power and interrupt counters that leak what the
// host is doing (/proc/interrupts, /sys/devices/virtual/powercap: the
// PLATYPUS RAPL side channel, /sys/devices/system/cpu/cpuN/thermal_throttle).
//
// Read-only: the kernel's knobs (/proc/sys, /proc/sysrq-trigger, /proc/irq,
// /proc/bus, /proc/fs). Outside the init user namespace most are refused
// anyway; as root they would change the whole host.
//
// How the child applies them, before pivot_root, after proc is mounted and
// /sys bound (paths are relative to the env's root):
// - kFile: bind the host's /dev/null over the path; without MS_NODEV on
//   that bind (a nodev mount makes open fail with EACCES where Docker's
//   masked files read as empty).
// - kDir: mount an empty tmpfs over it with kMaskTmpfsFlags/kMaskTmpfsData;
//   the first one mounted is bound over the others (one superblock to make
//   and tear down, however many CPUs the host has).
// - kReadOnly: bind the env's own path onto itself (recursive) and make the
//   bind read-only. Not the host's path of the same name: /proc/sys there
//   belongs to the host's namespaces.
// A path the host kernel does not have (ENOENT) is skipped: most of these
// exist only with some kernel options or hardware.
// The env cannot undo them: umount needs CAP_SYS_ADMIN, which it lacks, and
// the seccomp filter refuses umount and mount as well.
#pragma once

#include <sys/mount.h>

#include <string>
#include <vector>

namespace togo::runtime {

enum class MaskKind {
  kFile,      // bind /dev/null over it
  kDir,       // mount an empty read-only tmpfs over it
  kReadOnly,  // bind it onto itself read-only
};

struct MaskStep {
  std::string path;  // relative to the env's root, e.g. "proc/kcore"
  MaskKind kind;
};

/// Mount flags and data for a kDir mask.
inline constexpr unsigned long kMaskTmpfsFlags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
inline constexpr const char* kMaskTmpfsData = "mode=0555,size=4k";

/// The masks for a host with `cpu_count` possible CPUs (per-CPU thermal
/// counters are masked one directory each). Masks first, then read-only
/// paths; no path lies inside another. Pure.
std::vector<MaskStep> mask_steps(int cpu_count);

/// mask_steps for this host (sysconf(_SC_NPROCESSORS_CONF) CPUs).
std::vector<MaskStep> mask_steps();

}  // namespace togo::runtime
