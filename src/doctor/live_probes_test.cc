// The real live actions on this host: each answers, quickly, and the ones
// every supported host has succeed.
#include <sched.h>

#include <chrono>

#include "doctor/doctor_test_util.h"

namespace togo::doctor {
namespace {

using testing::Fixture;
using testing::has;

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

TEST(DoctorLiveProbes, NamespacesOpenat2AndSeccompWork) {
  LiveProbes live = real_live();
  auto t = std::chrono::steady_clock::now();
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
  if (::geteuid() != 0) flags |= CLONE_NEWUSER;
  Outcome ns = live.namespaces(flags);
  EXPECT_TRUE(ns.ok()) << ns.step << ": " << errno_text(ns.err);
  EXPECT_EQ(live.openat2(), 0);
  Outcome sc = live.seccomp();
  EXPECT_TRUE(sc.ok()) << sc.step << ": " << errno_text(sc.err);
  EXPECT_LT(ms_since(t), 500);
}

TEST(DoctorLiveProbes, UnprivilegedUserNamespacesAsNobody) {
  if (::geteuid() != 0) GTEST_SKIP() << "becoming nobody needs root";
  Outcome o = real_live().unprivileged_userns();
  // This host allows them (DESIGN.md); elsewhere the step must be named.
  EXPECT_TRUE(o.ok() || !o.step.empty());
  if (::access("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", F_OK) != 0) {
    EXPECT_TRUE(o.ok()) << o.step << ": " << errno_text(o.err);
  }
}

TEST(DoctorLiveProbes, OverlayInADirectoryLeavesNothingBehind) {
  Fixture fx;
  auto r = real_live().overlay(fx.root());
  EXPECT_TRUE(r) << r.error().message;
  EXPECT_TRUE(fx.view().list(fx.root()).empty());
}

TEST(DoctorLiveProbes, IdmappedMountAnswers) {
  Fixture fx;
  Outcome o = real_live().idmapped_mount(fx.root());
  if (::geteuid() == 0) {
    EXPECT_TRUE(o.ok()) << o.step << ": " << errno_text(o.err);
  } else {
    EXPECT_TRUE(o.ok() || !o.step.empty());
  }
}

TEST(DoctorLiveProbes, OpenAndStatAndOutput) {
  Fixture fx;
  LiveProbes live = real_live();
  EXPECT_EQ(live.open_rw("/nonexistent/device"), ENOENT);
  EXPECT_EQ(live.open_rw("/dev/null"), 0);
  auto st = live.fs_stats(fx.root());
  ASSERT_TRUE(st);
  EXPECT_GT(st->blocks, 0u);
  EXPECT_FALSE(live.fs_stats("/nonexistent"));
  EXPECT_EQ(live.output({"/bin/echo", "hello", "world"}), "hello world");
  EXPECT_FALSE(live.output({"/bin/false"}));
  EXPECT_FALSE(live.output({"/nonexistent/program"}));
  auto t = std::chrono::steady_clock::now();
  EXPECT_FALSE(live.output({"/bin/sleep", "5"})) << "killed after half a second";
  EXPECT_LT(ms_since(t), 1500);
}

TEST(DoctorHostView, SharedTablesAreReadOnceWhenTheViewIsMade) {
  Fixture fx;
  fx.file("etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
  fx.mounts();
  HostView v = fx.view(1000);
  ASSERT_EQ(v.mounts.size(), 2u);
  EXPECT_EQ(v.user_name(), "alice");
  EXPECT_TRUE(v.user_in_passwd());
  fx.file("etc/passwd", "");
  fx.file("proc/self/mountinfo", "");
  EXPECT_EQ(v.user_name(), "alice") << "not read again";
  EXPECT_EQ(v.mounts.size(), 2u);
  HostView stranger = fx.view(1000);
  EXPECT_EQ(stranger.user_name(), "uid 1000");
  EXPECT_FALSE(stranger.user_in_passwd());
  EXPECT_TRUE(stranger.mounts.empty());
}

TEST(DoctorHostViewReal, SeesThisProcess) {
  HostView v = HostView::real("/tmp/store");
  EXPECT_EQ(v.uid, ::geteuid());
  EXPECT_FALSE(v.machine.empty());
  EXPECT_FALSE(v.exe.empty());
  EXPECT_EQ(v.proc(), "/proc");
  EXPECT_EQ(v.which("sh").empty(), false);
  EXPECT_EQ(v.which("no-such-program-here"), "");
  EXPECT_EQ(v.which("../sh"), "") << "names with a slash are not looked up";
  EXPECT_TRUE(v.read("/proc/self/status").has_value());
  EXPECT_FALSE(v.read("/dev/null").has_value()) << "only regular files are read";
}

}  // namespace
}  // namespace togo::doctor
