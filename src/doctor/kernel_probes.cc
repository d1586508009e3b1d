// The kernel itself: version and architecture, openat2, seccomp, and the
// binfmt_misc handlers that run other architectures' programs.
#include <cerrno>
#include <cstdio>

#include "base/text.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

#if defined(__x86_64__)
constexpr const char* kBuiltFor = "x86_64";
#elif defined(__aarch64__)
constexpr const char* kBuiltFor = "aarch64";
#elif defined(__riscv) && __riscv_xlen == 64
constexpr const char* kBuiltFor = "riscv64";
#else
constexpr const char* kBuiltFor = "unknown";
#endif

/// "6.1.0-18-amd64" -> {6, 1}; {0, 0} if unreadable.
std::pair<int, int> kernel_version(const std::string& release) {
  int major = 0, minor = 0;
  if (std::sscanf(release.c_str(), "%d.%d", &major, &minor) < 2) return {0, 0};
  return {major, minor};
}

/// The value after "Key:" in a /proc/<pid>/status-like text, or "".
std::string status_field(const std::string& text, const std::string& key) {
  for (auto& line : text::split(text, '\n'))
    if (line.starts_with(key + ":")) return trim(std::string_view(line).substr(key.size() + 1));
  return {};
}

/// The value of KEY="..." in os-release text, unquoted.
std::string os_release_field(const std::string& text, const std::string& key) {
  for (auto& line : text::split(text, '\n')) {
    if (!line.starts_with(key + "=")) continue;
    std::string v = trim(std::string_view(line).substr(key.size() + 1));
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'')) v = v.substr(1, v.size() - 2);
    return v;
  }
  return {};
}

/// Architectures a kernel runs natively besides its own (32-bit compat).
bool native_arch(const std::string& host, const std::string& arch) {
  if (arch == host) return true;
  if (host == "x86_64") return arch == "i386" || arch == "i486" || arch == "i686";
  if (host == "aarch64") return arch == "arm" || arch == "armeb";
  return false;
}

}  // namespace

Finding probe_kernel(const HostView& v) {
  Finding f;
  std::string release = trim(v.read(v.proc() + "/sys/kernel/osrelease").value_or(""));
  // The kernel's own word first: under qemu-user, uname(2) reports the
  // emulated machine, never the host's.
  std::string machine = trim(v.read(v.proc() + "/sys/kernel/arch").value_or(""));
  if (machine.empty()) machine = v.machine;
  std::string distro =
      os_release_field(v.read(v.etc() + "/os-release").value_or(""), "PRETTY_NAME");
  f.found = "Linux " + (release.empty() ? std::string("(version unknown)") : release) + " " +
            (machine.empty() ? std::string("(architecture unknown)") : machine) +
            (distro.empty() ? "" : " (" + distro + ")") + "; togo is built for " + kBuiltFor;
  if (!machine.empty() && machine != kBuiltFor) {
    f.status = Status::kDegraded;
    f.why = std::string("this togo is a ") + kBuiltFor + " program on a " + machine +
            " kernel, so it runs under emulation (qemu-user or Rosetta): slowly, and its envs "
            "default to " +
            kBuiltFor + " images";
    f.fix = "run the togo binary built for " + machine;
    return f;
  }
  auto [major, minor] = kernel_version(release);
  if (major != 0 && (major < 5 || (major == 5 && minor < 11))) {
    f.status = Status::kDegraded;
    f.why = "Linux " + std::to_string(major) + "." + std::to_string(minor) +
            " predates rootless overlayfs (5.11)" +
            (major < 5 || minor < 6 ? std::string(" and openat2 (5.6)") : std::string()) +
            ": envs get private copies, and some need root";
    f.fix = "upgrade to Linux 5.11 or later (Debian 12's 6.1 has everything togo uses)";
  }
  return f;
}

Finding probe_openat2(const HostView& v) {
  Finding f;
  int err = v.live.openat2();
  if (err == 0) {
    f.found = "openat2 with RESOLVE_IN_ROOT works";
    return f;
  }
  f.status = Status::kMissing;
  if (err == ENOSYS) {
    f.found = "openat2 is not in this kernel (ENOSYS; it came with Linux 5.6)";
  } else if (err == EPERM) {
    f.found = "openat2 is refused (EPERM): a seccomp filter around togo blocks it";
    f.fix = "run togo outside that container, or allow openat2 in its seccomp profile";
  } else {
    f.found = "openat2 failed: " + errno_text(err);
  }
  return f;
}

