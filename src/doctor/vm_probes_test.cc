// KVM (scripted outcomes of the guest test, and the real test on this
// host), CPU flags, other hypervisors, QEMU and the guest kernel.
#include <linux/kvm.h>

#include <cerrno>
#include <chrono>

#include "doctor/doctor_test_util.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

using testing::Fixture;
using testing::has;

KvmRun run_of(KvmOutcome o, int err = 0, std::string step = {}) {
  KvmRun r;
  r.outcome = o;
  r.err = err;
  r.step = std::move(step);
  r.total = kKvmIterations;
  return r;
}

TEST(DoctorKvmProbe, GuestThatRunsIsOk) {
  Fixture fx;
  Finding f = probe_kvm(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found,
            "a test guest ran 8.4 million instructions in 3 ms (2796 million/s): KVM works");
}

TEST(DoctorKvmProbe, GuestThatCrawlsIsDegraded) {
  Fixture fx;
  HostView v = fx.view();
  v.live.kvm = [](const std::string&) {
    KvmRun r = run_of(KvmOutcome::kTimedOut, 0, "KVM_RUN");
    r.iterations = 300000;
    r.elapsed_ms = 300;
    return r;
  };
  Finding f = probe_kvm(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_EQ(f.found,
            "/dev/kvm is present and creates VMs, but a test guest did not finish 8.4 "
            "million instructions in 300 ms: it ran 0.6 million (2.0 million/s, where "
            "hardware virtualization runs thousands of millions)");
  EXPECT_TRUE(has(f.why, "present but unusable")) << f.why;
}

TEST(DoctorKvmProbe, GuestThatHangsIsDegraded) {
  Fixture fx;
  HostView v = fx.view();
  v.live.kvm = [](const std::string&) {
    KvmRun r = run_of(KvmOutcome::kTimedOut, 0, "KVM_RUN (the vcpu ignored the timer)");
    r.elapsed_ms = 700;
    return r;
  };
  Finding f = probe_kvm(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "no progress and the vcpu did not stop for a signal")) << f.found;
}

TEST(DoctorKvmProbe, NoDeviceAndNoPermissionAreMissing) {
  Fixture fx;
  fx.file("etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
  HostView v = fx.view(1000);
  v.live.kvm = [](const std::string&) { return run_of(KvmOutcome::kOpenFailed, ENOENT); };
  Finding f = probe_kvm(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(f.found.starts_with("no /dev/kvm")) << f.found;

  fx.file("etc/group", "kvm:x:993:\n");
  fx.file("dev/kvm", "", 0660);
  ASSERT_EQ(::chown(fx.path("dev/kvm").c_str(), 0, 993), ::geteuid() == 0 ? 0 : -1);
  v.live.kvm = [](const std::string&) { return run_of(KvmOutcome::kOpenFailed, EACCES); };
  f = probe_kvm(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_EQ(f.found, "/dev/kvm is there but alice may not open it (Permission denied)");
  if (::geteuid() == 0) {
    EXPECT_EQ(f.fix, "sudo usermod -aG kvm alice, then log in again");
  }
}

TEST(DoctorKvmProbe, SetupAndRunFailuresAreMissing) {
  Fixture fx;
  HostView v = fx.view();
  v.live.kvm = [](const std::string&) {
    return run_of(KvmOutcome::kSetupFailed, EBUSY, "KVM_CREATE_VM");
  };
  Finding f = probe_kvm(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.why, "another hypervisor")) << f.why;
  v.live.kvm = [](const std::string&) {
    KvmRun r = run_of(KvmOutcome::kRunFailed, 0, "KVM_RUN");
    r.exit_reason = KVM_EXIT_FAIL_ENTRY;
    return r;
  };
  f = probe_kvm(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "KVM_EXIT_FAIL_ENTRY")) << f.found;
  v.live.kvm = [](const std::string&) { return run_of(KvmOutcome::kUnsupported); };
  EXPECT_EQ(probe_kvm(v).status, Status::kOk);
  v.live.kvm = [](const std::string&) { return run_of(KvmOutcome::kNoChild, EAGAIN, "fork"); };
  EXPECT_EQ(probe_kvm(v).status, Status::kDegraded);
}

// The real test, bounded: whatever this host's KVM does, the answer comes
// within the timeout plus the child's grace period.
TEST(DoctorKvmTest, RealDeviceAnswersInTime) {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "/dev/kvm cannot be opened here";
  auto start = std::chrono::steady_clock::now();
  KvmRun r = run_kvm_test("/dev/kvm", 300);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(ms, 1000);
  EXPECT_EQ(r.api_version, 12);
  EXPECT_TRUE(r.outcome == KvmOutcome::kRan || r.outcome == KvmOutcome::kTimedOut)
      << static_cast<int>(r.outcome) << " " << r.step << " " << r.err;
  if (r.outcome == KvmOutcome::kRan) {
    EXPECT_EQ(r.iterations, kKvmIterations);
  } else {
    EXPECT_LT(r.iterations, kKvmIterations);
  }
}

TEST(DoctorKvmTest, MissingDevice) {
  KvmRun r = run_kvm_test("/nonexistent/kvm", 300);
  EXPECT_EQ(r.outcome, KvmOutcome::kOpenFailed);
  EXPECT_EQ(r.err, ENOENT);
  EXPECT_EQ(r.step, "opening /nonexistent/kvm");
}

TEST(DoctorCpuVirtProbe, FlagsAndModules) {
  Fixture fx;
  fx.file("proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu vme vmx sse2\n\nprocessor\t: 1\n");
  fx.dir("sys/module/kvm_intel");
  fx.dir("sys/module/kvm");
  Finding f = probe_cpu_virt(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found, "Intel VT-x (vmx); modules kvm_intel, kvm");

  fx.file("proc/cpuinfo", "flags\t\t: fpu svm\n");
  EXPECT_TRUE(probe_cpu_virt(fx.view()).found.starts_with("AMD-V (svm)"));

  fx.file("proc/cpuinfo", "flags\t\t: fpu sse2 hypervisor\n");
  fx.dir("sys/module/kvm_pvm");
  f = probe_cpu_virt(fx.view());
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "virtual machine whose hypervisor does not pass")) << f.found;
  EXPECT_TRUE(has(f.found, "kvm_pvm is a paravirtual KVM")) << f.found;
}

