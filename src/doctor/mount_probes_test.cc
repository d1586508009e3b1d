// overlayfs, fuse-overlayfs and idmapped mounts, with scripted outcomes.
#include <cerrno>

#include "doctor/doctor_test_util.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

using testing::Fixture;
using testing::has;

TEST(DoctorOverlayProbe, TriedInTheStoresTmpWhenTheStoreExists) {
  Fixture fx;
  fx.dir("store/tmp");
  fx.mounts();
  HostView v = fx.view(1000);
  std::string tried;
  v.live.overlay = [&](const std::string& dir) -> Result<void> {
    tried = dir;
    return {};
  };
  Finding f = probe_overlay(v);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(tried, fx.path("store/tmp"));
  EXPECT_EQ(f.found, "overlayfs mounts in a user namespace on the store's filesystem (ext4, " +
                         fx.path("store/tmp") + ")");
}

TEST(DoctorOverlayProbe, BeforeTheStoreExistsItsParentIsUsed) {
  Fixture fx;
  HostView v = fx.view(0);
  std::string tried;
  v.live.overlay = [&](const std::string& dir) -> Result<void> {
    tried = dir;
    return {};
  };
  EXPECT_EQ(probe_overlay(v).status, Status::kOk);
  EXPECT_EQ(tried, fx.root());
}

TEST(DoctorOverlayProbe, RefusedIsDegradedToACopy) {
  Fixture fx;
  HostView v = fx.view(1000);
  v.live.overlay = [](const std::string&) -> Result<void> {
    return sys_error(EINVAL, "mounting overlayfs in a user namespace");
  };
  Finding f = probe_overlay(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(f.found.starts_with("mounting overlayfs in a user namespace: Invalid argument"))
      << f.found;
  EXPECT_TRUE(has(f.why, "--rootfs copy")) << f.why;
  EXPECT_TRUE(has(f.fix, "5.11")) << f.fix;
}

TEST(DoctorOverlayProbe, NothingWritableMeansNotTried) {
  Fixture fx;
  fx.file("plainfile", "", 0644);
  HostView v = fx.view(0);
  v.store = fx.path("plainfile/store");
  bool tried = false;
  v.live.overlay = [&](const std::string&) -> Result<void> {
    tried = true;
    return {};
  };
  Finding f = probe_overlay(v);
  EXPECT_FALSE(tried);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(f.found.starts_with("not tried")) << f.found;
}

TEST(DoctorFuseProbe, EachOutcome) {
  Fixture fx;
  HostView v = fx.view(1000);
  Finding f = probe_fuse(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_EQ(f.found, "fuse-overlayfs is not installed; /dev/fuse opens");

  fx.program("fuse-overlayfs");
  f = probe_fuse(v);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found,
            "fuse-overlayfs at " + fx.path("usr/bin/fuse-overlayfs") + "; /dev/fuse opens");

  v.live.open_rw = [](const std::string&) { return EACCES; };
  f = probe_fuse(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "/dev/fuse: Permission denied")) << f.found;
  EXPECT_TRUE(has(f.fix, "chmod 0666 /dev/fuse")) << f.fix;

  v.live.open_rw = [](const std::string&) { return ENOENT; };
  EXPECT_EQ(probe_fuse(v).fix, "sudo modprobe fuse");
}

TEST(DoctorIdmappedProbe, EachOutcome) {
  Fixture fx;
  HostView v = fx.view(0);
  Finding f = probe_idmapped(v);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found, "an idmapped mount of the store's filesystem (ext4) works");

  v.live.idmapped_mount = [](const std::string&) {
    return Outcome{"mount_setattr MOUNT_ATTR_IDMAP", EINVAL};
  };
  f = probe_idmapped(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "cannot be idmapped")) << f.found;

  v.uid = 1000;
  v.live.idmapped_mount = [](const std::string&) {
    return Outcome{"mount_setattr MOUNT_ATTR_IDMAP", EPERM};
  };
  f = probe_idmapped(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(f.found.starts_with("only root may idmap")) << f.found;

  v.live.idmapped_mount = [](const std::string&) { return Outcome{"open_tree", ENOSYS}; };
  f = probe_idmapped(v);
  EXPECT_EQ(f.status, Status::kMissing);
  EXPECT_TRUE(has(f.found, "5.12")) << f.found;
}

}  // namespace
}  // namespace togo::doctor
