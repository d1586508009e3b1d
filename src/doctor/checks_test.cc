// The table of checks and the runner: ids, groups, the references other
// layers make, deadlines, the bench switch and the exit verdict.
#include "doctor/checks.h"

#include <chrono>
#include <set>
#include <thread>

#include "base/host_check.h"
#include "doctor/doctor_test_util.h"

namespace togo::doctor {
namespace {

using testing::Fixture;
using testing::has;

TEST(DoctorCheckTable, EntriesAreWellFormedAndGrouped) {
  std::set<std::string> ids;
  size_t group_index = 0;
  for (const Check& c : all_checks()) {
    EXPECT_TRUE(ids.insert(c.id).second) << "duplicate id " << c.id;
    EXPECT_TRUE(std::string(c.id).starts_with(std::string(c.group) + ".")) << c.id;
    ASSERT_NE(c.probe, nullptr) << c.id;
    EXPECT_GT(std::string(c.description).size(), 20u) << c.id;
    EXPECT_GT(std::string(c.hint).size(), 10u) << c.id;
    // Groups appear in kGroups order, each in one run.
    while (group_index < std::size(kGroups) && std::string(kGroups[group_index]) != c.group)
      group_index++;
    EXPECT_LT(group_index, std::size(kGroups)) << c.id << " is out of group order";
  }
  EXPECT_GE(ids.size(), 20u);
  for (const char* g : kGroups) {
    bool any = false;
    for (const Check& c : all_checks()) any = any || std::string(c.group) == g;
    EXPECT_TRUE(any) << "group " << g << " has no check";
  }
}

TEST(DoctorCheckTable, EveryCheckOtherLayersPointAtExists) {
  for (const char* id : host_check::kReferenced) EXPECT_NE(find_check(id), nullptr) << id;
  EXPECT_EQ(find_check("no.such"), nullptr);
}

TEST(DoctorCheckTable, TheCriticalOnesAreThoseWithoutWhichNoEnvStarts) {
  std::set<std::string> critical;
  for (const Check& c : all_checks())
    if (c.severity == Severity::kCritical) critical.insert(c.id);
  EXPECT_EQ(critical,
            (std::set<std::string>{"host.openat2", "isolation.namespaces", "isolation.userns",
                                   "isolation.seccomp", "storage.filesystem", "storage.mount"}));
}

TEST(DoctorCheckTable, OnlyTheStorageBenchIsABench) {
  for (const Check& c : all_checks()) EXPECT_EQ(c.bench, std::string(c.id) == "storage.bench");
}

Finding ok_probe(const HostView&) { return {Status::kOk, "fine", "", ""}; }
Finding missing_probe(const HostView&) { return {Status::kMissing, "gone", "", ""}; }
Finding degraded_probe(const HostView&) {
  return {Status::kDegraded, "half", "a reason", "a remedy"};
}
Finding slow_probe(const HostView&) {
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  return {Status::kOk, "late", "", ""};
}
Finding bench_probe(const HostView&) { return {Status::kOk, "measured", "", ""}; }

const std::vector<Check> kTable = {
    {"host.a", "host", "description a", ok_probe, "hint a", Severity::kOptional},
    {"host.b", "host", "description b", missing_probe, "hint b", Severity::kCritical},
    {"storage.c", "storage", "description c", degraded_probe, "hint c", Severity::kOptional},
    {"storage.bench", "storage", "description d", bench_probe, "hint d", Severity::kOptional, true},
    {"vm.slow", "vm", "description e", slow_probe, "hint e", Severity::kCritical},
};

TEST(DoctorRunner, KeepsOrderFillsDefaultsAndSkipsTheBench) {
  Fixture fx;
  RunOptions o;
  o.deadline = std::chrono::milliseconds(2000);
  auto r = run_checks(fx.view(), kTable, o);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].id, "host.a");
  EXPECT_EQ(r[0].why, "description a");
  EXPECT_EQ(r[0].fix, "") << "ok checks carry no fix";
  EXPECT_EQ(r[1].status, Status::kMissing);
  EXPECT_EQ(r[1].fix, "hint b");
  EXPECT_EQ(r[2].why, "a reason");
  EXPECT_EQ(r[2].fix, "a remedy");
  EXPECT_EQ(r[3].id, "vm.slow");
  EXPECT_EQ(r[3].found, "late");
  EXPECT_FALSE(default_mode_runs(r)) << "host.b is critical and missing";
}

TEST(DoctorRunner, ProbesRunConcurrentlyUnderADeadline) {
  Fixture fx;
  RunOptions o;
  o.deadline = std::chrono::milliseconds(100);
  auto start = std::chrono::steady_clock::now();
  auto r = run_checks(fx.view(), kTable, o);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(ms, 350) << "the slow probe is not waited for";
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[3].status, Status::kDegraded);
  EXPECT_EQ(r[3].found, "the probe did not answer within 100 ms");
  // Late is not missing: it does not fail the default mode by itself.
  std::vector<CheckResult> late_only = {r[0], r[2], r[3]};
  EXPECT_TRUE(default_mode_runs(late_only));
}

TEST(DoctorRunner, TheBenchRunsWhenAskedFor) {
  Fixture fx;
  RunOptions o;
  o.storage_bench = true;
  o.deadline = std::chrono::milliseconds(1000);
  auto r = run_checks(fx.view(), kTable, o);
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[3].id, "storage.bench");
  EXPECT_EQ(r[3].found, "measured");
}

TEST(DoctorRunner, TheRealTableOverAFixtureAnswersQuickly) {
  Fixture fx;
  fx.mounts();
  fx.file("proc/sys/kernel/osrelease", "6.1.0\n");
  auto start = std::chrono::steady_clock::now();
  auto r = run_checks(fx.view(), all_checks());
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(ms, 900);
  EXPECT_EQ(r.size(), all_checks().size() - 1) << "all but the bench";
  for (auto& c : r) {
    EXPECT_FALSE(c.found.empty()) << c.id;
    EXPECT_FALSE(has(c.found, "did not answer")) << c.id;
  }
}

TEST(DoctorVerdict, CompleteUsesTheEntryForMissingParts) {
  const Check& c = kTable[1];
  CheckResult r = complete(c, {Status::kMissing, "gone", "", ""});
  EXPECT_EQ(r.why, "description b");
  EXPECT_EQ(r.fix, "hint b");
  EXPECT_EQ(r.severity, Severity::kCritical);
  r = complete(c, {Status::kOk, "here", "", "ignored"});
  EXPECT_EQ(r.fix, "");
}

}  // namespace
}  // namespace togo::doctor
