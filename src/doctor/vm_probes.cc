// What vm mode (planned) will need: a KVM that really runs guests, the CPU's
// virtualization extensions, no other hypervisor holding them, QEMU, and a
// guest kernel in the store.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

#include "base/fs.h"
#include "base/text.h"
#include "doctor/probes.h"
#include "runtime/userdb.h"

namespace togo::doctor {
namespace {

std::string millions(double n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, n >= 10e6 ? "%.0f million" : "%.1f million", n / 1e6);
  return buf;
}

bool loaded(const HostView& v, const std::string& module) {
  struct stat st;
  return ::stat((v.sys() + "/module/" + module).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// The words of the first "flags" line of /proc/cpuinfo.
std::vector<std::string> cpu_flags(const HostView& v) {
  for (auto& line : text::split(v.read(v.proc() + "/cpuinfo").value_or(""), '\n')) {
    if (!line.starts_with("flags")) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::vector<std::string> out;
    for (auto& w : text::split(trim(std::string_view(line).substr(colon + 1)), ' '))
      if (!w.empty()) out.push_back(w);
    return out;
  }
  return {};
}

bool has(const std::vector<std::string>& v, const char* s) {
  for (auto& x : v)
    if (x == s) return true;
  return false;
}

/// Who may open the device, and how to become one of them.
std::string access_fix(const HostView& v, const std::string& dev) {
  struct stat st;
  if (::stat(dev.c_str(), &st) < 0) return {};
  auto group = runtime::find_group(v.read(v.etc() + "/group").value_or(""), st.st_gid);
  std::string name = v.user_name();
  if (group && st.st_gid != 0 && (st.st_mode & 060) == 060)
    return "sudo usermod -aG " + group->name + " " + name + ", then log in again";
  return "sudo chgrp kvm " + dev.substr(v.root.size()) + " && sudo chmod 0660 " +
         dev.substr(v.root.size()) + " (a udev rule keeps it), then add " + name + " to group kvm";
}

}  // namespace

Finding probe_kvm(const HostView& v) {
  Finding f;
  const std::string dev = v.dev() + "/kvm";
  KvmRun r = v.live.kvm(dev);
  const double instructions = 2.0 * static_cast<double>(r.total);
  switch (r.outcome) {
    case KvmOutcome::kRan: {
      double rate = 2.0 * static_cast<double>(r.iterations) / (r.elapsed_ms / 1e3);
      f.found = "a test guest ran " + millions(instructions) + " instructions in " +
                std::to_string(static_cast<int>(r.elapsed_ms + 0.5)) + " ms (" + millions(rate) +
                "/s): KVM works";
      return f;
    }
    case KvmOutcome::kTimedOut: {
      f.status = Status::kDegraded;
      double secs = r.elapsed_ms / 1e3;
      f.found = "/dev/kvm is present and creates VMs, but a test guest did not finish " +
                millions(instructions) + " instructions in " +
                std::to_string(static_cast<int>(r.elapsed_ms + 0.5)) + " ms";
      if (r.iterations > 0 && secs > 0)
        f.found += ": it ran " + millions(2.0 * static_cast<double>(r.iterations)) + " (" +
                   millions(2.0 * static_cast<double>(r.iterations) / secs) +
                   "/s, where hardware virtualization runs thousands of millions)";
      else
        f.found +=
            ": it made no progress" + (r.step.find("ignored") != std::string::npos
                                           ? std::string(" and the vcpu did not stop for a signal")
                                           : std::string());
      f.why =
          "KVM is present but unusable: guests hang or crawl (nested virtualization "
          "without VT-x/AMD-V passed through?), so vm mode would fall back to QEMU's "
          "much slower emulation (TCG)";
      f.fix =
          "on the machine below, enable nested virtualization and expose vmx/svm to this "
          "one; process isolation (the default) does not need KVM";
      return f;
    }
    case KvmOutcome::kOpenFailed:
      f.status = Status::kMissing;
      if (r.err == ENOENT || r.err == ENXIO || r.err == ENODEV) {
        f.found = "no /dev/kvm (the kvm module is not loaded, or the CPU has no VT-x/AMD-V)";
        f.fix = "sudo modprobe kvm_intel (or kvm_amd); enable virtualization in the firmware";
      } else {
        f.found = "/dev/kvm is there but " + v.user_name() + " may not open it (" +
                  errno_text(r.err) + ")";
        f.fix = access_fix(v, dev);
      }
      return f;
    case KvmOutcome::kSetupFailed:
      f.status = Status::kMissing;
      f.found = "/dev/kvm opens, but " + r.step + " failed: " + errno_text(r.err);
      if (r.step == "KVM_CREATE_VM" && r.err == EBUSY)
        f.why = "another hypervisor (VirtualBox, VMware) holds VT-x/AMD-V (see vm.hypervisors)";
      if (r.step == "KVM_GET_API_VERSION")
        f.found = "/dev/kvm speaks API version " + std::to_string(r.api_version) + ", not 12";
      return f;
    case KvmOutcome::kRunFailed:
      f.status = Status::kMissing;
      f.found = "/dev/kvm creates VMs, but the test guest failed: " +
                (r.err ? "KVM_RUN: " + errno_text(r.err) : kvm_exit_name(r.exit_reason));
      f.why =
          "KVM cannot run even a trivial guest here: vm mode would fall back to QEMU's "
          "much slower emulation (TCG)";
      return f;
    case KvmOutcome::kUnsupported:
      f.found = "/dev/kvm opens and creates VMs (no test guest for " + v.machine + " yet)";
      return f;
    case KvmOutcome::kNoChild:
      break;
  }
  f.status = Status::kDegraded;
  f.found =
      "the KVM test could not run: " + r.step + (r.err ? ": " + errno_text(r.err) : std::string());
  f.fix = "run `togo doctor` again";
  return f;
}

Finding probe_cpu_virt(const HostView& v) {
  Finding f;
  auto flags = cpu_flags(v);
  std::vector<std::string> modules;
  for (const char* m : {"kvm_intel", "kvm_amd", "kvm_pvm", "kvm"})
    if (loaded(v, m)) modules.push_back(m);
  std::string loaded_text = modules.empty() ? "no kvm module loaded" : "modules " + join(modules);
  if (has(flags, "vmx") || has(flags, "svm")) {
    f.found =
        std::string(has(flags, "vmx") ? "Intel VT-x (vmx)" : "AMD-V (svm)") + "; " + loaded_text;
    return f;
  }
  if (v.machine == "aarch64" || flags.empty()) {
    // arm64 has no cpuinfo flag for it: KVM exists when the kernel booted at EL2.
    bool kvm = ::access((v.dev() + "/kvm").c_str(), F_OK) == 0;
    f.found = (kvm ? "/dev/kvm exists" : "no /dev/kvm") + std::string("; ") + loaded_text;
    if (!kvm) {
      f.status = Status::kMissing;
      f.fix = "on arm64, KVM needs the kernel started at EL2 (not possible in most VMs)";
    }
    return f;
  }
  f.status = Status::kMissing;
  f.found = "no vmx or svm flag in /proc/cpuinfo";
  if (has(flags, "hypervisor"))
    f.found += ": this is a virtual machine whose hypervisor does not pass VT-x/AMD-V through";
  else
    f.found += " (switched off in the firmware?)";
  f.found += "; " + loaded_text;
  if (loaded(v, "kvm_pvm"))
    f.found +=
        " (kvm_pvm is a paravirtual KVM that works without hardware virtualization, "
        "for guests built for it)";
  return f;
}

Finding probe_hypervisors(const HostView& v) {
  Finding f;
  std::vector<std::string> found;
  for (const char* m : {"vboxdrv", "vmmon", "vmx86"})
    if (loaded(v, m)) found.push_back(m);
  if (found.empty()) {
    f.found = "no VirtualBox (vboxdrv) or VMware (vmmon) kernel module loaded";
    return f;
  }
  f.status = Status::kDegraded;
  for (auto& m : found)
    f.found +=
        (f.found.empty() ? "" : ", ") + m + " (" + (m == "vboxdrv" ? "VirtualBox" : "VMware") + ")";
  f.found += " loaded";
  f.why =
      "it and KVM both want VT-x/AMD-V: while one of its VMs runs, KVM guests fail to "
      "start (and the reverse: VERR_VMX_IN_VMX_ROOT_MODE)";
  if (found[0] != "vboxdrv")
    f.fix = "quit VMware's VMs while togo's run, or sudo modprobe -r vmnet vmmon";
  return f;
}

Finding probe_qemu(const HostView& v) {
  Finding f;
  std::string name = "qemu-system-" + (v.machine.empty() ? std::string("x86_64") : v.machine);
  std::string path = v.which(name);
  if (path.empty()) {
    f.status = Status::kMissing;
    f.found = name + " is not installed";
    f.why = "vm mode is not built yet; when it is, it will run envs under QEMU";
    f.fix = v.machine == "aarch64" ? "sudo apt install qemu-system-arm"
                                   : "sudo apt install qemu-system-x86";
    return f;
  }
  auto version = v.live.output({path, "--version"});
  f.found = path + ": " + (version ? *version : std::string("did not tell its version")) +
            " (vm mode is not built yet)";
  if (!version) f.status = Status::kDegraded;
  return f;
}

Finding probe_guest_kernel(const HostView& v) {
  Finding f;
  std::string path = fs::join(v.store, kGuestKernel);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    f.found = path + " (" + text::human_size(static_cast<uint64_t>(st.st_size)) + ")";
    return f;
  }
  f.status = Status::kMissing;
  f.found = "no guest kernel in the store (" + path + ")";
  f.why =
      "vm mode is not built yet; it will boot a kernel kept here, so the store carries "
      "what any host needs";
  return f;
}

}  // namespace togo::doctor