TEST(DoctorCpuVirtProbe, Arm64HasNoFlag) {
  Fixture fx;
  fx.file("proc/cpuinfo", "processor\t: 0\nFeatures\t: fp asimd\n");
  HostView v = fx.view();
  v.machine = "aarch64";
  EXPECT_EQ(probe_cpu_virt(v).status, Status::kMissing);
  fx.file("dev/kvm", "");
  EXPECT_EQ(probe_cpu_virt(v).status, Status::kOk);
}

TEST(DoctorHypervisorsProbe, EachOutcome) {
  Fixture fx;
  EXPECT_EQ(probe_hypervisors(fx.view()).status, Status::kOk);
  fx.dir("sys/module/vboxdrv");
  Finding f = probe_hypervisors(fx.view());
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_EQ(f.found, "vboxdrv (VirtualBox) loaded");
  EXPECT_TRUE(f.fix.empty()) << "the table's hint, about VirtualBox, stands";
  Fixture fx2;
  fx2.dir("sys/module/vmmon");
  f = probe_hypervisors(fx2.view());
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.fix, "vmmon")) << f.fix;
}

TEST(DoctorQemuProbe, EachOutcome) {
  Fixture fx;
  HostView v = fx.view();
  Finding f = probe_qemu(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_EQ(f.found, "qemu-system-x86_64 is not installed");
  EXPECT_TRUE(has(f.why, "not built yet")) << f.why;
  fx.program("qemu-system-x86_64");
  f = probe_qemu(v);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found, fx.path("usr/bin/qemu-system-x86_64") +
                         ": qemu-system-x86_64 version 1.0 (vm mode is not built yet)");
  v.live.output = [](const std::vector<std::string>&) { return std::optional<std::string>(); };
  EXPECT_EQ(probe_qemu(v).status, Status::kDegraded);
}

TEST(DoctorGuestKernelProbe, EachOutcome) {
  Fixture fx;
  Finding f = probe_guest_kernel(fx.view());
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_EQ(f.found, "no guest kernel in the store (" + fx.path("store/vm/vmlinuz") + ")");
  fx.file("store/vm/vmlinuz", std::string(2048, 'k'));
  f = probe_guest_kernel(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_TRUE(f.found.starts_with(fx.path("store/vm/vmlinuz") + " (")) << f.found;
}

}  // namespace
}  // namespace togo::doctor
