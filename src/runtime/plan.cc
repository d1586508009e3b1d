#include "runtime/plan.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>

#include "runtime/masks.h"

namespace togo::runtime {

namespace {

Step at(StepKind kind, std::string a, Create create = Create::kNone) {
  Step s{kind, std::move(a), "", ""};
  s.create = create;
  size_t slash = s.a.rfind('/');
  s.parent = slash == std::string::npos ? "." : s.a.substr(0, slash);
  s.base = slash == std::string::npos ? s.a : s.a.substr(slash + 1);
  return s;
}

Step fs_mount(std::string target, std::string type, std::string data, unsigned long flags) {
  Step s = at(StepKind::kMountFs, std::move(target), Create::kDir);
  s.b = std::move(type);
  s.c = std::move(data);
  s.flags = flags;
  return s;
}

Step bind(std::string target, std::string source, Create create, bool readonly = false,
          bool recursive = false) {
  Step s = at(StepKind::kBind, std::move(target), create);
  s.b = std::move(source);
  s.readonly = readonly;
  s.recursive = recursive;
  return s;
}

// The devices every env has, with their numbers (fixed by the kernel).
constexpr struct {
  const char* name;
  unsigned major, minor;
} kDevices[] = {{"null", 1, 3}, {"zero", 1, 5},    {"full", 1, 7},
                {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};

}  // namespace

std::string overlay_options(const RunSpec& spec) {
  // Overlayfs lists the top layer first.
  std::string lower;
  for (auto it = spec.layers.rbegin(); it != spec.layers.rend(); ++it)
    lower += (lower.empty() ? "" : ":") + *it;
  std::string opts = "lowerdir=" + lower + ",upperdir=" + spec.upper + ",workdir=" + spec.work;
  // Overlayfs keeps its own metadata (opaque directories) in user.* xattrs,
  // as root too: a store moves between hosts and users, and an env's upper
  // layer or an image layer written by one must read the same for the other
  // (trusted.* cannot be read in a user namespace).
  opts += ",userxattr";
  return opts;
}

Plan build_plan(const RunSpec& spec) {
  Plan p;
  p.store = spec.store;
  p.harden = !spec.privileged;
  p.rootless = spec.rootless;
  p.clone_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
  if (spec.rootless) p.clone_flags |= CLONE_NEWUSER;
  if (spec.own_network) p.clone_flags |= CLONE_NEWNET;

  auto& s = p.steps;
  s.push_back({StepKind::kMakePrivate});
  s.push_back({StepKind::kHostname, spec.hostname});
  if (spec.own_network) s.push_back({StepKind::kLoopbackUp});
  if (spec.rootfs.empty()) {
    s.push_back({StepKind::kMountOverlay, spec.mount, overlay_options(spec)});
    s.push_back({StepKind::kOpenRoot, spec.mount});
  } else {
    s.push_back({StepKind::kBindSelf, spec.rootfs});
    s.push_back({StepKind::kOpenRoot, spec.rootfs});
  }
  const unsigned long nsd = MS_NOSUID | MS_NODEV;
  s.push_back(fs_mount("proc", "proc", "", nsd | MS_NOEXEC));
  // With a network of its own the env gets its own sysfs (which shows that
  // network); otherwise the host's, read-only.
  if (spec.own_network)
    s.push_back(fs_mount("sys", "sysfs", "", MS_RDONLY | nsd | MS_NOEXEC));
  else
    s.push_back(bind("sys", "/sys", Create::kDir, /*readonly=*/true, /*recursive=*/true));
  s.push_back(fs_mount("dev", "tmpfs", "mode=0755,size=65536k", MS_NOSUID | MS_STRICTATIME));
  // Root makes the device nodes, as crun does: a node costs less to make,
  // and to tear down, than a bind mount of the host's. A user namespace
  // may not make them: rootless binds the host's.
  for (const auto& dev : kDevices) {
    std::string path = std::string("dev/") + dev.name;
    if (spec.rootless) {
      s.push_back(bind(path, "/" + path, Create::kFile));
    } else {
      Step node = at(StepKind::kDevice, path);
      node.dev = makedev(dev.major, dev.minor);
      s.push_back(node);
    }
  }
  // A private pty instance; without a mapped tty group rootless omits gid=.
  s.push_back(fs_mount("dev/pts", "devpts",
                       spec.rootless ? "newinstance,ptmxmode=0666,mode=0620"
                                     : "newinstance,ptmxmode=0666,mode=0620,gid=5",
                       MS_NOSUID | MS_NOEXEC));
  s.push_back(fs_mount("dev/shm", "tmpfs", "mode=1777,size=65536k", nsd | MS_NOEXEC));
  struct {
    const char* path;
    const char* text;
  } links[] = {{"dev/ptmx", "pts/ptmx"},        {"dev/fd", "/proc/self/fd"},
               {"dev/stdin", "/proc/self/fd/0"}, {"dev/stdout", "/proc/self/fd/1"},
               {"dev/stderr", "/proc/self/fd/2"}, {"dev/core", "/proc/kcore"}};
  for (auto& l : links) {
    Step link = at(StepKind::kSymlink, l.path);
    link.b = l.text;
    s.push_back(link);
  }
  s.push_back(fs_mount("tmp", "tmpfs", "mode=1777", nsd));
  // SECURITY: a share's target is resolved inside the env's root like every
  // other target, so a symlink in the image cannot send it out.
  for (auto& sh : spec.shares) {
    Step step = bind(sh.path.substr(1), sh.host, sh.directory ? Create::kDir : Create::kFile,
                     sh.readonly, /*recursive=*/true);
    step.not_on_kernel_fs = true;
    s.push_back(step);
  }
  // Generated to match the env's name and network, bound read-only.
  if (!spec.resolv_conf.empty())
    s.push_back(bind("etc/resolv.conf", spec.resolv_conf, Create::kFile, /*readonly=*/true));
  if (!spec.hosts.empty())
    s.push_back(bind("etc/hosts", spec.hosts, Create::kFile, /*readonly=*/true));
  // With only one id mapped, apt cannot switch to its _apt user: where the
  // image has apt, a setting makes it download as root instead.
  if (!spec.apt_no_sandbox.empty()) {
    Step apt = bind("etc/apt/apt.conf.d/00togo-sandbox", spec.apt_no_sandbox, Create::kFile,
                    /*readonly=*/true);
    apt.optional = true;
    s.push_back(apt);
  }
  if (!spec.passwd.empty())
    s.push_back(bind("etc/passwd", spec.passwd, Create::kFile, /*readonly=*/true));
  if (!spec.group.empty())
    s.push_back(bind("etc/group", spec.group, Create::kFile, /*readonly=*/true));
  if (!spec.hostname_file.empty())
    s.push_back(bind("etc/hostname", spec.hostname_file, Create::kFile, /*readonly=*/true));
  if (!spec.privileged) {
    // SECURITY: the /proc and /sys paths engines hide or freeze, so the env
    // cannot read kernel memory, keys or firmware, or write kernel tunables.
    for (auto& m : mask_steps()) {
      Step step;
      if (m.kind == MaskKind::kFile) {
        step = bind(m.path, "/dev/null", Create::kNone);
      } else if (m.kind == MaskKind::kDir) {
        step = at(StepKind::kMaskDir, m.path);
        step.c = kMaskTmpfsData;
        step.flags = kMaskTmpfsFlags;
      } else {
        step = at(StepKind::kReadOnly, m.path);
      }
      step.optional = true;
      s.push_back(step);
    }
  }
  s.push_back({StepKind::kPivotRoot});

  return p;
}

std::string describe(const Step& step) {
  switch (step.kind) {
    case StepKind::kMakePrivate: return "making mounts private";
    case StepKind::kHostname: return "setting hostname " + step.a;
    case StepKind::kMountOverlay: return "mounting overlayfs on " + step.a;
    case StepKind::kBindSelf: return "bind-mounting " + step.a;
    case StepKind::kOpenRoot: return "opening root " + step.a;
    case StepKind::kMountFs: return "mounting " + step.b + " on /" + step.a;
    case StepKind::kBind: return "bind-mounting " + step.b + " on /" + step.a;
    case StepKind::kSymlink: return "creating symlink /" + step.a;
    case StepKind::kReadOnly: return "making /" + step.a + " read-only";
    case StepKind::kDevice: return "making device /" + step.a;
    case StepKind::kMaskDir: return "masking /" + step.a;
    case StepKind::kLoopbackUp: return "bringing up the loopback interface";
    case StepKind::kPivotRoot: return "changing root (pivot_root)";
  }
  return "?";
}

}  // namespace togo::runtime
