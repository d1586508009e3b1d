// `togo fsck`: bit rot in blobs, unpacked layers and the catalog is found,
// every time, and named; --repair rebuilds what can be rebuilt; a store on a
// read-only, full or foreign drive gets a clear message and is left as it was.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <random>
#include <utility>

#include "fixture.h"

namespace togo::test {
namespace {

class FsckTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped()) return;
    TOGO_REQUIRE_BUSYBOX();
    ASSERT_NO_FATAL_FAILURE(make_env("dev"));
    ASSERT_EQ(sh("dev", "echo kept > /root/f").status, 0);
    layer_ = list_dir(store() + "/layers").at(0);
  }

  RunResult fsck(bool repair = false) {
    return repair ? tg({"fsck", "--repair"}) : tg({"fsck"});
  }

  // Flips one bit of `path` at `offset`, keeping its mode and times, as a
  // failing disk would.
  void flip(const std::string& path, long offset, int bit) {
    RunResult r = run({"python3", "-c",
                       "import os,sys\n"
                       "p,o,b=sys.argv[1],int(sys.argv[2]),int(sys.argv[3])\n"
                       "st=os.lstat(p); os.chmod(p, st.st_mode | 0o200)\n"
                       "with open(p,'r+b') as f:\n"
                       "  f.seek(o); c=f.read(1); f.seek(o); f.write(bytes([c[0]^(1<<b)]))\n"
                       "os.chmod(p, st.st_mode); os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))\n",
                       path, std::to_string(offset), std::to_string(bit)});
    ASSERT_EQ(r.status, 0) << describe(r);
  }

  long size_of(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : 0;
  }

  // Regular files of the unpacked layer, relative to its root.
  std::vector<std::string> layer_files() {
    RunResult r = run({"find", ".", "-type", "f", "-size", "+0"}, [&] {
      RunOptions o;
      o.cwd = store() + "/layers/" + layer_ + "/root";
      return o;
    }());
    std::vector<std::string> out;
    for (auto& l : lines_of(r.out)) out.push_back(l.substr(1));
    return out;
  }

  // Damages one file of the layer and its blob, so that `fsck --repair`
  // cannot rebuild it and marks it. Returns the file and what it held.
  std::pair<std::string, std::optional<std::string>> damage_beyond_repair() {
    auto files = layer_files();
    std::string f = store() + "/layers/" + layer_ + "/root" + files.at(0);
    std::optional<std::string> before = read_file(f);
    flip(f, 0, 0);
    flip(store() + "/blobs/sha256/" + layer_, 10, 3);
    RunResult r = fsck(true);
    EXPECT_EQ(r.status, 6) << describe(r);
    EXPECT_TRUE(contains(r.out, "-> cannot be rebuilt: its blob is damaged too")) << r.out;
    return {f, before};
  }

  // Importing `source`, the image's content again, replaces the layer that
  // damage_beyond_repair() left: the file is back, the store whole, the
  // env's own files kept, and no image marked damaged.
  void expect_replaced_by_importing(const std::string& source, const std::string& f,
                                    const std::optional<std::string>& before) {
    RunResult reimport = tg({"image", "import", source, "--name", "test"});
    EXPECT_EQ(reimport.status, 0) << describe(reimport);
    EXPECT_EQ(read_file(f), before);
    RunResult healed = fsck();
    EXPECT_EQ(healed.status, 0) << describe(healed);
    EXPECT_TRUE(contains(healed.out, ": clean")) << healed.out;
    EXPECT_EQ(sh("dev", "cat /root/f").out, "kept\n");
    EXPECT_FALSE(contains(tg({"image", "ls"}).out, "damaged"));
  }

  std::string layer_;
};
TOGO_AS_ROOT_AND_ROOTLESS(FsckTest);

TEST_P(FsckTest, AWholeStoreIsClean) {
  RunResult r = fsck();
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "1 blobs, 1 layers, 1 environments: clean")) << r.out;
}

