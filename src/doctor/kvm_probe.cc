#include "doctor/kvm_probe.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "doctor/child_run.h"

namespace togo::doctor {
namespace {

// Steps of the child, by index: it reports a number, the parent names it.
enum Step : int32_t {
  kStepOpen,
  kStepApi,
  kStepCreateVm,
  kStepMemory,
  kStepRegion,
  kStepVcpu,
  kStepMmapSize,
  kStepMmapRun,
  kStepSregs,
  kStepRegs,
  kStepTimer,
  kStepRun,
  kStepCount
};
const char* const kStepNames[kStepCount] = {"opening the device",
                                            "KVM_GET_API_VERSION",
                                            "KVM_CREATE_VM",
                                            "allocating guest memory",
                                            "KVM_SET_USER_MEMORY_REGION",
                                            "KVM_CREATE_VCPU",
                                            "KVM_GET_VCPU_MMAP_SIZE",
                                            "mapping the vcpu's kvm_run",
                                            "KVM_SET_SREGS",
                                            "KVM_SET_REGS",
                                            "setting the timer",
                                            "KVM_RUN"};

// What the child writes to its pipe: plain old data, one write.
struct Report {
  int32_t outcome;
  int32_t err;
  int32_t step;
  uint32_t exit_reason;
  uint64_t iterations;
  double elapsed_ms;
  int32_t api_version;
};

constexpr uint64_t kGuestMemory = 0x10000;  // 64 KiB at guest physical 0
constexpr uint64_t kCodeAddress = 0x1000;
constexpr uint16_t kPort = 0x10;
constexpr uint8_t kByte = 0x42;

// The child's kvm_run, for the timer signal's handler.
struct kvm_run* volatile g_run = nullptr;

void on_timer(int) {
  if (g_run) g_run->immediate_exit = 1;
}

double ms_since(const struct timespec& start) {
  struct timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec - start.tv_sec) * 1e3 +
         static_cast<double>(now.tv_nsec - start.tv_nsec) / 1e6;
}

int ioctl_retry(int fd, unsigned long request, unsigned long arg) {
  int rc;
  do rc = ::ioctl(fd, request, arg);
  while (rc < 0 && errno == EINTR);
  return rc;
}

// The child: only system calls from here on (the parent may have threads).
[[noreturn]] void child(const char* device, int timeout_ms, int out) {
  Report r{};
  auto finish = [&](KvmOutcome o, Step step, int err) {
    r.outcome = static_cast<int32_t>(o);
    r.step = step;
    r.err = err;
    (void)!::write(out, &r, sizeof r);
    ::_exit(0);
  };
  int kvm = ::open(device, O_RDWR | O_CLOEXEC);
  if (kvm < 0) finish(KvmOutcome::kOpenFailed, kStepOpen, errno);
  r.api_version = ::ioctl(kvm, KVM_GET_API_VERSION, 0);
  if (r.api_version != KVM_API_VERSION) finish(KvmOutcome::kSetupFailed, kStepApi, errno);
  int vm = ioctl_retry(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) finish(KvmOutcome::kSetupFailed, kStepCreateVm, errno);
#if defined(__x86_64__)
  // Intel CPUs without "unrestricted guest" run real mode through a TSS
  // that KVM keeps here (QEMU's address); harmless elsewhere.
  (void)::ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul);
  void* mem = ::mmap(nullptr, kGuestMemory, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) finish(KvmOutcome::kSetupFailed, kStepMemory, errno);
  // Real mode at 0:0x1000:
  //   mov ecx, N ; 1: dec ecx ; jnz 1b ; mov al, 0x42 ; out 0x10, al ; hlt
  const uint32_t n = static_cast<uint32_t>(kKvmIterations);
  const uint8_t code[] = {0x66,
                          0xb9,
                          static_cast<uint8_t>(n),
                          static_cast<uint8_t>(n >> 8),
                          static_cast<uint8_t>(n >> 16),
                          static_cast<uint8_t>(n >> 24),
                          0x66,
                          0x49,
                          0x75,
                          0xfc,
                          0xb0,
                          kByte,
                          0xe6,
                          kPort,
                          0xf4};
  std::memcpy(static_cast<uint8_t*>(mem) + kCodeAddress, code, sizeof code);
  struct kvm_userspace_memory_region region = {};
  region.slot = 0;
  region.guest_phys_addr = 0;
  region.memory_size = kGuestMemory;
  region.userspace_addr = reinterpret_cast<uint64_t>(mem);
  if (ioctl_retry(vm, KVM_SET_USER_MEMORY_REGION, reinterpret_cast<unsigned long>(&region)) < 0)
    finish(KvmOutcome::kSetupFailed, kStepRegion, errno);
  int vcpu = ioctl_retry(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) finish(KvmOutcome::kSetupFailed, kStepVcpu, errno);
  int size = ::ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size < static_cast<int>(sizeof(struct kvm_run)))
    finish(KvmOutcome::kSetupFailed, kStepMmapSize, errno);
  void* run_map =
      ::mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run_map == MAP_FAILED) finish(KvmOutcome::kSetupFailed, kStepMmapRun, errno);
  auto* run = static_cast<struct kvm_run*>(run_map);
  struct kvm_sregs sregs;
  if (::ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) finish(KvmOutcome::kSetupFailed, kStepSregs, errno);
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (::ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) finish(KvmOutcome::kSetupFailed, kStepSregs, errno);
  struct kvm_regs regs = {};
  regs.rip = kCodeAddress;
  regs.rflags = 0x2;  // the reserved bit that is always 1
  if (::ioctl(vcpu, KVM_SET_REGS, &regs) < 0) finish(KvmOutcome::kSetupFailed, kStepRegs, errno);

  // The timer: its signal interrupts KVM_RUN (no SA_RESTART) and
  // immediate_exit keeps a re-entry from running the guest again.
  g_run = run;
  struct sigaction sa = {};
  sa.sa_handler = on_timer;
  if (::sigaction(SIGALRM, &sa, nullptr) < 0) finish(KvmOutcome::kSetupFailed, kStepTimer, errno);
  struct itimerval timer = {};
  timer.it_value.tv_sec = timeout_ms / 1000;
  timer.it_value.tv_usec = (timeout_ms % 1000) * 1000;
  struct timespec start;
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  if (::setitimer(ITIMER_REAL, &timer, nullptr) < 0)
    finish(KvmOutcome::kSetupFailed, kStepTimer, errno);
  bool wrote = false;
  for (;;) {
    int rc = ::ioctl(vcpu, KVM_RUN, 0);
    r.elapsed_ms = ms_since(start);
    if (rc < 0) {
      int err = errno;
      if (err != EINTR) finish(KvmOutcome::kRunFailed, kStepRun, err);
      // Stopped by the timer: how far did the loop get?
      struct kvm_regs now;
      if (::ioctl(vcpu, KVM_GET_REGS, &now) == 0) {
        uint64_t left = now.rcx & 0xffffffffu;
        r.iterations = wrote ? kKvmIterations : kKvmIterations - (left <= n ? left : n);
      }
      finish(KvmOutcome::kTimedOut, kStepRun, 0);
    }
    bool io = run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
              run->io.port == kPort && run->io.size == 1 &&
              run->io.data_offset < static_cast<uint64_t>(size);
    if (!wrote && io && reinterpret_cast<const uint8_t*>(run)[run->io.data_offset] == kByte) {
      wrote = true;
      r.iterations = kKvmIterations;
      continue;
    }
    if (wrote && run->exit_reason == KVM_EXIT_HLT) finish(KvmOutcome::kRan, kStepRun, 0);
    r.exit_reason = run->exit_reason;
    finish(KvmOutcome::kRunFailed, kStepRun, 0);
  }
