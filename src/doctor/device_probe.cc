// The block device under the store, from sysfs: /sys/dev/block/MAJ:MIN
// resolves to the device's directory; from there up through device-mapper
// slaves and partitions to the disk, and up the device tree to the USB
// device it hangs off, whose `speed` is the negotiated link speed in Mbit/s.
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>

#include "doctor/probes.h"

namespace togo::doctor {
namespace {

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  return ::realpath(p.c_str(), buf) ? std::string(buf) : std::string();
}

std::string parent(const std::string& p) { return p.substr(0, p.find_last_of('/')); }
std::string base(const std::string& p) { return p.substr(p.find_last_of('/') + 1); }
bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

struct Device {
  std::string name;       // the partition or disk the filesystem is on
  std::string disk;       // the whole disk's sysfs directory
  std::string via;        // "dm-0 on " for device-mapper layers
  std::string loop_file;  // backing file of a loop device
  std::string usb;        // the USB device's sysfs directory, if any
};

/// The sysfs directory of block device MAJ:MIN, inside v.sys(); "" if none.
std::string block_dir(const HostView& v, unsigned major, unsigned minor) {
  std::string dir =
      real_path(v.sys() + "/dev/block/" + std::to_string(major) + ":" + std::to_string(minor));
  std::string sys = real_path(v.sys());
  return !dir.empty() && !sys.empty() && dir.starts_with(sys + "/") ? dir : std::string();
}

/// The block device of the filesystem at `path` (statfs's st_dev, else the
/// mount's source named in /sys/class/block).
std::string device_dir(const HostView& v, const std::string& path) {
  if (auto st = v.live.fs_stats(path); st && st->dev_major != 0)
    return block_dir(v, st->dev_major, st->dev_minor);
  // btrfs and others report an anonymous st_dev: use the mount's source.
  if (const MountEntry* m = mount_of(v, path); m && m->source.starts_with("/dev/")) {
    std::string source = real_path(v.root + m->source);
    std::string name = base(source.empty() ? m->source : source);
    // SECURITY: the source is any name a FUSE mount chose; it must name an
    // entry of /sys/class/block, nothing above it.
    if (name.empty() || name == "." || name == "..") return {};
    std::string dir = real_path(v.sys() + "/class/block/" + name);
    std::string sys = real_path(v.sys());
    if (!dir.empty() && !sys.empty() && dir.starts_with(sys + "/")) return dir;
  }
  return {};
}

Device walk(const HostView& v, std::string dir) {
  Device d;
  d.name = base(dir);
  // Device-mapper (LUKS, LVM): down to what it is built on.
  for (int depth = 0; depth < 4; depth++) {
    auto slaves = v.list(dir + "/slaves");
    std::string next = slaves.empty() ? "" : real_path(dir + "/slaves/" + slaves[0]);
    if (next.empty()) break;
    d.via += base(dir) + " on ";
    dir = next;
  }
  d.disk = exists(dir + "/partition") ? parent(dir) : dir;
  if (!d.via.empty()) d.via += base(dir) + (d.disk != dir ? " of " + base(d.disk) : "");
  d.loop_file = trim(v.read(d.disk + "/loop/backing_file").value_or(""));
  std::string sys = real_path(v.sys());
  for (std::string p = parent(d.disk); p.size() > sys.size() && p.starts_with(sys); p = parent(p))
    if (exists(p + "/speed") && exists(p + "/idVendor")) {
      d.usb = p;
      break;
    }
  return d;
}

std::string transport(const Device& d) {
  const std::string& p = d.disk;
  if (!d.usb.empty()) return "USB";
  if (p.find("/nvme") != std::string::npos) return "NVMe";
  if (p.find("/virtio") != std::string::npos) return "virtio";
  if (p.find("/mmc") != std::string::npos) return "SD/MMC";
  if (p.find("/ata") != std::string::npos) return "SATA";
  if (p.find("/virtual/block/loop") != std::string::npos) return "loop";
  if (p.find("/virtual/block/zram") != std::string::npos) return "zram";
  if (p.find("/virtual/") != std::string::npos) return "virtual";
  return "";
}

}  // namespace

Finding probe_device(const HostView& v) {
  Finding f;
  StoreSpot spot = store_spot(v);
  std::string dir = device_dir(v, spot.existing);
  if (dir.empty()) {
    const MountEntry* m = mount_of(v, spot.existing);
    f.found = "no block device under the store" +
              (m ? " (" + m->fstype + " from " + m->source + ")" : std::string());
    return f;
  }
  Device d = walk(v, dir);
  if (!d.loop_file.empty()) {
    // A loop device: the drive that matters is the backing file's.
    f.found = base(d.disk) + " is a loop device backed by " + d.loop_file;
    std::string backing = device_dir(v, d.loop_file);
    if (backing.empty()) return f;
    d = walk(v, backing);
    f.found += ", on ";
  }
  const std::string& disk = d.disk;
  bool removable = trim(v.read(disk + "/removable").value_or("")) == "1";
  bool rotational = trim(v.read(disk + "/queue/rotational").value_or("")) == "1";
  std::string model = trim(v.read(disk + "/device/model").value_or(""));
  std::string kind = transport(d);
  f.found += (d.via.empty() ? d.name + (disk != dir && base(disk) != d.name ? " of " + base(disk)
                                                                            : std::string())
                            : d.via) +
             ": " + (kind.empty() ? std::string() : kind + " ") + "disk" +
             (model.empty() ? "" : " " + model) + (removable ? ", removable" : ", not removable") +
             (kind == "USB" || kind == "virtio" ? ""
              : rotational                      ? ", rotating"
                                                : ", solid-state");
  if (d.usb.empty()) {
    if (kind == "SD/MMC")
      f.found += " (SD/MMC cards are slow at small random writes; --storage-bench measures it)";
    return f;
  }
  std::string speed = trim(v.read(d.usb + "/speed").value_or(""));
  std::string version = trim(v.read(d.usb + "/version").value_or(""));
  std::string product = trim(v.read(d.usb + "/manufacturer").value_or(""));
  std::string name = trim(v.read(d.usb + "/product").value_or(""));
  if (!name.empty()) product += (product.empty() ? "" : " ") + name;
  double mbps = std::strtod(speed.c_str(), nullptr);
  const char* generation = mbps >= 20000   ? "USB 3.2 Gen 2x2"
                           : mbps >= 10000 ? "USB 3.2 Gen 2"
                           : mbps >= 5000  ? "USB 3"
                           : mbps >= 480   ? "USB 2"
                                           : "USB 1";
  f.found += "; " + std::string(generation) + " link (" + speed + " Mbit/s)" +
             (product.empty() ? "" : " to " + product) +
             (version.empty() ? "" : ", a USB " + version + " device");
  if (mbps >= 5000) return f;
  f.status = Status::kDegraded;
  f.why = std::string("a ") + generation +
          " link moves at most about 40 MB/s, with high latency: every package install, "
          "build and fsync in an env waits for it";
  f.fix = version.starts_with("2.") || version.starts_with("1.")
              ? "use a USB 3 drive (this one is USB " + version + ")"
              : "plug the drive into a USB 3 port (often blue, or marked SS) with a USB 3 cable";
  return f;
}

}  // namespace togo::doctor
