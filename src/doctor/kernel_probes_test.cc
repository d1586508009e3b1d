// The kernel probes against fixture trees: version and architecture,
// openat2, seccomp, binfmt_misc.
#include <cerrno>

#include "doctor/doctor_test_util.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

using testing::Fixture;
using testing::has;

TEST(DoctorKernelProbe, MatchingArchitectureAndRecentKernelIsOk) {
  Fixture fx;
  fx.file("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
  fx.file("etc/os-release", "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n");
  Finding f = probe_kernel(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found,
            "Linux 6.1.0-18-amd64 x86_64 (Debian GNU/Linux 12 (bookworm)); togo is built for "
            "x86_64");
}

TEST(DoctorKernelProbe, ForeignArchitectureIsDegraded) {
  Fixture fx;
  fx.file("proc/sys/kernel/osrelease", "6.8.0\n");
  // Under emulation uname says the binary's machine; the kernel says its own.
  fx.file("proc/sys/kernel/arch", "aarch64\n");
  HostView v = fx.view();
  v.machine = "x86_64";
  Finding f = probe_kernel(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.why, "emulation")) << f.why;
  EXPECT_EQ(f.fix, "run the togo binary built for aarch64");
}

TEST(DoctorKernelProbe, OldKernelIsDegraded) {
  Fixture fx;
  fx.file("proc/sys/kernel/osrelease", "5.4.0-150-generic\n");
  Finding f = probe_kernel(fx.view());
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.why, "rootless overlayfs (5.11) and openat2 (5.6)")) << f.why;
  fx.file("proc/sys/kernel/osrelease", "5.10.0\n");
  f = probe_kernel(fx.view());
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_FALSE(has(f.why, "openat2")) << f.why;
}

TEST(DoctorKernelProbe, UnreadableReleaseStillReports) {
  Fixture fx;
  Finding f = probe_kernel(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_TRUE(has(f.found, "(version unknown)")) << f.found;
}

TEST(DoctorOpenat2Probe, EachOutcome) {
  Fixture fx;
  HostView v = fx.view();
  EXPECT_EQ(probe_openat2(v).status, Status::kOk);
  v.live.openat2 = [] { return ENOSYS; };
  Finding f = probe_openat2(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "5.6")) << f.found;
  v.live.openat2 = [] { return EPERM; };
  f = probe_openat2(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "seccomp filter")) << f.found;
  EXPECT_FALSE(f.fix.empty());
}

class DoctorSeccompProbe : public ::testing::Test {
 protected:
  void SetUp() override {
    fx.file("proc/self/status", "Name:\ttogo\nNoNewPrivs:\t0\nSeccomp:\t0\n");
    fx.file("proc/sys/kernel/seccomp/actions_avail", "kill_process kill_thread trap errno allow\n");
  }
  Fixture fx;
};

TEST_F(DoctorSeccompProbe, WorkingFilterIsOk) {
  Finding f = probe_seccomp(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_TRUE(has(f.found, "no_new_privs and seccomp filters work")) << f.found;
}

TEST_F(DoctorSeccompProbe, KernelWithoutSeccompIsMissing) {
  fx.file("proc/self/status", "Name:\ttogo\nNoNewPrivs:\t0\n");
  EXPECT_EQ(probe_seccomp(fx.view()).status, Status::kMissing);
}

TEST_F(DoctorSeccompProbe, RefusedFilterIsMissing) {
  HostView v = fx.view();
  v.live.seccomp = [] { return Outcome{"installing a seccomp filter", EINVAL}; };
  Finding f = probe_seccomp(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "CONFIG_SECCOMP_FILTER")) << f.found;
}

TEST_F(DoctorSeccompProbe, NoErrnoActionIsMissing) {
  fx.file("proc/sys/kernel/seccomp/actions_avail", "kill_process allow\n");
  EXPECT_EQ(probe_seccomp(fx.view()).status, Status::kMissing);
}

TEST_F(DoctorSeccompProbe, InheritedNoNewPrivsIsDegraded) {
  fx.file("proc/self/status", "Name:\ttogo\nNoNewPrivs:\t1\nSeccomp:\t2\n");
  Finding f = probe_seccomp(fx.view());
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "already runs under a filter")) << f.found;
  EXPECT_TRUE(has(f.why, "newuidmap")) << f.why;
}

TEST(DoctorBinfmtProbe, NotMountedIsMissing) {
  Fixture fx;
  fx.dir("proc/sys/fs/binfmt_misc");
  Finding f = probe_binfmt(fx.view());
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "not mounted")) << f.found;
  EXPECT_TRUE(has(f.fix, "mount -t binfmt_misc")) << f.fix;
}

TEST(DoctorBinfmtProbe, DisabledIsMissing) {
  Fixture fx;
  fx.file("proc/sys/fs/binfmt_misc/status", "disabled\n");
  EXPECT_EQ(probe_binfmt(fx.view()).status, Status::kMissing);
}

TEST(DoctorBinfmtProbe, NoForeignHandlerIsMissing) {
  Fixture fx;
  fx.file("proc/sys/fs/binfmt_misc/status", "enabled\n");
  fx.file("proc/sys/fs/binfmt_misc/register", "");
  fx.file("proc/sys/fs/binfmt_misc/python3.11", "enabled\ninterpreter /usr/bin/python3.11\n");
  // i386 programs run natively on x86_64: not a foreign architecture.
  fx.file("proc/sys/fs/binfmt_misc/qemu-i386",
          "enabled\ninterpreter /usr/bin/qemu-i386\nflags: F\n");
  Finding f = probe_binfmt(fx.view());
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "no qemu-user handler")) << f.found;
}

TEST(DoctorBinfmtProbe, HandlersWithFixedBinaryAreOk) {
  Fixture fx;
  fx.file("proc/sys/fs/binfmt_misc/status", "enabled\n");
  fx.file("proc/sys/fs/binfmt_misc/qemu-aarch64",
          "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\n");
  fx.file("proc/sys/fs/binfmt_misc/qemu-riscv64",
          "enabled\ninterpreter /usr/libexec/qemu-binfmt/riscv64-binfmt-P\nflags: POCF\n");
  fx.file("proc/sys/fs/binfmt_misc/qemu-arm",
          "disabled\ninterpreter /usr/bin/qemu-arm\nflags: F\n");
  Finding f = probe_binfmt(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found, "qemu-user handlers for aarch64, riscv64");
}

TEST(DoctorBinfmtProbe, HandlersWithoutFixedBinaryAreDegraded) {
  Fixture fx;
  fx.file("proc/sys/fs/binfmt_misc/status", "enabled\n");
  fx.file("proc/sys/fs/binfmt_misc/qemu-aarch64",
          "enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: \n");
  Finding f = probe_binfmt(fx.view());
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "without the F flag")) << f.found;
  EXPECT_TRUE(has(f.fix, "qemu-user-static")) << f.fix;
}

}  // namespace
}  // namespace togo::doctor
