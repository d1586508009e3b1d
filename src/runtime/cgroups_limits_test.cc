#include "runtime/cgroups_limits.h"

#include <gtest/gtest.h>

#include "runtime/cgroups_apply.h"

namespace togo::runtime {
namespace {

TEST(CgroupLimits, MemoryTakesBinaryUnitsInAnyCase) {
  EXPECT_EQ(*parse_memory("512m"), 512ull << 20);
  EXPECT_EQ(*parse_memory("2g"), 2ull << 30);
  EXPECT_EQ(*parse_memory("2G"), 2ull << 30);
  EXPECT_EQ(*parse_memory("1048576"), 1048576u);
  EXPECT_EQ(*parse_memory("1.5G"), 3ull << 29);
  EXPECT_EQ(*parse_memory("64MiB"), 64ull << 20);
  EXPECT_EQ(*parse_memory("64mb"), 64ull << 20);
  EXPECT_EQ(*parse_memory("2048k"), 2ull << 20);
  EXPECT_EQ(*parse_memory("1t"), 1ull << 40);
  EXPECT_EQ(*parse_memory(".5g"), 1ull << 29);
  EXPECT_EQ(*parse_memory("0.001g"), (1ull << 30) / 1000);
}

TEST(CgroupLimits, MemoryRefusesWhatIsNotASize) {
  for (const char* bad : {"", "12x", "m", "-1m", " 512m", "512m ", "1.5", "1.g", "1e9", "5 g",
                          "0x100m", "1.0000000001g", "512mm"}) {
    auto r = parse_memory(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage) << bad;
  }
  EXPECT_EQ(parse_memory("12x").error().message,
            "--memory 12x: not a size (use e.g. 512m or 2g)");
}

TEST(CgroupLimits, MemoryHasSaneBounds) {
  EXPECT_EQ(parse_memory("512").error().message, "--memory 512: too small, at least 1m");
  EXPECT_FALSE(parse_memory("0"));
  EXPECT_EQ(parse_memory("99999999t").error().message, "--memory 99999999t: too large");
  EXPECT_FALSE(parse_memory("999999999999999999999999"));
  EXPECT_EQ(*parse_memory("1m"), kMinMemory);
}

TEST(CgroupLimits, Cpus) {
  EXPECT_DOUBLE_EQ(*parse_cpus("1.5"), 1.5);
  EXPECT_DOUBLE_EQ(*parse_cpus("2"), 2);
  EXPECT_DOUBLE_EQ(*parse_cpus("0.25"), 0.25);
  EXPECT_DOUBLE_EQ(*parse_cpus("1024"), 1024);
  EXPECT_DOUBLE_EQ(*parse_cpus(".5"), 0.5);
  for (const char* bad : {"", "abc", "1,5", "-1", "1.5x", "inf", "nan", "1e2", "0x10", "1."})
    EXPECT_FALSE(parse_cpus(bad)) << bad;
  EXPECT_EQ(parse_cpus("abc").error().message,
            "--cpus abc: not a number of CPUs (use e.g. 1.5 or 2)");
  EXPECT_EQ(parse_cpus("0").error().message, "--cpus 0: must be more than 0 (use e.g. 0.5 or 2)");
  EXPECT_EQ(parse_cpus("0.001").error().message, "--cpus 0.001: too small, at least 0.01");
  EXPECT_EQ(parse_cpus("1025").error().message, "--cpus 1025: too large, at most 1024");
  EXPECT_EQ(parse_cpus("1025").error().kind, ErrorKind::kUsage);
}

TEST(CgroupLimits, Pids) {
  EXPECT_EQ(*parse_pids("100"), 100u);
  EXPECT_EQ(*parse_pids("4194304"), kMaxPids);
  EXPECT_EQ(parse_pids("0").error().message, "--pids 0: must be at least 1");
  EXPECT_EQ(parse_pids("4194305").error().message, "--pids 4194305: too large, at most 4194304");
  EXPECT_FALSE(parse_pids("99999999999999999999999"));
  for (const char* bad : {"", "-1", "1.5", "ten", " 5", "5k"}) {
    auto r = parse_pids(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
  }
}

TEST(CgroupLimits, AnyIsTrueOnceOneIsSet) {
  Limits l;
  EXPECT_FALSE(l.any());
  l.pids = 5;
  EXPECT_TRUE(l.any());
}

TEST(CgroupLimits, CpuQuotaIsPerHundredMillisecondsAndNeverBelowOne) {
  EXPECT_EQ(cpu_quota_us(1.5), 150000u);
  EXPECT_EQ(cpu_quota_us(1024), 102400000u);
  EXPECT_EQ(cpu_quota_us(0.01), 1000u);
  EXPECT_EQ(cpu_quota_us(0.001), 1000u);
}

TEST(CgroupLimits, WritesForEachVersion) {
  Limits l;
  l.memory = 512ull << 20;
  l.cpus = 0.5;
  l.pids = 64;
  auto v2mem = limit_writes(2, Controller::kMemory, l);
  ASSERT_EQ(v2mem.size(), 2u);
  EXPECT_EQ(v2mem[0].file, "memory.max");
  EXPECT_EQ(v2mem[0].value, "536870912");
  EXPECT_FALSE(v2mem[0].optional);
  EXPECT_EQ(v2mem[1].file, "memory.swap.max");
  EXPECT_TRUE(v2mem[1].optional);
  auto v1mem = limit_writes(1, Controller::kMemory, l);
  ASSERT_EQ(v1mem.size(), 2u);
  EXPECT_EQ(v1mem[0].file, "memory.limit_in_bytes");
  EXPECT_EQ(v1mem[1].file, "memory.memsw.limit_in_bytes");
  EXPECT_EQ(v1mem[1].value, "1073741824");
  auto v2cpu = limit_writes(2, Controller::kCpu, l);
  ASSERT_EQ(v2cpu.size(), 1u);
  EXPECT_EQ(v2cpu[0].file, "cpu.max");
  EXPECT_EQ(v2cpu[0].value, "50000 100000");
  auto v1cpu = limit_writes(1, Controller::kCpu, l);
  ASSERT_EQ(v1cpu.size(), 2u);
  EXPECT_EQ(v1cpu[0].file, "cpu.cfs_period_us");  // period first, then the quota
  EXPECT_EQ(v1cpu[1].file, "cpu.cfs_quota_us");
  EXPECT_EQ(v1cpu[1].value, "50000");
  EXPECT_EQ(limit_writes(1, Controller::kPids, l)[0].value, "64");
  EXPECT_TRUE(limit_writes(2, Controller::kPids, Limits{}).empty());
}

}  // namespace
}  // namespace togo::runtime
