#include "doctor/checks.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "base/host_check.h"
#include "doctor/probes.h"

namespace togo::doctor {

namespace hc = togo::host_check;

const char* status_name(Status s) {
  switch (s) {
    case Status::kOk:
      return "ok";
    case Status::kDegraded:
      return "degraded";
    case Status::kMissing:
      return "missing";
  }
  return "?";
}

const std::vector<Check>& all_checks() {
  constexpr Severity kCritical = Severity::kCritical;
  constexpr Severity kOptional = Severity::kOptional;
  static const std::vector<Check> table = {
      // host
      {"host.kernel", "host",
       "togo wants Linux 5.11 or later (openat2, rootless overlayfs) and a binary built for "
       "the kernel's architecture",
       probe_kernel, "run the togo binary built for this architecture; upgrade the kernel",
       kOptional},
      {"host.openat2", "host",
       "togo resolves every path an image chooses with openat2(RESOLVE_IN_ROOT): without it no "
       "env can start",
       probe_openat2,
       "use Linux 5.6 or later; inside a container, allow openat2 in its seccomp profile",
       kCritical},

      // isolation
      {hc::kNamespaces, "isolation",
       "every env runs in mount, pid, uts, ipc and network namespaces of its own", probe_namespaces,
       "inside a container, allow unshare (e.g. podman run --privileged); otherwise the kernel "
       "lacks CONFIG_NAMESPACES",
       kCritical},
      {hc::kUserns, "isolation",
       "rootless, togo maps you to root inside a user namespace: without one only root can "
       "run envs",
       probe_userns,
       "sudo sysctl -w user.max_user_namespaces=15000 (and kernel.unprivileged_userns_clone=1 "
       "on older Debian and Ubuntu)",
       kCritical},
      {hc::kSubids, "isolation",
       "subordinate ids (/etc/subuid, /etc/subgid, newuidmap) give a rootless env the other "
       "users an image has (apt's _apt, daemons); without them it maps one id",
       probe_subids,
       "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER; "
       "sudo apt install uidmap",
       kOptional},
      {hc::kOverlay, "isolation",
       "overlayfs gives an env a writable layer over the shared image in milliseconds; "
       "without it every env is a full private copy (--rootfs copy)",
       probe_overlay,
       "keep the store on ext4, xfs or btrfs; rootless overlayfs needs Linux 5.11 or later",
       kOptional},
      {"isolation.fuse", "isolation",
       "fuse-overlayfs with /dev/fuse is the fallback where the kernel refuses overlayfs "
       "(togo does not use it yet)",
       probe_fuse, "sudo apt install fuse-overlayfs; /dev/fuse must be open to you (mode 0666)",
       kOptional},
      {"isolation.idmapped", "isolation",
       "idmapped mounts can show files with other owners without chown, for shares and a "
       "store that moves between users (togo does not use them yet)",
       probe_idmapped, "Linux 5.12 or later and a filesystem that supports them (ext4, xfs, btrfs)",
       kOptional},
      {hc::kCgroups, "isolation", "--memory, --cpus and --pids are enforced with cgroups",
       probe_cgroups,
       "run as root, or use cgroup v2 with systemd's Delegate=yes (systemd-run --user --scope "
       "togo ...)",
       kOptional},
      {hc::kSeccomp, "isolation",
       "every env runs with no_new_privs and a seccomp filter like Docker's default: without "
       "them only privileged=true envs start",
       probe_seccomp,
       "use a kernel built with CONFIG_SECCOMP_FILTER; inside another sandbox, allow seccomp",
       kCritical},

      // storage
      {"storage.filesystem", "storage",
       "the store needs owners, modes, symlinks and hardlinks: ext4, xfs, btrfs and the like "
       "have them, FAT, exFAT and NTFS do not",
       probe_filesystem,
       "keep the store on ext4: reformat the drive, or loop-mount an ext4 image kept on it",
       kCritical},
      {"storage.mount", "storage",
       "the store's mount options: read-only stops every env, noexec stops programs in envs "
       "with a private copy",
       probe_mount, "sudo mount -o remount,rw,exec MOUNTPOINT", kCritical},
      {"storage.space", "storage",
       "images and envs' writable layers need room; a full drive refuses new writes", probe_space,
       "togo gc; togo rm the envs you no longer need; togo image rm unused images", kOptional},
      {"storage.device", "storage",
       "where the store's bytes live: a USB 2 link or an SD card makes every env slow",
       probe_device,
       "plug the drive into a USB 3 port (often blue, or marked SS) with a USB 3 cable", kOptional},
      {"storage.bench", "storage",
       "how fast the store's drive is at what envs do: sequential I/O for images, small writes "
       "and fsync for package managers and databases",
       probe_storage_bench, "use a faster drive (a USB 3 SSD) or a faster port", kOptional, true},

      // vm
      {"vm.kvm", "vm",
       "vm mode (planned) runs envs in a utility VM: with KVM it is fast, without it QEMU "
       "emulates every instruction",
       probe_kvm, "enable VT-x/AMD-V in the firmware; in a VM, enable nested virtualization",
       kOptional},
      {"vm.cpu", "vm",
       "KVM needs the CPU's virtualization extensions (VT-x or AMD-V) exposed to this kernel",
       probe_cpu_virt,
       "enable VT-x/AMD-V (SVM) in the firmware settings; in a VM, enable nested virtualization",
       kOptional},
      {"vm.hypervisors", "vm",
       "VirtualBox's and VMware's kernel modules compete with KVM for VT-x/AMD-V",
       probe_hypervisors,
       "quit their VMs while togo's run, or unload them: sudo modprobe -r vboxnetadp vboxnetflt "
       "vboxdrv",
       kOptional},
      {"vm.qemu", "vm", "vm mode (planned) runs envs under QEMU", probe_qemu,
       "sudo apt install qemu-system-x86 (qemu-system-arm on arm64)", kOptional},
      {"vm.guest-kernel", "vm",
       "vm mode (planned) boots a guest kernel kept in the store, so the store runs on any host",
       probe_guest_kernel, "nothing to do yet: vm mode is not built", kOptional},

      // network
      {hc::kNetHelpers, "network", "--network private runs slirp4netns, which needs /dev/net/tun",
       probe_net_helpers,
       "sudo apt install passt (or slirp4netns); /dev/net/tun must be open to you (mode 0666)", kOptional},
      {"network.dns", "network",
       "envs read the host's resolv.conf (--network host) or ask a forwarder to the host's "
       "first name server (--network private)",
       probe_dns, "give /etc/resolv.conf a nameserver line", kOptional},
      {"network.proxy", "network",
       "togo does not pass your environment into envs: proxy settings must be given per env",
       probe_proxy, "togo config NAME env+=https_proxy=URL env+=no_proxy=HOSTS", kOptional},

      // cross-arch
      {"cross-arch.binfmt", "cross-arch",
       "envs of another architecture (an arm64 image on x86_64) run through qemu-user "
       "registered with binfmt_misc",
       probe_binfmt, "sudo apt install qemu-user-static binfmt-support", kOptional},
  };
  return table;
}

const Check* find_check(const std::string& id) {
  for (auto& c : all_checks())
    if (id == c.id) return &c;
  return nullptr;
}

CheckResult complete(const Check& check, Finding f) {
  CheckResult r;
  r.id = check.id;
  r.group = check.group;
  r.status = f.status;
  r.found = std::move(f.found);
  r.why = f.why.empty() ? check.description : std::move(f.why);
  if (f.status != Status::kOk) r.fix = f.fix.empty() ? check.hint : std::move(f.fix);
  r.severity = check.severity;
  return r;
}

namespace {

using Clock = std::chrono::steady_clock;


// What the probe threads share with the runner. Held by shared_ptr: a probe
// that outlives the deadline keeps it alive after run_checks returns.
struct Shared {
  HostView view;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::optional<Finding>> findings;
  size_t pending = 0;
};

}  // namespace

std::vector<CheckResult> run_checks(const HostView& view, const std::vector<Check>& table,
                                    const RunOptions& options) {
  auto shared = std::make_shared<Shared>();
  shared->view = view;
  shared->findings.resize(table.size());
  const auto start = Clock::now();

  for (size_t i = 0; i < table.size(); i++) {
    if (table[i].bench) continue;
    shared->pending++;
    Probe probe = table[i].probe;
    std::thread([shared, probe, i] {
      Finding f = probe(shared->view);
      std::lock_guard lock(shared->mu);
      shared->findings[i] = std::move(f);
      shared->pending--;
      shared->cv.notify_all();
    }).detach();
  }
  std::vector<std::optional<Finding>> findings;
  {
    std::unique_lock lock(shared->mu);
    shared->cv.wait_until(lock, start + options.deadline, [&] { return shared->pending == 0; });
    findings = shared->findings;
  }
  // The slow, exclusive ones: after the others, one at a time.
  for (size_t i = 0; i < table.size(); i++) {
    if (!table[i].bench || !options.storage_bench) continue;
    findings[i] = table[i].probe(view);
  }

  std::vector<CheckResult> out;
  for (size_t i = 0; i < table.size(); i++) {
    if (table[i].bench && !options.storage_bench) continue;
    Finding f;
    if (findings[i]) {
      f = std::move(*findings[i]);
    } else {
      f.status = Status::kDegraded;
      f.found =
          "the probe did not answer within " + std::to_string(options.deadline.count()) + " ms";
      f.fix =
          "run `togo doctor` again; a probe that hangs points at the kernel or a stuck "
          "device";
    }
    out.push_back(complete(table[i], std::move(f)));
  }
  return out;
}

bool default_mode_runs(const std::vector<CheckResult>& results) {
  for (auto& r : results)
    if (r.severity == Severity::kCritical && r.status == Status::kMissing) return false;
  return true;
}

}  // namespace togo::doctor
