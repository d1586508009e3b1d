// The store's drive: its filesystem, mount options, free space, and the
// block device under it (removable? a USB link at what speed?).
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/fs.h"
#include "base/text.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

bool has(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string dirname(const std::string& p) {
  size_t slash = p.find_last_of('/');
  return slash == 0 || slash == std::string::npos ? "/" : p.substr(0, slash);
}

/// Filesystems that cannot hold a store: no owners, modes, symlinks or
/// hardlinks (the fuse ones on a block device are ntfs-3g or exfat-fuse).
bool lacks_owners(const std::string& fs) {
  return fs == "vfat" || fs == "msdos" || fs == "exfat" || fs == "ntfs" || fs == "ntfs3" ||
         fs == "fuseblk";
}

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1ull << 30));
  return buf;
}

/// The filesystem's name: the mount table's entry `m`, else statfs's magic.
std::string fs_type(const HostView& v, const StoreSpot& spot, const MountEntry* m) {
  if (m) return m->fstype;
  if (auto st = v.live.fs_stats(spot.existing)) {
    std::string name = fs_name(st->magic);
    if (!name.empty()) return name;
    char buf[32];
    std::snprintf(buf, sizeof buf, "magic 0x%llx", static_cast<unsigned long long>(st->magic));
    return buf;
  }
  return "unknown";
}

}  // namespace

StoreSpot store_spot(const HostView& v) {
  StoreSpot s;
  s.path = v.store.empty() ? "/" : v.store;
  s.existing = s.path;
  s.exists = ::access(s.path.c_str(), F_OK) == 0;
  while (::access(s.existing.c_str(), F_OK) != 0 && s.existing != "/")
    s.existing = dirname(s.existing);
  return s;
}

const MountEntry* mount_of(const HostView& v, const std::string& path) {
  char buf[PATH_MAX];
  return mount_holding(v.mounts, ::realpath(path.c_str(), buf) ? buf : path.c_str());
}

std::string scratch_dir(const HostView& v) {
  StoreSpot s = store_spot(v);
  for (const std::string& dir : {fs::join(s.path, "tmp"), s.path, s.existing})
    if (::access(dir.c_str(), W_OK | X_OK) == 0) return dir;
  return {};
}

std::string fs_name(int64_t magic) {
  switch (static_cast<uint64_t>(magic) & 0xffffffffu) {
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs";
    case 0x858458F6:
      return "ramfs";
    case 0x4d44:
      return "vfat";
    case 0x2011BAB0:
      return "exfat";
    case 0x5346544e:
      return "ntfs";
    case 0x7366746e:
      return "ntfs3";
    case 0x65735546:
      return "fuse";
    case 0x794c7630:
      return "overlay";
    case 0x6969:
      return "nfs";
    case 0xFF534D42:
      return "cifs";
    case 0xFE534D42:
      return "smb3";
    case 0x01021997:
      return "9p";
    case 0x2fc12fc1:
      return "zfs";
    case 0xF2F52010:
      return "f2fs";
    case 0xCA451A4E:
      return "bcachefs";
    case 0x73717368:
      return "squashfs";
    case 0xE0F5E1E2:
      return "erofs";
    case 0x9660:
      return "iso9660";
  }
  return {};
}

