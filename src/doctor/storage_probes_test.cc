// The store's filesystem, mount options, free space and block device, from
// fixture mount tables and sysfs trees.
#include "doctor/doctor_test_util.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

using testing::Fixture;
using testing::has;

/// The fixture's root as a mount of `fstype` from `source` with `options`.
void mount_root(Fixture& fx, const std::string& fstype, const std::string& source = "/dev/sdb1",
                const std::string& options = "rw,nosuid,nodev,relatime") {
  fx.mounts("40 21 8:17 / " + fx.root() + " " + options + " - " + fstype + " " + source + " rw\n");
}

TEST(DoctorFilesystemProbe, Ext4IsOk) {
  Fixture fx;
  mount_root(fx, "ext4");
  Finding f = probe_filesystem(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found,
            fx.path("store") + " (not created yet) on ext4 (/dev/sdb1 at " + fx.root() + ")");
  fx.dir("store");
  EXPECT_FALSE(has(probe_filesystem(fx.view()).found, "not created")) << "it exists now";
}

TEST(DoctorFilesystemProbe, FatAndFriendsAreMissingWithALoopImage) {
  for (const char* fs : {"vfat", "exfat", "ntfs3", "fuseblk"}) {
    Fixture fx;
    mount_root(fx, fs);
    Finding f = probe_filesystem(fx.view());
    EXPECT_EQ(f.status, Status::kMissing) << fs;
    EXPECT_TRUE(has(f.why, "no owners, permissions, symlinks or hardlinks")) << f.why;
    EXPECT_TRUE(has(f.fix, "mkfs.ext4 -q " + fx.root() + "/togo.img")) << f.fix;
    EXPECT_TRUE(has(f.fix, "mount -o loop")) << f.fix;
  }
}

TEST(DoctorFilesystemProbe, MemoryAndNetworkFilesystemsAreDegraded) {
  for (const char* fs : {"tmpfs", "nfs4", "cifs", "overlay"}) {
    Fixture fx;
    mount_root(fx, fs, "server:/export");
    EXPECT_EQ(probe_filesystem(fx.view()).status, Status::kDegraded) << fs;
  }
  Fixture fx;
  mount_root(fx, "squashfs");
  EXPECT_EQ(probe_filesystem(fx.view()).status, Status::kMissing);
}

TEST(DoctorFilesystemProbe, WithoutAMountTableTheMagicNamesIt) {
  Fixture fx;
  HostView v = fx.view();
  v.live.fs_stats = [](const std::string&) {
    FsStats s;
    s.magic = 0x4d44;  // MSDOS_SUPER_MAGIC
    return std::optional<FsStats>(s);
  };
  Finding f = probe_filesystem(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "on vfat")) << f.found;
}

TEST(DoctorMountProbe, ReadOnlyIsMissing) {
  Fixture fx;
  mount_root(fx, "ext4", "/dev/sdb1", "ro,relatime");
  Finding f = probe_mount(fx.view());
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_EQ(f.fix, "sudo mount -o remount,rw " + fx.root());
}

TEST(DoctorMountProbe, NoexecIsDegraded) {
  Fixture fx;
  mount_root(fx, "ext4", "/dev/sdb1", "rw,noexec");
  Finding f = probe_mount(fx.view());
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.why, "--rootfs copy")) << f.why;
  EXPECT_EQ(f.fix, "sudo mount -o remount,exec " + fx.root());
}

TEST(DoctorMountProbe, NosuidAndNodevAreNotes) {
  Fixture fx;
  mount_root(fx, "ext4");
  Finding f = probe_mount(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_TRUE(f.found.starts_with(fx.root() + " is mounted rw,nosuid,nodev,relatime; nosuid:"))
      << f.found;
}

TEST(DoctorMountProbe, NoMountTable) {
  Fixture fx;
  EXPECT_EQ(probe_mount(fx.view()).status, Status::kDegraded);
}

TEST(DoctorSpaceProbe, Thresholds) {
  Fixture fx;
  fx.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  HostView v = fx.view();
  Finding f = probe_space(v);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found, "16.0 GiB free of 64.0 GiB for root");
  for (auto [avail, status] : {std::pair<uint64_t, Status>{(1u << 30) / 4096, Status::kDegraded},
                               {(100u << 20) / 4096, Status::kMissing}}) {
    v.live.fs_stats = [avail](const std::string&) {
      FsStats s;
      s.block_size = 4096;
      s.blocks = 1u << 24;
      s.available = avail;
      return std::optional<FsStats>(s);
    };
    EXPECT_EQ(probe_space(v).status, status) << avail;
  }
  v.live.fs_stats = [](const std::string&) { return std::optional<FsStats>(); };
  EXPECT_EQ(probe_space(v).status, Status::kDegraded);
}

// A USB stick on sysfs: sdb1 of sdb, on USB device 2-1 under root hub usb2.
const std::string kUsbDev = "devices/pci0000:00/0000:00:14.0/usb2/2-1";
const std::string kDisk = kUsbDev + "/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb";