Finding probe_seccomp(const HostView& v) {
  Finding f;
  std::string status = v.read(v.proc() + "/self/status").value_or("");
  std::string mode = status_field(status, "Seccomp");
  std::string nnp = status_field(status, "NoNewPrivs");
  std::string actions = trim(v.read(v.proc() + "/sys/kernel/seccomp/actions_avail").value_or(""));
  if (!status.empty() && mode.empty()) {
    f.status = Status::kMissing;
    f.found = "the kernel has no seccomp (no Seccomp: line in /proc/self/status)";
    return f;
  }
  Outcome live = v.live.seccomp();
  if (!live.ok()) {
    f.status = Status::kMissing;
    f.found = live.step + ": " + errno_text(live.err);
    if (live.step == "installing a seccomp filter" && live.err == EINVAL)
      f.found += " (the kernel lacks CONFIG_SECCOMP_FILTER)";
    return f;
  }
  if (!actions.empty() && actions.find("errno") == std::string::npos) {
    f.status = Status::kMissing;
    f.found = "seccomp filters work but cannot answer with an errno (actions: " + actions + ")";
    return f;
  }
  f.found = "no_new_privs and seccomp filters work" +
            (actions.empty() ? std::string() : " (actions: " + actions + ")");
  if (mode == "2")
    f.found += "; togo already runs under a filter (Seccomp: 2), which envs' filters stack on";
  if (nnp == "1") {
    f.status = Status::kDegraded;
    f.found += "; no_new_privs is already set on togo";
    f.why =
        "with no_new_privs inherited from whatever started togo, setuid helpers "
        "(newuidmap, newgidmap) cannot gain privileges: rootless envs map one id";
    f.fix = "start togo from a shell without no_new_privs (not from inside another sandbox)";
  }
  return f;
}

Finding probe_binfmt(const HostView& v) {
  Finding f;
  const std::string dir = v.proc() + "/sys/fs/binfmt_misc";
  auto state = v.read(dir + "/status");
  if (!state) {
    f.status = Status::kMissing;
    f.found = "binfmt_misc is not mounted at /proc/sys/fs/binfmt_misc";
    f.why = "without it, only " + v.machine +
            " programs run; envs of other architectures (arm64 images on x86_64 and back) "
            "cannot start";
    f.fix =
        "sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; sudo apt install "
        "qemu-user-static binfmt-support";
    return f;
  }
  if (trim(*state) != "enabled") {
    f.status = Status::kMissing;
    f.found = "binfmt_misc is mounted but disabled";
    f.fix = "echo 1 | sudo tee /proc/sys/fs/binfmt_misc/status";
    return f;
  }
  std::vector<std::string> with_f, without_f;
  for (auto& name : v.list(dir)) {
    if (name == "status" || name == "register" || !name.starts_with("qemu-")) continue;
    std::string arch = name.substr(5);
    if (native_arch(v.machine, arch)) continue;
    std::string entry = v.read(dir + "/" + name).value_or("");
    if (first_line(entry) != "enabled") continue;
    std::string flags = status_field(entry, "flags");
    (flags.find('F') != std::string::npos ? with_f : without_f).push_back(arch);
  }
  if (with_f.empty() && without_f.empty()) {
    f.status = Status::kMissing;
    f.found = "binfmt_misc is mounted, with no qemu-user handler for another architecture";
    f.why = "envs of other architectures cannot start";
    return f;
  }
  f.found = "qemu-user handlers for " + join(with_f.empty() ? without_f : with_f);
  if (!without_f.empty() && with_f.empty()) {
    f.status = Status::kDegraded;
    f.found += ", registered without the F flag";
    f.why =
        "without F the kernel looks for the interpreter inside each env, where it is not: "
        "foreign programs fail with ENOENT";
    f.fix = "sudo apt install qemu-user-static (Debian registers its handlers with F)";
  } else if (!without_f.empty()) {
    f.found += " (" + join(without_f) + " without the F flag, so not usable inside envs)";
  }
  return f;
}

}  // namespace togo::doctor
