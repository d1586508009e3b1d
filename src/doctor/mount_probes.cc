// Mounting on the store's filesystem: overlayfs (tried for real, with the
// runtime's own probe), the fuse-overlayfs fallback, idmapped mounts.
#include <cerrno>

#include "doctor/probes.h"

namespace togo::doctor {
namespace {

/// "ext4" for the filesystem holding `path`, or "its filesystem".
std::string fs_of(const HostView& v, const std::string& path) {
  if (auto st = v.live.fs_stats(path)) {
    std::string name = fs_name(st->magic);
    if (!name.empty()) return name;
  }
  if (const MountEntry* m = mount_of(v, path)) return m->fstype;
  return "its filesystem";
}

}  // namespace

Finding probe_overlay(const HostView& v) {
  Finding f;
  const bool rootless = v.uid != 0;
  std::string dir = scratch_dir(v);
  if (dir.empty()) {
    f.status = Status::kDegraded;
    f.found = "not tried: " + v.user_name() + " may not write in " + store_spot(v).existing +
              ", where the store would be";
    f.why = "togo tries overlayfs when an env is created and falls back to a private copy";
    f.fix = "pass --store with a directory you own";
    return f;
  }
  std::string where = " on the store's filesystem (" + fs_of(v, dir) + ", " + dir + ")";
  auto r = v.live.overlay(dir);
  if (r) {
    f.found = std::string("overlayfs mounts") + (rootless ? " in a user namespace" : "") + where;
    return f;
  }
  f.status = Status::kDegraded;
  f.found = r.error().message + where;
  f.why =
      "envs get a private copy of their image instead (--rootfs copy): creating one "
      "copies every file, and each takes the image's full size on the drive";
  if (r.error().err == EINVAL && rootless)
    f.fix = "rootless overlayfs needs Linux 5.11 or later and a store on ext4, xfs or btrfs";
  return f;
}

Finding probe_fuse(const HostView& v) {
  Finding f;
  std::string exe = v.which("fuse-overlayfs");
  int err = v.live.open_rw(v.dev() + "/fuse");
  std::string dev = err == 0 ? "/dev/fuse opens" : "/dev/fuse: " + errno_text(err);
  if (exe.empty()) {
    f.status = Status::kMissing;
    f.found = "fuse-overlayfs is not installed; " + dev;
    return f;
  }
  f.found = "fuse-overlayfs at " + exe + "; " + dev;
  if (err != 0) {
    f.status = Status::kDegraded;
    f.why =
        "fuse-overlayfs needs /dev/fuse; it is the fallback where kernel overlayfs is "
        "refused (togo does not use it yet)";
    f.fix = err == ENOENT ? "sudo modprobe fuse" : "sudo chmod 0666 /dev/fuse (its usual mode)";
  }
  return f;
}

Finding probe_idmapped(const HostView& v) {
  Finding f;
  std::string dir = store_spot(v).existing;
  std::string fs = fs_of(v, dir);
  Outcome o = v.live.idmapped_mount(dir);
  if (o.ok()) {
    f.found = "an idmapped mount of the store's filesystem (" + fs + ") works";
    return f;
  }
  std::string failed = o.step + ": " + errno_text(o.err);
  if (o.err == ENOSYS) {
    f.status = Status::kMissing;
    f.found = "the kernel has no idmapped mounts (" + failed + "; they came with Linux 5.12)";
    return f;
  }
  f.status = Status::kDegraded;
  if (o.step.starts_with("mount_setattr") && o.err == EINVAL) {
    f.found = "the store's filesystem (" + fs + ") cannot be idmapped (" + failed + ")";
  } else if (o.step.starts_with("mount_setattr") && o.err == EPERM && v.uid != 0) {
    f.found =
        "only root may idmap the store's filesystem (" + fs + ", mounted by the host): " + failed;
    f.fix = "nothing to do: togo does not need idmapped mounts yet";
  } else {
    f.found = "an idmapped mount of the store's filesystem (" + fs + ") failed at " + failed;
  }
  return f;
}

}  // namespace togo::doctor