void usb_stick(Fixture& fx, const std::string& speed, const std::string& version) {
  fx.file("sys/" + kDisk + "/sdb1/partition", "1\n");
  fx.file("sys/" + kDisk + "/removable", "1\n");
  fx.file("sys/" + kDisk + "/queue/rotational", "1\n");
  fx.file("sys/" + kDisk + "/device/model", "Ultra Fit\n");
  fx.file("sys/" + kUsbDev + "/speed", speed + "\n");
  fx.file("sys/" + kUsbDev + "/idVendor", "0781\n");
  fx.file("sys/" + kUsbDev + "/manufacturer", "SanDisk\n");
  fx.file("sys/" + kUsbDev + "/product", "Ultra Fit\n");
  fx.file("sys/" + kUsbDev + "/version", " " + version + "\n");
  // The root hub: also a USB device, with its own speed; the nearest counts.
  fx.file("sys/devices/pci0000:00/0000:00:14.0/usb2/speed", "5000\n");
  fx.file("sys/devices/pci0000:00/0000:00:14.0/usb2/idVendor", "1d6b\n");
  fx.symlink("sys/dev/block/8:1", "../../" + kDisk + "/sdb1");
}

/// probe_device for a store on that stick, over a link of `speed` Mbit/s.
Finding probe_usb_stick(const std::string& speed, const std::string& version) {
  Fixture fx;
  mount_root(fx, "ext4");
  usb_stick(fx, speed, version);
  return probe_device(fx.view());
}

TEST(DoctorDeviceProbe, UsbTwoLinkIsDegraded) {
  Finding f = probe_usb_stick("480", "2.10");
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_EQ(f.found,
            "sdb1 of sdb: USB disk Ultra Fit, removable; USB 2 link (480 Mbit/s) to "
            "SanDisk Ultra Fit, a USB 2.10 device");
  EXPECT_EQ(f.fix, "use a USB 3 drive (this one is USB 2.10)");
}

TEST(DoctorDeviceProbe, UsbThreeDriveOnAUsbTwoPortSaysWhichPort) {
  Finding f = probe_usb_stick("480", "3.20");
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.fix, "USB 3 port")) << f.fix;
}

TEST(DoctorDeviceProbe, UsbThreeLinkIsOk) {
  Finding f = probe_usb_stick("5000", "3.20");
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_TRUE(has(f.found, "USB 3 link (5000 Mbit/s)")) << f.found;
}

TEST(DoctorDeviceProbe, InternalVirtioDisk) {
  Fixture fx;
  const std::string disk = "devices/pci0000:00/0000:00:02.0/virtio1/block/vda";
  fx.file("sys/" + disk + "/removable", "0\n");
  fx.file("sys/" + disk + "/queue/rotational", "1\n");
  fx.symlink("sys/dev/block/8:1", "../../" + disk);
  Finding f = probe_device(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found, "vda: virtio disk, not removable");
}

TEST(DoctorDeviceProbe, DeviceMapperIsFollowedToItsDisk) {
  Fixture fx;
  const std::string nvme = "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1";
  fx.file("sys/" + nvme + "/nvme0n1p3/partition", "3\n");
  fx.file("sys/" + nvme + "/removable", "0\n");
  fx.file("sys/" + nvme + "/queue/rotational", "0\n");
  fx.dir("sys/devices/virtual/block/dm-0/slaves");
  fx.symlink("sys/devices/virtual/block/dm-0/slaves/nvme0n1p3",
             "../../../../" + nvme.substr(std::string("devices/").size()) + "/nvme0n1p3");
  fx.symlink("sys/dev/block/8:1", "../../devices/virtual/block/dm-0");
  Finding f = probe_device(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found, "dm-0 on nvme0n1p3 of nvme0n1: NVMe disk, not removable, solid-state");
}

TEST(DoctorDeviceProbe, LoopDeviceIsFollowedToItsBackingFile) {
  Fixture fx;
  fx.file("sys/devices/virtual/block/loop0/loop/backing_file", "/media/stick/togo.img\n");
  fx.symlink("sys/dev/block/7:0", "../../devices/virtual/block/loop0");
  usb_stick(fx, "5000", "3.20");
  HostView v = fx.view();
  v.live.fs_stats = [](const std::string& path) {
    FsStats s;
    s.dev_major = path == "/media/stick/togo.img" ? 8 : 7;
    s.dev_minor = path == "/media/stick/togo.img" ? 1 : 0;
    return std::optional<FsStats>(s);
  };
  Finding f = probe_device(v);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_TRUE(
      f.found.starts_with("loop0 is a loop device backed by /media/stick/togo.img, on "
                          "sdb1 of sdb: USB disk"))
      << f.found;
}

TEST(DoctorDeviceProbe, NoBlockDevice) {
  Fixture fx;
  mount_root(fx, "tmpfs", "tmpfs");
  HostView v = fx.view();
  v.live.fs_stats = [](const std::string&) {
    FsStats s;
    s.dev_major = 0;
    s.dev_minor = 44;
    return std::optional<FsStats>(s);
  };
  Finding f = probe_device(v);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found, "no block device under the store (tmpfs from tmpfs)");
}

}  // namespace
}  // namespace togo::doctor
