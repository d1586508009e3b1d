// The text and JSON reports.
#include "doctor/report.h"

#include "doctor/doctor_test_util.h"

namespace togo::doctor {
namespace {

using testing::has;

std::vector<CheckResult> sample() {
  std::vector<CheckResult> r(4);
  r[0] = {"host.kernel", "host", Status::kOk, "Linux 6.1", "why k", "", Severity::kOptional};
  r[1] = {"vm.kvm",
          "vm",
          Status::kDegraded,
          "slow guest",
          "guests crawl",
          "enable nesting",
          Severity::kOptional};
  r[2] = {
      "isolation.userns", "isolation", Status::kOk, "works", "why u", "", Severity::kCritical};
  r[3] = {"cross-arch.binfmt", "cross-arch", Status::kMissing,    "not mounted",
          "no foreign envs",   "mount it",   Severity::kOptional};
  return r;
}

TEST(DoctorTextReport, GroupsInOrderOneLinePerCheck) {
  std::string text = format_text(sample(), "togo doctor: root, store /s");
  EXPECT_EQ(text,
            "togo doctor: root, store /s\n"
            "\nhost\n"
            "  ok        host.kernel        Linux 6.1\n"
            "\nisolation\n"
            "  ok        isolation.userns   works\n"
            "\nvm\n"
            "  degraded  vm.kvm             slow guest \u2014 why: guests crawl \u2014 fix: "
            "enable nesting\n"
            "\ncross-arch\n"
            "  missing   cross-arch.binfmt  not mounted \u2014 why: no foreign envs \u2014 fix: "
            "mount it\n"
            "\nprocess isolation (the default) can run here (2 ok, 1 degraded, 1 missing)\n");
}

TEST(DoctorTextReport, VerdictNamesTheBlockingChecks) {
  auto r = sample();
  r[2].status = Status::kMissing;
  EXPECT_EQ(verdict(r),
            "process isolation (the default) cannot run here: isolation.userns (1 ok, 1 "
            "degraded, 2 missing)");
  EXPECT_FALSE(default_mode_runs(r));
}

TEST(DoctorJsonReport, EveryCheckWithItsSixFields) {
  std::string text = json::dump(to_json(sample()));
  auto doc = json::parse(text);
  ASSERT_TRUE(doc) << text;
  ASSERT_TRUE(doc->is_object());
  EXPECT_EQ(doc->size(), 1u);
  const json::Value* checks = doc->find("checks");
  ASSERT_TRUE(checks && checks->is_array());
  ASSERT_EQ(checks->size(), 4u);
  const auto& kvm = checks->items()[1];
  EXPECT_EQ(kvm.members().size(), 6u);
  EXPECT_EQ(kvm.find("id")->as_string(), "vm.kvm");
  EXPECT_EQ(kvm.find("group")->as_string(), "vm");
  EXPECT_EQ(kvm.find("status")->as_string(), "degraded");
  EXPECT_EQ(kvm.find("found")->as_string(), "slow guest");
  EXPECT_EQ(kvm.find("why")->as_string(), "guests crawl");
  EXPECT_EQ(kvm.find("fix")->as_string(), "enable nesting");
  EXPECT_EQ(checks->items()[0].find("fix")->as_string(), "");
  EXPECT_EQ(checks->items()[3].find("status")->as_string(), "missing");
}

}  // namespace
}  // namespace togo::doctor