TEST_P(FsckTest, EveryFlippedBitIsFoundAndNamed) {
  // The same flips every run: a failure names its offset and can be replayed.
  std::mt19937 rng(1234);
  std::string blob = store() + "/blobs/sha256/" + layer_;
  std::string catalog = store() + "/catalog.db";
  auto files = layer_files();
  ASSERT_FALSE(files.empty());
  int tried = 0, found = 0;
  for (int i = 0; i < 36; i++) {
    std::string target, expect;
    switch (i % 3) {
      case 0: target = blob, expect = "blob sha256:" + layer_.substr(0, 12); break;
      case 1: {
        std::string f = files[rng() % files.size()];
        target = store() + "/layers/" + layer_ + "/root" + f;
        expect = "layer sha256:" + layer_.substr(0, 12) + ": its unpacked files are not what was unpacked: " + f;
        break;
      }
      default: target = catalog, expect = "catalog: 1 page(s) damaged"; break;
    }
    long offset = static_cast<long>(rng() % static_cast<unsigned long>(size_of(target)));
    int bit = static_cast<int>(rng() % 8);
    flip(target, offset, bit);
    tried++;
    RunResult r = fsck();
    bool named = r.status == 6 && contains(r.out, expect);
    found += named;
    EXPECT_TRUE(named) << "bit " << bit << " at " << offset << " of " << target << ": " << describe(r);
    flip(target, offset, bit);  // its own inverse: the store is whole again
  }
  RunResult whole = fsck();
  EXPECT_EQ(whole.status, 0) << "every flip undone: " << describe(whole);
  std::printf("bit rot: %d flips, %d found and named\n", tried, found);
}

TEST_P(FsckTest, RepairRebuildsALayerFromItsBlob) {
  auto files = layer_files();
  std::string f = store() + "/layers/" + layer_ + "/root" + files.at(0);
  std::optional<std::string> before = read_file(f);
  flip(f, 0, 0);
  RunResult r = fsck(true);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "-> rebuilt from its blob")) << r.out;
  EXPECT_EQ(read_file(f), before);
  RunResult again = fsck();
  EXPECT_EQ(again.status, 0) << describe(again);
  EXPECT_TRUE(contains(again.out, ": clean")) << again.out;
  EXPECT_EQ(sh("dev", "cat /root/f").out, "kept\n");
}

TEST_P(FsckTest, ADamagedBlobIsMarkedNotDropped) {
  flip(store() + "/blobs/sha256/" + layer_, 10, 3);
  RunResult r = fsck(true);
  EXPECT_EQ(r.status, 6) << describe(r);
  EXPECT_TRUE(contains(r.out, "-> marked damaged: pull or import image test again")) << r.out;
  EXPECT_TRUE(exists(store() + "/blobs/sha256/" + layer_)) << "kept for whoever can read it";
  // The env still runs from its unpacked layer, which is intact.
  EXPECT_EQ(sh("dev", "cat /root/f").out, "kept\n");
  RunResult again = fsck();
  EXPECT_EQ(again.status, 6) << describe(again);
  // What the hint says heals it: the same content, imported again.
  RunResult reimport = tg({"image", "import", test_rootfs_tar(), "--name", "test"});
  EXPECT_EQ(reimport.status, 0) << describe(reimport);
  RunResult healed = fsck();
  EXPECT_EQ(healed.status, 0) << describe(healed);
  EXPECT_TRUE(contains(healed.out, ": clean")) << healed.out;
  EXPECT_EQ(sh("dev", "cat /root/f").out, "kept\n");
}

// Blob and tree both damaged: nothing in the store can rebuild the layer,
// which is marked; importing its content again replaces both.
TEST_P(FsckTest, ALayerThatCannotBeRebuiltIsReplacedByImportingItAgain) {
  auto [f, before] = damage_beyond_repair();
  EXPECT_TRUE(contains(tg({"image", "ls"}).out, " damaged ")) << "image ls names it";
  EXPECT_TRUE(contains(images_json(), "\"damaged\":true"));
  RunResult refused = tg({"create", "dev2", "--image", "test"});
  EXPECT_TRUE(one_line_error(refused, "create dev2: image test: layer sha256:")) << describe(refused);
  EXPECT_TRUE(contains(refused.err, "is damaged (")) << refused.err;
  expect_replaced_by_importing(test_rootfs_tar(), f, before);
  RunResult created = tg({"create", "dev2", "--image", "test"});
  EXPECT_EQ(created.status, 0) << describe(created);
}