Finding probe_filesystem(const HostView& v) {
  Finding f;
  StoreSpot spot = store_spot(v);
  const MountEntry* m = mount_of(v, spot.existing);
  std::string fs = fs_type(v, spot, m);
  f.found = spot.path + (spot.exists ? "" : " (not created yet)") + " on " + fs +
            (m ? " (" + m->source + " at " + m->mount_point + ")" : "");
  std::string where = text::shell_quote(m ? m->mount_point : spot.existing);
  if (lacks_owners(fs)) {
    f.status = Status::kMissing;
    f.why = fs +
            " keeps no owners, permissions, symlinks or hardlinks, which every Linux "
            "image has: togo cannot keep a store directly on it (and has no loop-image "
            "mode yet)";
    f.fix = "keep an ext4 image on the drive and use the store inside it: truncate -s 32G " +
            where + "/togo.img && mkfs.ext4 -q " + where + "/togo.img && sudo mkdir -p " +
            "/mnt/togo && sudo mount -o loop " + where + "/togo.img /mnt/togo && sudo chown " +
            "$USER /mnt/togo, then togo --store /mnt/togo/togo-store; or reformat the drive "
            "as ext4 (erases it)";
  } else if (fs == "squashfs" || fs == "iso9660" || fs == "erofs") {
    f.status = Status::kMissing;
    f.why = fs + " is read-only: togo cannot write a store there";
    f.fix = "pass --store with a directory on a writable drive";
  } else if (fs == "tmpfs" || fs == "ramfs") {
    f.status = Status::kDegraded;
    f.why = "the store lives in memory: everything in it is gone at the next reboot";
    f.fix = "pass --store with a directory on a drive";
  } else if (fs == "nfs" || fs == "nfs4" || fs == "cifs" || fs == "smb3" || fs == "9p" ||
             fs == "fuse" || fs.starts_with("fuse.") || fs == "overlay") {
    f.status = Status::kDegraded;
    f.why = fs +
            " cannot hold overlayfs upper layers (envs get private copies), and its "
            "locks and fsync are not those of a local disk";
    f.fix = "keep the store on a local ext4, xfs or btrfs filesystem";
  }
  return f;
}

Finding probe_mount(const HostView& v) {
  Finding f;
  StoreSpot spot = store_spot(v);
  const MountEntry* m = mount_of(v, spot.existing);
  if (!m) {
    f.status = Status::kDegraded;
    f.found = "no mount in /proc/self/mountinfo holds " + spot.existing;
    f.fix = "check that /proc is mounted";
    return f;
  }
  f.found = m->mount_point + " is mounted " + join(m->options, ",");
  if (has(m->options, "ro") || has(m->super_options, "ro")) {
    f.status = Status::kMissing;
    f.why =
        "the store's filesystem is read-only: no env can start or change, nothing can be "
        "imported (a drive with errors is often remounted read-only: check dmesg)";
    f.fix = "sudo mount -o remount,rw " + text::shell_quote(m->mount_point);
    return f;
  }
  std::vector<std::string> notes;
  if (has(m->options, "nosuid"))
    notes.push_back(
        "nosuid: setuid programs (sudo, ping) in envs with a private copy gain no "
        "privileges");
  if (has(m->options, "nodev"))
    notes.push_back(
        "nodev: device files in images do not open "
        "(envs get /dev from the host anyway)");
  if (has(m->options, "noexec")) {
    f.status = Status::kDegraded;
    f.why =
        "noexec: programs in envs with a private copy (--rootfs copy) cannot run, nor can "
        "togo itself be started from this drive; overlayfs envs are not affected";
    f.fix = "sudo mount -o remount,exec " + text::shell_quote(m->mount_point);
  }
  for (auto& n : notes) f.found += "; " + n;
  return f;
}

Finding probe_space(const HostView& v) {
  Finding f;
  StoreSpot spot = store_spot(v);
  auto st = v.live.fs_stats(spot.existing);
  if (!st) {
    f.status = Status::kDegraded;
    f.found = "statfs of " + spot.existing + " failed";
    return f;
  }
  uint64_t free_bytes = st->available * st->block_size;
  uint64_t total = st->blocks * st->block_size;
  f.found = gib(free_bytes) + " free of " + gib(total) + " for " + v.user_name();
  if (free_bytes < (256ull << 20)) {
    f.status = Status::kMissing;
    f.why = "not even a minimal Debian image (about 300 MiB with its copy) fits";
  } else if (free_bytes < (2ull << 30)) {
    f.status = Status::kDegraded;
    f.why = "room for an image or two: envs' writes and pulls will fill it soon";
  }
  return f;
}

}  // namespace togo::doctor
