// The cgroups check over fixture trees, through the runtime's detection.
#include "doctor/doctor_test_util.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

using testing::Fixture;
using testing::has;

// This host's layout: v1 controllers plus a v2 tree with only hugetlb.
void hybrid(Fixture& fx) {
  fx.mounts(
      "30 21 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec - tmpfs tmpfs rw,mode=755\n"
      "31 30 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
      "32 30 0:28 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n"
      "33 30 0:29 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids\n"
      "34 30 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n");
  fx.file("proc/self/cgroup", "4:memory:/\n3:cpu:/\n2:pids:/\n0::/\n");
  fx.file("proc/1/comm", "init\n");
  fx.file("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  fx.file("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
  fx.dir("sys/fs/cgroup/pids");
  fx.file("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
}

TEST(DoctorCgroupsProbe, HybridAsRootHasEveryLimitThroughV1) {
  Fixture fx;
  hybrid(fx);
  if (::geteuid() != 0) GTEST_SKIP() << "the tree's owner must be root for this case";
  Finding f = probe_cgroups(fx.view(0));
  EXPECT_EQ(f.status, Status::kOk) << f.found << " / " << f.why;
  EXPECT_TRUE(
      f.found.starts_with("hybrid: v1 (memory, cpu, pids) at /sys/fs/cgroup, v2 at "
                          "/sys/fs/cgroup/unified (hugetlb)"))
      << f.found;
  EXPECT_TRUE(has(f.found, "--memory, --cpus and --pids work (as root, through v1)")) << f.found;
}

TEST(DoctorCgroupsProbe, HybridRootlessHasNoLimits) {
  Fixture fx;
  hybrid(fx);
  Finding f = probe_cgroups(fx.view(::geteuid() + 4242));
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "--memory, --cpus and --pids do not")) << f.found;
  EXPECT_TRUE(has(f.why, "cgroup v1 controllers need root")) << f.why;
  EXPECT_TRUE(has(f.fix, "run togo as root for limits")) << f.fix;
}

TEST(DoctorCgroupsProbe, NoCgroupFilesystemIsMissing) {
  Fixture fx;
  fx.mounts();
  fx.file("proc/self/cgroup", "");
  Finding f = probe_cgroups(fx.view(0));
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.fix, "mount -t cgroup2")) << f.fix;
}

TEST(DoctorCgroupsProbe, UnreadableMountTableIsMissing) {
  Fixture fx;
  Finding f = probe_cgroups(fx.view(0));
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "reading the mount table")) << f.found;
}

TEST(DoctorCgroupsProbe, DelegatedV2SubtreeWorksRootless) {
  Fixture fx;
  uid_t me = ::geteuid();
  fx.mounts("30 21 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw\n");
  const std::string svc = "sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service";
  fx.file("proc/self/cgroup",
          "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n");
  fx.file("proc/1/comm", "systemd\n");
  fx.file("sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n");
  fx.file(svc + "/cgroup.controllers", "cpu memory pids\n");
  fx.file(svc + "/cgroup.subtree_control", "cpu memory pids\n");
  fx.file(svc + "/cgroup.procs", "");
  fx.file(svc + "/app.slice/x.scope/cgroup.procs", "123\n");
  if (me == 0) {
    // Detection as a user: the user's subtree must belong to them.
    uid_t user = 1000;
    for (const char* rel : {"", "/cgroup.procs", "/cgroup.subtree_control", "/app.slice",
                            "/app.slice/x.scope", "/app.slice/x.scope/cgroup.procs"})
      ASSERT_EQ(::chown(fx.path(svc + rel).c_str(), user, user), 0) << rel;
    me = user;
  } else {
    GTEST_SKIP() << "needs root to give the subtree to another uid";
  }
  Finding f = probe_cgroups(fx.view(me));
  EXPECT_EQ(f.status, Status::kOk) << f.found << " / " << f.why;
  EXPECT_TRUE(has(f.found,
                  "delegated to uid 1000, through v2 under /sys/fs/cgroup/user.slice/"
                  "user-1000.slice/user@1000.service"))
      << f.found;
}

}  // namespace
}  // namespace togo::doctor