// The same from an OCI layout of the image: its layers are not taken for
// the damaged ones the store has.
TEST_P(FsckTest, ALayerThatCannotBeRebuiltIsReplacedByImportingItsLayoutAgain) {
  std::string layout = sub("test.oci.tar");
  RunResult exported = tg({"image", "export", "test", layout});
  ASSERT_EQ(exported.status, 0) << describe(exported);
  auto [f, before] = damage_beyond_repair();
  expect_replaced_by_importing(layout, f, before);
}

TEST_P(FsckTest, LeftoversAreReportedThenRemoved) {
  ASSERT_EQ(run({"mkdir", store() + "/tmp/stage-1-abc"}, opts()).status, 0);
  ASSERT_EQ(run({"mkdir", store() + "/envs/0123456789abcdef"}, opts()).status, 0);
  RunResult r = fsck();
  EXPECT_EQ(r.status, 0) << "leftovers are not damage: " << describe(r);
  EXPECT_TRUE(contains(r.out, "leftover  staging directory stage-1-abc: left by an interrupted command")) << r.out;
  EXPECT_TRUE(contains(r.out, "leftover  environment directory 0123456789abcdef: no environment has it")) << r.out;
  EXPECT_TRUE(exists(store() + "/tmp/stage-1-abc")) << "fsck without --repair changes nothing";
  RunResult fix = fsck(true);
  EXPECT_EQ(fix.status, 0) << describe(fix);
  EXPECT_FALSE(exists(store() + "/tmp/stage-1-abc"));
  EXPECT_FALSE(exists(store() + "/envs/0123456789abcdef"));
}

TEST_P(FsckTest, ACatalogThatCannotBeOpenedIsStillReported) {
  flip(store() + "/catalog.db", 30, 1);  // in the header page
  RunResult ls = tg({"image", "ls"});
  EXPECT_TRUE(one_line_error(ls, "page 1 of the catalog is damaged")) << describe(ls);
  RunResult r = fsck();
  EXPECT_EQ(r.status, 6) << describe(r);
  EXPECT_TRUE(contains(r.out, "damaged   catalog: 1 page(s) damaged (page 1)")) << r.out;
  EXPECT_TRUE(contains(r.out, "1 blobs")) << "blobs are checked by name: " << r.out;
}

TEST_P(FsckTest, TheLastChangeOfAKilledWriterIsRolledBack) {
  // A writer that died holding the lock leaves its name in the lock file.
  write_file(store() + "/lock", "pid 1: image import x\n");
  ASSERT_EQ(run({"mkdir", store() + "/tmp/stage-9-dead"}, opts()).status, 0);
  RunResult r = fsck();
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "the store was left mid-change (pid 1: image import x); recovered"))
      << r.err;
  EXPECT_TRUE(contains(r.out, ": clean")) << r.out;
  EXPECT_FALSE(exists(store() + "/tmp/stage-9-dead"));
  EXPECT_EQ(read_file(store() + "/lock"), std::optional<std::string>("")) << "released clean";
}

TEST_P(FsckTest, WritersAtOnceWaitForEachOtherAndSayForWhom) {
  // Several real writers at once: each finishes, and the store is whole.
  std::vector<std::unique_ptr<Background>> writers;
  for (const char* name : {"w1", "w2", "w3"})
    writers.push_back(std::make_unique<Background>(
        std::vector<std::string>{togo_bin(), "--store", store(), "image", "import",
                                 test_rootfs_tar(), "--name", name},
        as_uid()));
  writers.push_back(std::make_unique<Background>(
      std::vector<std::string>{togo_bin(), "--store", store(), "create", "w4", "--image", "test"},
      as_uid()));
  for (auto& w : writers) {
    auto status = w->wait(60);
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(*status, 0) << w->err();
  }
  RunResult ls = tg({"image", "ls"});
  for (const char* name : {"w1", "w2", "w3"}) EXPECT_TRUE(contains(ls.out, std::string("\n") + name + " ")) << ls.out;
  RunResult f = fsck();
  EXPECT_EQ(f.status, 0) << describe(f);
  EXPECT_TRUE(contains(f.out, ": clean")) << f.out;
  // A writer that finds the lock held says who holds it, then goes on.
  write_file(store() + "/lock", "pid 4242: image import elsewhere\n");
  auto holder = std::make_unique<Background>(
      std::vector<std::string>{"/usr/bin/flock", store() + "/lock", "/bin/sleep", "60"}, as_uid());
  ASSERT_TRUE(eventually([&] { return run({"flock", "-n", store() + "/lock", "true"}).status != 0; }));
  Background late({togo_bin(), "--store", store(), "image", "import", test_rootfs_tar(), "--name", "late"},
                  as_uid());
  // Released only once the writer is seen waiting in flock(2), however slow the machine.
  ASSERT_TRUE(eventually([&] {
    auto wchan = read_file("/proc/" + std::to_string(late.pid()) + "/wchan");
    return wchan && contains(*wchan, "lock");
  }, 30));
  // sleep holds the lock it inherited from flock: the whole group goes.
  ::kill(-holder->pid(), SIGKILL);
  holder.reset();
  auto status = late.wait(60);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << late.err();
  EXPECT_TRUE(contains(late.err(), "togo: waiting for the store lock (pid 4242: image import elsewhere)"))
      << late.err();
}

