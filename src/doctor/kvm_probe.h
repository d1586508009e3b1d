// A real KVM test: create a VM with one page of code and one vcpu, run a few
// million real-mode guest instructions that end in an I/O port write and
// HLT, and stop it after a short timeout. A host with working hardware
// virtualization finishes in a few milliseconds; a nested host without
// VT-x/AMD-V passed through (where KVM emulates every instruction, or the
// guest never gets to run) does not, and that is what people need told:
// /dev/kvm being there proves nothing.
#pragma once

#include <cstdint>
#include <string>

namespace togo::doctor {

/// How far the test guest got.
enum class KvmOutcome {
  kRan,          // wrote the expected byte to the expected port, then halted
  kTimedOut,     // still running when the timeout stopped it
  kOpenFailed,   // the device could not be opened (err: ENOENT, EACCES, ...)
  kSetupFailed,  // an ioctl before the first KVM_RUN failed (step, err)
  kRunFailed,    // KVM_RUN failed or the guest exited in an unexpected way
  kNoChild,      // the test process could not be started or died (err, signal)
  kUnsupported,  // no guest test for this architecture
};

/// What run_kvm_test saw. Plain data, so tests can make any outcome.
struct KvmRun {
  KvmOutcome outcome = KvmOutcome::kNoChild;
  int err = 0;               // errno of the failed step
  std::string step;          // "opening /dev/kvm", "KVM_CREATE_VM", ...
  uint32_t exit_reason = 0;  // KVM_EXIT_* of an unexpected exit
  uint64_t iterations = 0;   // loop iterations the guest completed
  uint64_t total = 0;        // loop iterations it was asked to run
  double elapsed_ms = 0;     // from the first KVM_RUN to the end
  int api_version = 0;       // KVM_GET_API_VERSION
};

/// Loop iterations of the test guest (two instructions each): about 3 ms
/// with hardware virtualization, seconds when KVM has to emulate.
inline constexpr uint64_t kKvmIterations = 1u << 22;

/// Runs the test guest on `device` in a child process (so a guest that
/// wedges its vcpu cannot hold togo) and kicks the vcpu out after
/// `timeout_ms` with a timer signal that sets kvm_run.immediate_exit; the
/// child is killed if it has not answered `timeout_ms + 400` ms after it
/// started. x86_64 only; other architectures get kUnsupported once a VM and
/// vcpu were created.
KvmRun run_kvm_test(const std::string& device, int timeout_ms);

/// "KVM_EXIT_SHUTDOWN", "KVM_EXIT_FAIL_ENTRY", ... or "exit reason N".
std::string kvm_exit_name(uint32_t reason);

}  // namespace togo::doctor
