#include "runtime/masks.h"

#include <unistd.h>

namespace togo::runtime {

namespace {

struct Entry {
  const char* path;
  MaskKind kind;
};

// SECURITY: what an env must not read (masked) or write (read-only).
constexpr Entry kEntries[] = {
    {"proc/acpi", MaskKind::kDir},
    {"proc/asound", MaskKind::kDir},
    {"proc/interrupts", MaskKind::kFile},
    {"proc/kcore", MaskKind::kFile},
    {"proc/keys", MaskKind::kFile},
    {"proc/latency_stats", MaskKind::kFile},
    {"proc/sched_debug", MaskKind::kFile},
    {"proc/scsi", MaskKind::kDir},
    {"proc/timer_list", MaskKind::kFile},
    {"proc/timer_stats", MaskKind::kFile},
    {"sys/dev/block", MaskKind::kDir},
    {"sys/devices/virtual/powercap", MaskKind::kDir},
    {"sys/firmware", MaskKind::kDir},
    {"sys/fs/selinux", MaskKind::kDir},
    {"proc/bus", MaskKind::kReadOnly},
    {"proc/fs", MaskKind::kReadOnly},
    {"proc/irq", MaskKind::kReadOnly},
    {"proc/sys", MaskKind::kReadOnly},
    {"proc/sysrq-trigger", MaskKind::kReadOnly},
};

}  // namespace

std::vector<MaskStep> mask_steps(int cpu_count) {
  std::vector<MaskStep> steps;
  for (const Entry& e : kEntries) {
    if (e.kind == MaskKind::kReadOnly) continue;
    steps.push_back({e.path, e.kind});
  }
  for (int cpu = 0; cpu < cpu_count; cpu++)
    steps.push_back({"sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/thermal_throttle",
                     MaskKind::kDir});
  for (const Entry& e : kEntries)
    if (e.kind == MaskKind::kReadOnly) steps.push_back({e.path, e.kind});
  return steps;
}

std::vector<MaskStep> mask_steps() {
  long cpus = ::sysconf(_SC_NPROCESSORS_CONF);
  return mask_steps(cpus > 0 ? static_cast<int>(cpus) : 0);
}

}  // namespace togo::runtime
