#include "runtime/masks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

namespace togo::runtime {
namespace {

const MaskStep* find(const std::vector<MaskStep>& steps, const std::string& path) {
  for (auto& s : steps)
    if (s.path == path) return &s;
  return nullptr;
}

TEST(Masks, EveryPathIsRelativeUnderProcOrSysAndListedOnce) {
  auto steps = mask_steps(4);
  std::set<std::string> seen;
  for (auto& s : steps) {
    EXPECT_TRUE(s.path.starts_with("proc/") || s.path.starts_with("sys/")) << s.path;
    EXPECT_EQ(s.path.find(".."), std::string::npos) << s.path;
    EXPECT_FALSE(s.path.ends_with("/")) << s.path;
    EXPECT_TRUE(seen.insert(s.path).second) << "twice: " << s.path;
  }
}

TEST(Masks, NoPathLiesInsideAnother) {
  auto steps = mask_steps(2);
  for (auto& a : steps) {
    for (auto& b : steps) {
      if (&a == &b) continue;
      EXPECT_FALSE(b.path.starts_with(a.path + "/")) << b.path << " in " << a.path;
    }
  }
}

TEST(Masks, DockerAndPodmanPathsGetTheRightTreatment) {
  auto steps = mask_steps(0);
  struct {
    const char* path;
    MaskKind kind;
  } want[] = {
      {"proc/kcore", MaskKind::kFile},         {"proc/keys", MaskKind::kFile},
      {"proc/timer_list", MaskKind::kFile},    {"proc/sched_debug", MaskKind::kFile},
      {"proc/latency_stats", MaskKind::kFile}, {"proc/interrupts", MaskKind::kFile},
      {"proc/timer_stats", MaskKind::kFile},   {"proc/acpi", MaskKind::kDir},
      {"proc/asound", MaskKind::kDir},         {"proc/scsi", MaskKind::kDir},
      {"sys/firmware", MaskKind::kDir},        {"sys/devices/virtual/powercap", MaskKind::kDir},
      {"sys/fs/selinux", MaskKind::kDir},      {"sys/dev/block", MaskKind::kDir},
      {"proc/sys", MaskKind::kReadOnly},       {"proc/sysrq-trigger", MaskKind::kReadOnly},
      {"proc/irq", MaskKind::kReadOnly},       {"proc/bus", MaskKind::kReadOnly},
      {"proc/fs", MaskKind::kReadOnly},
  };
  for (auto& w : want) {
    const MaskStep* s = find(steps, w.path);
    ASSERT_NE(s, nullptr) << w.path;
    EXPECT_EQ(s->kind, w.kind) << w.path;
  }
  EXPECT_EQ(steps.size(), std::size(want));
}

TEST(Masks, ThermalCountersAreMaskedPerCpu) {
  auto steps = mask_steps(3);
  for (int cpu = 0; cpu < 3; cpu++) {
    const MaskStep* s =
        find(steps, "sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/thermal_throttle");
    ASSERT_NE(s, nullptr) << cpu;
    EXPECT_EQ(s->kind, MaskKind::kDir);
  }
  EXPECT_EQ(find(steps, "sys/devices/system/cpu/cpu3/thermal_throttle"), nullptr);
  EXPECT_EQ(mask_steps(3).size(), mask_steps(0).size() + 3);
}

TEST(Masks, MasksComeBeforeReadOnlyPaths) {
  auto steps = mask_steps(1);
  auto first_ro = std::find_if(steps.begin(), steps.end(),
                               [](auto& s) { return s.kind == MaskKind::kReadOnly; });
  ASSERT_NE(first_ro, steps.end());
  EXPECT_TRUE(std::all_of(first_ro, steps.end(),
                          [](auto& s) { return s.kind == MaskKind::kReadOnly; }));
}

TEST(Masks, ThisHostGetsItsCpus) {
  EXPECT_GT(mask_steps().size(), mask_steps(0).size());
}

TEST(Masks, TmpfsMountIsReadOnlyAndInert) {
  EXPECT_TRUE(kMaskTmpfsFlags & MS_RDONLY);
  EXPECT_TRUE(kMaskTmpfsFlags & MS_NOSUID);
  EXPECT_TRUE(kMaskTmpfsFlags & MS_NODEV);
  EXPECT_TRUE(kMaskTmpfsFlags & MS_NOEXEC);
}

}  // namespace
}  // namespace togo::runtime
