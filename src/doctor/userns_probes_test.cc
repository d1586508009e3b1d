// Namespaces, user namespaces and subordinate ids against fixture trees and
// scripted outcomes of the live actions.
#include <sched.h>

#include <cerrno>

#include "doctor/doctor_test_util.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

using testing::Fixture;
using testing::has;

constexpr uid_t kAlice = 1000;

TEST(DoctorNamespacesProbe, RootCreatesThemWithoutAUserNamespace) {
  Fixture fx;
  HostView v = fx.view(0);
  int asked = 0;
  v.live.namespaces = [&](int flags) {
    asked = flags;
    return Outcome{};
  };
  Finding f = probe_namespaces(v);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(asked & CLONE_NEWUSER, 0);
  EXPECT_NE(asked & CLONE_NEWPID, 0);
  EXPECT_NE(asked & CLONE_NEWNET, 0);
}

TEST(DoctorNamespacesProbe, RootlessAsksForAUserNamespaceToo) {
  Fixture fx;
  HostView v = fx.view(kAlice);
  int asked = 0;
  v.live.namespaces = [&](int flags) {
    asked = flags;
    return Outcome{"unshare", EPERM};
  };
  Finding f = probe_namespaces(v);
  EXPECT_NE(asked & CLONE_NEWUSER, 0);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "unshare: Operation not permitted")) << f.found;
  EXPECT_TRUE(has(f.why, "isolation.userns")) << f.why;
}

TEST(DoctorUsernsProbe, RootNeedsNoneAndSaysWhatUsersGet) {
  Fixture fx;
  fx.file("proc/sys/user/max_user_namespaces", "63000\n");
  HostView v = fx.view(0);
  Finding f = probe_userns(v);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found,
            "root needs none; unprivileged users can create them (user.max_user_namespaces=63000)");
  fx.file("proc/sys/kernel/unprivileged_userns_clone", "0\n");
  v.live.unprivileged_userns = [] { return Outcome{"unshare", EPERM}; };
  f = probe_userns(v);
  EXPECT_EQ(f.status, Status::kOk) << "root itself is not affected";
  EXPECT_TRUE(has(f.found, "for unprivileged users")) << f.found;
  EXPECT_TRUE(has(f.fix, "kernel.unprivileged_userns_clone=1")) << f.fix;
}

TEST(DoctorUsernsProbe, RootlessWorking) {
  Fixture fx;
  fx.file("etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
  fx.file("proc/sys/user/max_user_namespaces", "63000\n");
  Finding f = probe_userns(fx.view(kAlice));
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found,
            "alice can create user namespaces and mount in them "
            "(user.max_user_namespaces=63000)");
}

struct Blocked {
  const char* file;
  const char* value;
  Outcome outcome;
  const char* found;
  const char* fix;
};

class DoctorUsernsBlocked : public ::testing::TestWithParam<Blocked> {};

TEST_P(DoctorUsernsBlocked, IsMissingWithTheRightFix) {
  const Blocked& b = GetParam();
  Fixture fx;
  fx.file("proc/sys/user/max_user_namespaces", "63000\n");
  if (b.file[0]) fx.file(std::string("proc/sys/") + b.file, std::string(b.value) + "\n");
  HostView v = fx.view(kAlice);
  v.live.namespaces = [&](int) { return b.outcome; };
  Finding f = probe_userns(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, b.found)) << f.found;
  EXPECT_TRUE(has(f.fix, b.fix)) << f.fix;
}

INSTANTIATE_TEST_SUITE_P(
    , DoctorUsernsBlocked,
    ::testing::Values(
        Blocked{"user/max_user_namespaces",
                "0",
                {"unshare", ENOSPC},
                "switched off",
                "user.max_user_namespaces=15000"},
        Blocked{"kernel/unprivileged_userns_clone",
                "0",
                {"unshare", EPERM},
                "unprivileged_userns_clone=0",
                "unprivileged_userns_clone=1"},
        Blocked{"kernel/apparmor_restrict_unprivileged_userns",
                "1",
                {"mounting a tmpfs in the new mount namespace", EPERM},
                "AppArmor",
                "profile togo /usr/local/bin/togo"},
        Blocked{"", "", {"unshare", ENOSPC}, "limit on user namespaces is reached", "raise it"},
        Blocked{"", "", {"unshare", EPERM}, "container or sandbox", "run togo on the host"}));

TEST(DoctorSubidsProbe, RootMapsNothing) {
  Fixture fx;
  EXPECT_EQ(probe_subids(fx.view(0)).status, Status::kOk);
}

TEST(DoctorSubidsProbe, NoRangesIsDegradedWithAUsermodLine) {
  Fixture fx;
  fx.file("etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
  fx.file("etc/subuid", "bob:100000:65536\n");
  fx.file("etc/subgid", "bob:100000:65536\n");
  Finding f = probe_subids(fx.view(kAlice));
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_EQ(f.found, "alice has no subordinate uids or gids (/etc/subuid, /etc/subgid)");
  // The suggestion starts after the ranges already handed out.
  EXPECT_EQ(f.fix, "sudo usermod --add-subuids 165536-231071 --add-subgids 165536-231071 alice");
}

TEST(DoctorSubidsProbe, UserNotInPasswdIsToldSo) {
  Fixture fx;
  fx.file("etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  Finding f = probe_subids(fx.view(61234));
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(f.found.starts_with("uid 61234 has no subordinate")) << f.found;
  EXPECT_TRUE(has(f.fix, "create the user in /etc/passwd")) << f.fix;
}

TEST(DoctorSubidsProbe, OnlyGidsMissing) {
  Fixture fx;
  fx.file("etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
  fx.file("etc/subuid", "alice:100000:65536\n");
  Finding f = probe_subids(fx.view(kAlice));
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "gids (/etc/subgid)")) << f.found;
}

TEST(DoctorSubidsProbe, RangesWithoutHelpersAreDegraded) {
  Fixture fx;
  fx.file("etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
  fx.file("etc/subuid", "alice:100000:65536\n");
  fx.file("etc/subgid", "1000:100000:65536\n");  // by uid works too
  Finding f = probe_subids(fx.view(kAlice));
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "alice has 65536 subordinate uids and 65536 gids")) << f.found;
  EXPECT_TRUE(has(f.found, "newuidmap is not installed")) << f.found;
  EXPECT_TRUE(has(f.fix, "uidmap")) << f.fix;
}

TEST(DoctorSubidsProbe, HelpersThatAreNotSetuidAreDegraded) {
  Fixture fx;
  fx.file("etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
  fx.file("etc/subuid", "alice:100000:65536\n");
  fx.file("etc/subgid", "alice:100000:65536\n");
  fx.program("newuidmap", 0755);
  fx.program("newgidmap", 0755);
  Finding f = probe_subids(fx.view(kAlice));
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "is neither setuid root")) << f.found;
}

TEST(DoctorSubidsProbe, RangesAndSetuidHelpersAreOk) {
  if (::geteuid() != 0) GTEST_SKIP() << "a setuid-root helper in the fixture needs root";
  Fixture fx;
  fx.file("etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
  fx.file("etc/subuid", "alice:100000:65536\n");
  fx.file("etc/subgid", "alice:100000:65536\n");
  fx.program("newuidmap", 04755);
  fx.program("newgidmap", 04755);
  Finding f = probe_subids(fx.view(kAlice));
  EXPECT_EQ(f.status, Status::kOk) << f.found;
  EXPECT_EQ(f.found,
            "alice has 65536 subordinate uids and 65536 gids; newuidmap and newgidmap "
            "can write them");
}

}  // namespace
}  // namespace togo::doctor
