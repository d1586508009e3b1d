// A store's drive that stops answering while an env runs (a pulled USB
// stick): the env is stopped, `togo run` says which drive, nothing hangs,
// and with the drive back everything acknowledged before is there.
#include <sys/mount.h>
#include <unistd.h>

#include "fixture.h"

namespace togo::test {
namespace {

class DriveLossTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped()) return;
    if (!running_as_root()) GTEST_SKIP() << "attaching a loop device needs root";
    TOGO_REQUIRE_BUSYBOX();
    image_ = sub("drive.img");
    ASSERT_EQ(run({"truncate", "-s", "96M", image_}).status, 0);
    ASSERT_EQ(run({"mkfs.ext4", "-q", image_}).status, 0);
    mnt_ = sub("drive");
    ASSERT_EQ(run({"mkdir", mnt_}).status, 0);
    attach();
    st_ = mnt_ + "/store";
    ASSERT_EQ(run({"mkdir", st_}).status, 0);
    ASSERT_EQ(run({"chown", std::to_string(host_uid()) + ":" + std::to_string(host_uid()), st_}).status, 0);
  }
  void TearDown() override {
    if (!loop_.empty()) detach();
    TogoTest::TearDown();
  }
  void attach() {
    RunResult l = run({"losetup", "-f", "--show", image_});
    ASSERT_EQ(l.status, 0) << describe(l);
    loop_ = lines_of(l.out).at(0);
    RunResult m = run({"mount", loop_, mnt_});
    ASSERT_EQ(m.status, 0) << describe(m);
  }
  void detach() {
    ::umount2(mnt_.c_str(), MNT_DETACH);
    run({"losetup", "-d", loop_});
    loop_.clear();
  }
  // The drive goes away: every read past the first megabyte fails. The
  // loop device writes through to the image, so a write that lands between
  // the truncation and the device's new size (the env's sync, a journal
  // commit) grows the image back: again, until the device is 1 MiB.
  void pull() {
    std::string size = "/sys/block/" + loop_.substr(loop_.rfind('/') + 1) + "/size";
    for (int i = 0; i < 50; i++) {
      ASSERT_EQ(run({"truncate", "-s", "1M", image_}).status, 0);
      ASSERT_EQ(run({"losetup", "-c", loop_}).status, 0);
      if (read_file(size).value_or("") == "2048\n") return;
    }
    FAIL() << "the loop device keeps growing back";
  }
  RunResult t(const std::vector<std::string>& args, int timeout_s = 60) {
    RunOptions o = opts({}, timeout_s);
    return togo(st_, args, o);
  }
  std::string image_, mnt_, st_, loop_;
};
TOGO_AS_ROOT_AND_ROOTLESS(DriveLossTest);

TEST_P(DriveLossTest, ARunningEnvStopsAndSaysWhichDrive) {
  ASSERT_EQ(t({"image", "import", test_rootfs_tar(), "--name", "test"}).status, 0);
  ASSERT_EQ(t({"create", "dev", "--image", "test"}).status, 0);
  RunResult w = t({"run", "dev", "--", "/bin/sh", "-c", "echo kept > /root/f"});
  ASSERT_EQ(w.status, 0) << describe(w);
  // The drive as it is now, to plug back in later (its writes were synced
  // when run returned).
  ASSERT_EQ(run({"cp", image_, image_ + ".saved"}).status, 0);

  std::vector<std::string> argv = {togo_bin(), "--store", st_, "run", "dev", "--", "/bin/sleep", "60"};
  Background sleeper(argv, as_uid());
  ASSERT_TRUE(eventually([&] { return contains(t({"ls"}).out, " running "); }, 10));
  ASSERT_NO_FATAL_FAILURE(pull());
  auto status = sleeper.wait(15);
  ASSERT_TRUE(status.has_value()) << "togo run must not hang on a dead drive";
  EXPECT_EQ(*status, 137);
  EXPECT_TRUE(contains(sleeper.err(), "togo: dev: stopped: the drive holding the store (" + loop_ +
                                          " at " + mnt_ + ") returns I/O errors"))
      << sleeper.err();
  // Other commands answer (from what is cached, or with an error), quickly.
  double start = now_s();
  RunResult ls = t({"ls"}, 10);
  EXPECT_LT(now_s() - start, 5) << describe(ls);
  EXPECT_TRUE(ls.status == 0 || one_line_error(ls)) << describe(ls);

  // The drive comes back.
  detach();
  ASSERT_EQ(run({"cp", image_ + ".saved", image_}).status, 0);
  attach();
  RunResult f = t({"fsck"});
  EXPECT_EQ(f.status, 0) << describe(f);
  EXPECT_TRUE(contains(f.out, ": clean")) << f.out;
  RunResult r = t({"run", "dev", "--", "/bin/cat", "/root/f"});
  EXPECT_EQ(r.out, "kept\n") << describe(r);
}

// The command writes, the drive goes, and the command ends well before init
// would notice (it looks every 2 s): its write can no longer reach the
// drive, so the run must not report success. (An env init stopped would
// end in 137 and "stopped": that is not this path.)
TEST_P(DriveLossTest, ARunWhoseWritesCannotBeSyncedFails) {
  ASSERT_EQ(t({"image", "import", test_rootfs_tar(), "--name", "test"}).status, 0);
  ASSERT_EQ(t({"create", "dev", "--image", "test"}).status, 0);
  ASSERT_EQ(t({"run", "dev", "--", "/bin/true"}).status, 0);

  // After a pause, so that the start's own sync is over before it writes.
  std::vector<std::string> argv = {togo_bin(), "--store", st_, "run", "dev", "--", "/bin/sh",
                                   "-c", "sleep 0.3; echo lost > /root/g; sleep 1"};
  Background writer(argv, as_uid());
  ASSERT_TRUE(eventually(
      [&] { return run({"sh", "-c", "test -e " + st_ + "/envs/*/upper/root/g"}).status == 0; }, 10));
  ASSERT_NO_FATAL_FAILURE(pull());
  auto status = writer.wait(15);
  ASSERT_TRUE(status.has_value()) << "togo run must not hang on a dead drive";
  EXPECT_EQ(*status, 125) << writer.err();
  EXPECT_TRUE(contains(writer.err(),
                       "togo: dev: the command ended, but what it wrote did not reach the drive: "
                       "the drive holding the store (" + loop_ + " at " + mnt_ +
                           ") returns I/O errors"))
      << writer.err();
}

}  // namespace
}  // namespace togo::test