#else
  (void)timeout_ms;
  finish(KvmOutcome::kUnsupported, kStepCreateVm, 0);
#endif
}

}  // namespace

KvmRun run_kvm_test(const std::string& device, int timeout_ms) {
  KvmRun out;
  out.total = kKvmIterations;
  const char* path = device.c_str();
  auto c = run_child<Report>([&](int fd) { child(path, timeout_ms, fd); }, timeout_ms + 400);
  switch (c.end) {
    case ChildEnd::kNoPipe:
    case ChildEnd::kNoFork:
      out.err = c.err;
      out.step = c.end == ChildEnd::kNoPipe ? "creating a pipe" : "fork";
      return out;
    case ChildEnd::kTimedOut:
    case ChildEnd::kDied:
      // No answer: the vcpu did not even stop for a signal.
      out.outcome = c.end == ChildEnd::kTimedOut ? KvmOutcome::kTimedOut : KvmOutcome::kNoChild;
      out.step = c.end == ChildEnd::kTimedOut ? "KVM_RUN (the vcpu ignored the timer)"
                                              : "the test process";
      out.elapsed_ms = timeout_ms + 400;
      return out;
    case ChildEnd::kAnswered:
      break;
  }
  const Report& r = c.report;
  out.outcome = static_cast<KvmOutcome>(r.outcome);
  out.err = r.err;
  out.step = r.step >= 0 && r.step < kStepCount ? kStepNames[r.step] : "?";
  if (r.step == kStepOpen) out.step = "opening " + device;
  out.exit_reason = r.exit_reason;
  out.iterations = r.iterations;
  out.elapsed_ms = r.elapsed_ms;
  out.api_version = r.api_version;
  return out;
}

std::string kvm_exit_name(uint32_t reason) {
  switch (reason) {
    case KVM_EXIT_UNKNOWN:
      return "KVM_EXIT_UNKNOWN";
    case KVM_EXIT_EXCEPTION:
      return "KVM_EXIT_EXCEPTION";
    case KVM_EXIT_IO:
      return "KVM_EXIT_IO";
    case KVM_EXIT_HLT:
      return "KVM_EXIT_HLT";
    case KVM_EXIT_MMIO:
      return "KVM_EXIT_MMIO";
    case KVM_EXIT_SHUTDOWN:
      return "KVM_EXIT_SHUTDOWN (triple fault)";
    case KVM_EXIT_FAIL_ENTRY:
      return "KVM_EXIT_FAIL_ENTRY";
    case KVM_EXIT_INTERNAL_ERROR:
      return "KVM_EXIT_INTERNAL_ERROR";
    case KVM_EXIT_INTR:
      return "KVM_EXIT_INTR";
  }
  return "exit reason " + std::to_string(reason);
}

}  // namespace togo::doctor
