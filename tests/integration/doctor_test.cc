// `togo doctor` on this machine, as root and as an unprivileged user: what
// DESIGN.md says is true here must be what the doctor reports (KVM present
// but unusable, cgroups hybrid with v1 limits for root only, user namespaces
// and rootless overlayfs working), in well-formed JSON, in under a second,
// with exit status 0. And a start that fails for a host reason names the
// check that explains it.
#include <sys/stat.h>

#include <map>
#include <set>

#include "base/json.h"
#include "fixture.h"

namespace togo::test {
namespace {

struct Check {
  std::string group, status, found, why, fix;
};

/// The checks of `togo doctor --json`, by id; fails the test if the
/// document is not what the issue specifies.
std::map<std::string, Check> parse_checks(const std::string& out) {
  std::map<std::string, Check> checks;
  auto doc = json::parse(out);
  EXPECT_TRUE(doc) << out;
  if (!doc) return checks;
  EXPECT_TRUE(doc->is_object());
  const json::Value* list = doc->find("checks");
  EXPECT_TRUE(list && list->is_array()) << out;
  if (!list) return checks;
  const std::set<std::string> groups = {"host", "isolation", "storage",
                                        "vm",   "network",   "cross-arch"};
  for (const json::Value& c : list->items()) {
    EXPECT_EQ(c.members().size(), 6u) << json::dump(c);
    for (const char* field : {"id", "group", "status", "found", "why", "fix"}) {
      const json::Value* v = c.find(field);
      EXPECT_TRUE(v && v->is_string()) << field << " in " << json::dump(c);
    }
    Check k{c.find("group") ? c.find("group")->as_string() : "",
            c.find("status") ? c.find("status")->as_string() : "",
            c.find("found") ? c.find("found")->as_string() : "",
            c.find("why") ? c.find("why")->as_string() : "",
            c.find("fix") ? c.find("fix")->as_string() : ""};
    std::string id = c.find("id") ? c.find("id")->as_string() : "";
    EXPECT_TRUE(groups.count(k.group)) << id << ": " << k.group;
    EXPECT_TRUE(id.starts_with(k.group + ".")) << id;
    EXPECT_TRUE(k.status == "ok" || k.status == "degraded" || k.status == "missing") << id;
    EXPECT_FALSE(k.found.empty()) << id;
    EXPECT_FALSE(k.why.empty()) << id;
    EXPECT_EQ(k.fix.empty(), k.status == "ok") << id << ": a fix exactly when not ok";
    EXPECT_TRUE(checks.emplace(id, k).second) << "duplicate " << id;
  }
  return checks;
}

class DoctorTest : public TogoTest {};

TEST_P(DoctorTest, ReportsWhatIsTrueOfThisMachine) {
  double start = now_s();
  RunResult r = tg({"doctor", "--json"});
  double took = now_s() - start;
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  EXPECT_LT(took, 1.5) << "the issue asks for under a second (bench/doctor.sh measures it)";
  auto checks = parse_checks(r.out);
  ASSERT_GE(checks.size(), 20u);
  EXPECT_EQ(checks.count("storage.bench"), 0u) << "only with --storage-bench";
  for (const char* id :
       {"host.kernel", "host.openat2", "isolation.namespaces", "isolation.userns",
        "isolation.overlay", "isolation.seccomp", "storage.filesystem", "storage.mount"})
    EXPECT_EQ(checks[id].status, "ok") << id << ": " << checks[id].found;

  EXPECT_TRUE(contains(checks["host.kernel"].found, "togo is built for x86_64"));
  EXPECT_TRUE(contains(checks["isolation.overlay"].found,
                       rootless() ? "overlayfs mounts in a user namespace" : "overlayfs mounts"));

  // cgroups: v1 plus a v2 tree with only hugetlb; limits as root, through v1.
  const Check& cg = checks["isolation.cgroups"];
  EXPECT_TRUE(cg.found.starts_with("hybrid: v1 (")) << cg.found;
  if (rootless()) {
    EXPECT_EQ(cg.status, "degraded") << cg.found;
    EXPECT_TRUE(contains(cg.found, "--memory, --cpus and --pids do not")) << cg.found;
  } else {
    EXPECT_EQ(cg.status, "ok") << cg.found;
    EXPECT_TRUE(contains(cg.found, "--memory, --cpus and --pids work (as root, through v1)"))
        << cg.found;
  }

  // KVM: /dev/kvm exists but guests hang; only root may open it here.
  struct stat kvm;
  if (::stat("/dev/kvm", &kvm) == 0) {
    const Check& k = checks["vm.kvm"];
    EXPECT_NE(k.status, "ok") << k.found;
    if (!rootless()) {
      EXPECT_EQ(k.status, "degraded") << k.found;
      EXPECT_TRUE(contains(k.found,
                           "/dev/kvm is present and creates VMs, but a test guest did "
                           "not finish"))
          << k.found;
      EXPECT_TRUE(contains(k.why, "present but unusable")) << k.why;
    } else if ((kvm.st_mode & 06) != 06) {
      EXPECT_EQ(k.status, "missing") << k.found;
      EXPECT_TRUE(contains(k.found, "may not open it")) << k.found;
    }
  }
  EXPECT_EQ(checks["vm.guest-kernel"].status, "missing");
  EXPECT_TRUE(contains(checks["vm.guest-kernel"].why, "not built yet"));
  if (rootless()) {
    EXPECT_EQ(checks["isolation.subids"].status, "degraded")
        << "uid " << unprivileged_uid() << " has no passwd entry or subordinate ids";
  }
}

TEST_P(DoctorTest, TextIsOneLinePerCheckGroupedWithAVerdict) {
  RunResult json = tg({"doctor", "--json"});
  RunResult r = tg({"doctor"});
  ASSERT_EQ(r.status, 0) << describe(r);
  auto checks = parse_checks(json.out);
  std::vector<std::string> lines = lines_of(r.out);
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(lines[0].starts_with("togo doctor: ")) << lines[0];
  EXPECT_TRUE(contains(lines[0], "store " + store()));
  size_t check_lines = 0;
  std::vector<std::string> groups;
  for (auto& l : lines) {
    for (const char* s : {"  ok ", "  degraded ", "  missing "})
      if (l.starts_with(s)) check_lines++;
    if (!l.empty() && l[0] != ' ' && !l.starts_with("togo doctor") && !l.starts_with("process"))
      groups.push_back(l);
  }
  EXPECT_EQ(check_lines, checks.size());
  EXPECT_EQ(groups, (std::vector<std::string>{"host", "isolation", "storage", "vm", "network",
                                              "cross-arch"}));
  EXPECT_TRUE(lines.back().starts_with("process isolation (the default) can run here (")) << r.out;
}

TEST_P(DoctorTest, StorageBenchMeasuresTheStoresDrive) {
  if (rootless()) GTEST_SKIP() << "the bench is the same for every user; once is enough";
  double start = now_s();
  RunResult r = tg({"doctor", "--json", "--storage-bench"}, "", 60);
  double took = now_s() - start;
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_LT(took, 10.0);
  auto checks = parse_checks(r.out);
  ASSERT_EQ(checks.count("storage.bench"), 1u);
  const Check& b = checks["storage.bench"];
  EXPECT_NE(b.status, "missing") << b.found;
  EXPECT_TRUE(contains(b.found, "sequential write ")) << b.found;
  EXPECT_TRUE(contains(b.found, "fsync ")) << b.found;
}

TEST_P(DoctorTest, AStartThatFailsForAHostReasonNamesTheCheck) {
  if (!rootless()) GTEST_SKIP() << "root has every limit here";
  make_env("dev");
  ASSERT_EQ(tg({"config", "dev", "pids=20"}).status, 0);
  RunResult r = in_env("dev", {"true"});
  EXPECT_EQ(r.status, 125);
  EXPECT_TRUE(one_line_error(r, "(see: togo doctor, check isolation.cgroups)")) << r.err;
}

TEST_P(DoctorTest, APrivateNetworkWithoutTunNamesTheCheck) {
  struct stat tun;
  if (!rootless() || (::stat("/dev/net/tun", &tun) == 0 && (tun.st_mode & 06) == 06))
    GTEST_SKIP() << "needs a user who may not open /dev/net/tun (mode 0600, as here)";
  make_env("dev");
  ASSERT_EQ(tg({"config", "dev", "network=private"}).status, 0);
  RunResult r = in_env("dev", {"true"});
  EXPECT_EQ(r.status, 125);
  EXPECT_TRUE(one_line_error(r,
                             "/dev/net/tun: Permission denied (see: togo doctor, check "
                             "network.helpers)"))
      << r.err;
  // And the doctor says the same, with the same fix.
  auto checks = parse_checks(tg({"doctor", "--json"}).out);
  EXPECT_EQ(checks["network.helpers"].status, "degraded");
  EXPECT_TRUE(contains(checks["network.helpers"].fix, "chmod 0666 /dev/net/tun"));
}

TOGO_AS_ROOT_AND_ROOTLESS(DoctorTest);

}  // namespace
}  // namespace togo::test