// Stores on drives that cannot take a change: a clear message, nothing changed.
class StoreDriveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!running_as_root()) GTEST_SKIP() << "mounting a small or read-only filesystem needs root";
    TOGO_REQUIRE_BUSYBOX();
  }
  TempDir dir_;
};

TEST_F(StoreDriveTest, AReadOnlyDriveIsSaidAndReadingStillWorks) {
  std::string mnt = dir_.sub("ro"), st = mnt + "/store";
  ASSERT_EQ(run({"mkdir", mnt}).status, 0);
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=32m"), 0);
  ASSERT_EQ(togo(st, {"image", "import", test_rootfs_tar(), "--name", "a"}).status, 0);
  ASSERT_EQ(::mount(nullptr, mnt.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0);
  auto before = snapshot(st);
  RunResult w = togo(st, {"image", "import", test_rootfs_tar(), "--name", "b"});
  EXPECT_EQ(w.status, 1);
  EXPECT_TRUE(one_line_error(w, "read-only (its filesystem is mounted read-only)")) << describe(w);
  RunResult r = togo(st, {"image", "ls"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "\na ")) << r.out;
  EXPECT_EQ(snapshot(st), before);
  ::umount2(mnt.c_str(), MNT_DETACH);
}

TEST_F(StoreDriveTest, AFullDriveFailsTheImportAndLeavesTheStoreAsItWas) {
  std::string mnt = dir_.sub("small"), st = mnt + "/store";
  ASSERT_EQ(run({"mkdir", mnt}).status, 0);
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=8m"), 0);
  ASSERT_EQ(togo(st, {"image", "import", test_rootfs_tar(), "--name", "a"}).status, 0);
  auto before = snapshot(st, {"lock", "catalog.db-wal", "catalog.db-shm"});
  // Bigger than what is left: random bytes do not compress.
  std::string big = dir_.sub("big.tar");
  make_tar(big, "import os\nfile('blob', os.urandom(10 << 20))\n");
  RunResult r = togo(st, {"image", "import", big, "--name", "big"});
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "No space left on device")) << r.err;
  EXPECT_TRUE(contains(r.err, "togo: hint: the drive is full")) << r.err;
  EXPECT_EQ(snapshot(st, {"lock", "catalog.db-wal", "catalog.db-shm"}), before);
  RunResult f = togo(st, {"fsck"});
  EXPECT_EQ(f.status, 0) << describe(f);
  ::umount2(mnt.c_str(), MNT_DETACH);
}

TEST_F(StoreDriveTest, AStoreOfAnotherUserIsNotChanged) {
  std::string st = dir_.sub("theirs");
  ASSERT_EQ(togo(st, {"image", "import", test_rootfs_tar(), "--name", "a"}).status, 0);
  auto before = snapshot(st);
  RunOptions o;
  o.as_uid = unprivileged_uid();
  RunResult r = togo(st, {"image", "import", test_rootfs_tar(), "--name", "b"}, o);
  EXPECT_TRUE(one_line_error(r, "no permission to change it (it belongs to uid 0)")) << describe(r);
  EXPECT_EQ(snapshot(st), before);
}

}  // namespace
}  // namespace togo::test
