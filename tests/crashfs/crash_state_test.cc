// The replay library on made-up logs: the record format, the persistence
// model, the crash states, replay planning, and materializing on disk.
#include "crash_state.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstdio>

#include "crash_test_util.h"

namespace togo::crashfs {
namespace {

using test::read_file;
using test::ScratchDir;
using test::write_file;

// Builds a log's text: a root (id 1), initial entries, then operations.
class LogBuilder {
 public:
  LogBuilder() { text_ = format_op({.kind = OpKind::kRoot, .id = 1, .mode = S_IFDIR | 0755}); }
  LogBuilder& entry(uint64_t dir, const std::string& name, uint64_t id, mode_t mode) {
    text_ += format_op({.kind = OpKind::kEntry, .id = id, .dir = dir, .name = name, .mode = mode});
    return *this;
  }
  LogBuilder& op(Op o) {
    text_ += format_op(o);
    return *this;
  }
  LogBuilder& create(uint64_t dir, const std::string& name, uint64_t id) {
    return op({.kind = OpKind::kCreate,
               .id = id,
               .dir = dir,
               .name = name,
               .mode = S_IFREG | 0644,
               .path = name});
  }
  LogBuilder& write(uint64_t id, uint64_t off, const std::string& bytes) {
    op({.kind = OpKind::kWrite,
        .id = id,
        .offset = off,
        .length = bytes.size(),
        .data = data_.size()});
    data_ += bytes;
    return *this;
  }
  LogBuilder& fsync(uint64_t id, bool data_only = false) {
    return op({.kind = OpKind::kFsync, .id = id, .flags = data_only ? 1u : 0u});
  }
  LogBuilder& fsyncdir(uint64_t id) { return op({.kind = OpKind::kFsyncdir, .id = id}); }
  LogBuilder& rename(uint64_t dir, const std::string& name, uint64_t new_dir,
                     const std::string& new_name, uint64_t id, uint64_t other = 0) {
    return op({.kind = OpKind::kRename,
               .id = id,
               .dir = dir,
               .name = name,
               .new_dir = new_dir,
               .new_name = new_name,
               .other = other});
  }
  LogBuilder& mark(const std::string& label) { return op({.kind = OpKind::kMark, .value = label}); }

  /// The parsed log; its written bytes go to `data_path` if given.
  Log build(const std::string& data_path = "") {
    if (!data_path.empty()) {
      EXPECT_TRUE(write_file(data_path, data_));
    }
    auto log = parse_log(text_, data_path);
    EXPECT_TRUE(log) << log.error().message;
    return log ? *log : Log{};
  }

 private:
  std::string text_, data_;
};

std::vector<size_t> kept(const Log& log, size_t cut, ModelOptions o = {}) {
  std::vector<bool> p = persisted(log, cut, o);
  std::vector<size_t> out;
  for (size_t i = 0; i < p.size(); i++)
    if (p[i]) out.push_back(i);
  return out;
}

using V = std::vector<size_t>;

TEST(CrashLogFormat, RoundTripsEveryField) {
  Op op{.kind = OpKind::kRename,
        .id = 7,
        .dir = 2,
        .name = "a b\n%c",
        .new_dir = 3,
        .new_name = "\xff",
        .other = 9,
        .whiteout = 11,
        .flags = 4,
        .mode = 0100755,
        .uid = 1000,
        .gid = 1001,
        .rdev = 5,
        .set = 63,
        .size = 1 << 20,
        .atime_sec = -1,
        .atime_nsec = 2,
        .mtime_sec = 3,
        .mtime_nsec = 999999999,
        .offset = 10,
        .length = 20,
        .data = 30,
        .target = "user.x",
        .value = std::string("\0v=1 ", 5),
        .path = "d/a b",
        .ino = 42};
  std::string line = format_op(op);
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  auto back = parse_op(line);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(format_op(*back), line);
  EXPECT_EQ(back->name, op.name);
  EXPECT_EQ(back->value, op.value);
  EXPECT_EQ(back->mode, op.mode);
  EXPECT_EQ(back->atime_sec, -1);
}

TEST(CrashLogFormat, RejectsNamesThatAreNotOneComponent) {
  for (const char* bad :
       {"create id=2 dir=1 name=..", "create id=2 dir=1 name=a%2Fb", "create id=2 dir=1",
        "create id=2 dir=1 name=%2E", "unlink dir=1 name=x",
        "rename id=2 dir=1 name=a new_dir=1 new_name=.", "write id=2 off=1 nope=3",
        "frobnicate id=1", "write id=2 off=%zz", "create id=2 dir=1 name=a%0"})
    EXPECT_FALSE(parse_op(bad)) << bad;
  EXPECT_TRUE(parse_op("create id=2 dir=1 name=.x"));
  EXPECT_FALSE(parse_log("write id=2\n", "")) << "a log needs its root record";
}

TEST(CrashModel, WriteSurvivesOnlyAnFsyncOfItsFile) {
  Log log = LogBuilder()
                .entry(1, "f", 2, S_IFREG | 0644)
                .entry(1, "g", 3, S_IFREG | 0644)
                .write(2, 0, "a")
                .fsync(2)
                .write(2, 1, "b")
                .fsync(3)
                .write(3, 0, "c")
                .build();
  EXPECT_EQ(kept(log, 5), V({0}));
  EXPECT_EQ(kept(log, 1), V({}));
  EXPECT_EQ(kept(log, 4), V({0}));
}

TEST(CrashModel, FdatasyncKeepsDataButNotAttributes) {
  Log log = LogBuilder()
                .entry(1, "f", 2, S_IFREG | 0644)
                .write(2, 0, "abc")
                .op({.kind = OpKind::kSetattr, .id = 2, .mode = 0100600, .set = kSetMode})
                .op({.kind = OpKind::kSetattr, .id = 2, .set = kSetSize, .size = 1})
                .fsync(2, true)
                .build();
  EXPECT_EQ(kept(log, 4), V({0, 2}));
}

TEST(CrashModel, NamesNeedTheirDirectorysFsync) {
  Log log = LogBuilder().create(1, "a", 2).fsync(2).fsyncdir(1).build();
  EXPECT_EQ(kept(log, 2), V({})) << "strict POSIX: fsync of the file does not keep its name";
  EXPECT_EQ(kept(log, 2, {.fsync_persists_entry = true}), V({0}));
  EXPECT_EQ(kept(log, 3), V({0}));
}

TEST(CrashModel, RenameNeedsBothDirectories) {
  Log log = LogBuilder()
                .entry(1, "d1", 2, S_IFDIR | 0755)
                .entry(1, "d2", 3, S_IFDIR | 0755)
                .entry(2, "x", 4, S_IFREG | 0644)
                .rename(2, "x", 3, "x", 4)
                .fsyncdir(3)
                .fsyncdir(2)
                .build();
  EXPECT_EQ(kept(log, 2), V({}));
  EXPECT_EQ(kept(log, 3), V({0}));
}

TEST(CrashModel, SyncfsKeepsEverythingBeforeIt) {
  Log log = LogBuilder()
                .create(1, "a", 2)
                .write(2, 0, "x")
                .op({.kind = OpKind::kSyncfs})
                .write(2, 1, "y")
                .op({.kind = OpKind::kSync})
                .write(2, 2, "z")
                .build();
  EXPECT_EQ(kept(log, 3), V({0, 1}));
  EXPECT_EQ(kept(log, 6), V({0, 1, 3}));
}

TEST(CrashPlan, DropsWhatDependsOnALostOperation) {
  // The classic: the file is fsynced, but its name never was.
  Log log = LogBuilder()
                .create(1, "tmp", 2)
                .write(2, 0, "new")
                .fsync(2)
                .rename(1, "tmp", 1, "f", 2)
                .build();
  auto states = crash_states(log, 4, Mode::kDropUnsynced);
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].applied, V({1}));
  ReplayPlan plan = plan_replay(log, states[0]);
  EXPECT_TRUE(plan.steps.empty());
  ASSERT_EQ(plan.dropped.size(), 1u);
  EXPECT_NE(plan.dropped[0].find("not there"), std::string::npos) << plan.dropped[0];

  plan = plan_replay(log, CrashState{.cut = 4, .applied = {3}});
  EXPECT_TRUE(plan.steps.empty()) << "a rename of a name that was never made";
}

TEST(CrashPlan, KeepsDirectoriesWholeAndPathsCurrent) {
  Log log = LogBuilder()
                .entry(1, "d", 2, S_IFDIR | 0755)
                .entry(2, "f", 3, S_IFREG | 0644)
                .op({.kind = OpKind::kUnlink, .id = 3, .dir = 2, .name = "f"})
                .op({.kind = OpKind::kRmdir, .id = 2, .dir = 1, .name = "d"})
                .build();
  EXPECT_EQ(plan_replay(log, CrashState{.applied = {1}}).steps.size(), 0u)
      << "rmdir of a directory that still holds a name";
  EXPECT_EQ(plan_replay(log, CrashState{.applied = {0, 1}}).steps.size(), 2u);

  Log moved = LogBuilder()
                  .entry(1, "d", 2, S_IFDIR | 0755)
                  .entry(2, "f", 3, S_IFREG | 0644)
                  .rename(1, "d", 1, "e", 2)
                  .write(3, 0, "x")
                  .build();
  ReplayPlan plan = plan_replay(moved, CrashState{.applied = {0, 1}});
  ASSERT_EQ(plan.steps.size(), 2u);
  EXPECT_EQ(plan.steps[1].dir, std::vector<std::string>({"e"}));
  EXPECT_EQ(plan.steps[1].name, "f");
}

TEST(CrashStates, TornWriteKeepsHalfAndASector) {
  Log log = LogBuilder()
                .entry(1, "f", 2, S_IFREG | 0644)
                .write(2, 0, std::string(4096, 'x'))
                .write(2, 0, std::string(100, 'y'))
                .build();
  auto torn = crash_states(log, 1, Mode::kTornLastWrite);
  ASSERT_EQ(torn.size(), 2u);
  EXPECT_EQ(torn[0].torn_keep, 512u);
  EXPECT_EQ(torn[1].torn_keep, 2048u);
  EXPECT_EQ(torn[0].torn_op, std::optional<size_t>(0));
  torn = crash_states(log, 2, Mode::kTornLastWrite);
  ASSERT_EQ(torn.size(), 1u);
  EXPECT_EQ(torn[0].torn_keep, 50u);
  EXPECT_TRUE(crash_states(log, 0, Mode::kTornLastWrite).empty());
}

TEST(CrashStates, ReorderKeepsNamesWithoutDataAndStaysBounded) {
  Log log = LogBuilder().create(1, "tmp", 2).write(2, 0, "new").rename(1, "tmp", 1, "f", 2).build();
  auto states = crash_states(log, 3, Mode::kReorder);
  auto has = [&](const V& applied) {
    return std::any_of(states.begin(), states.end(),
                       [&](const CrashState& s) { return s.applied == applied; });
  };
  EXPECT_TRUE(has({0, 2})) << "names without data: the empty-file bug";
  EXPECT_TRUE(has({2})) << "only the rename";
  EXPECT_TRUE(has({0, 1})) << "all but the rename";

  LogBuilder many;
  for (int i = 0; i < 100; i++) many.create(1, "f" + std::to_string(i), 2 + i);
  Log long_log = many.build();
  for (size_t cap : {1, 2, 3, 6}) {
    size_t n = crash_states(long_log, 100, Mode::kReorder, {.max_reorder_states = cap}).size();
    EXPECT_LE(n, cap);
    EXPECT_GT(n, 0u) << "100 lost creates, and no reordered state at cap " << cap;
  }
}

TEST(CrashStates, EachDistinctStateKeepsItsLatestCut) {
  Log log = LogBuilder()
                .entry(1, "f", 2, S_IFREG | 0644)
                .write(2, 0, "a")
                .mark("acked")
                .write(2, 1, "b")
                .fsync(2)
                .build();
  EXPECT_EQ(log.mark("acked"), std::optional<size_t>(1));
  const Mode drop[] = {Mode::kDropUnsynced};
  auto states = all_crash_states(log, drop);
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].cut, 2u) << "the empty state is claimed at its latest cut";
  EXPECT_EQ(states[1].cut, 3u);
  EXPECT_EQ(states[1].applied, V({0, 1}));
}

TEST(CutPoints, SamplingKeepsBarriersAndEnds) {
  LogBuilder b;
  b.entry(1, "f", 2, S_IFREG | 0644);
  for (int i = 0; i < 200; i++) {
    b.write(2, static_cast<uint64_t>(i), "x");
    if (i % 20 == 19) b.fsync(2);
  }
  Log log = b.build();
  EXPECT_EQ(cut_points(log).size(), log.ops.size() + 1);
  auto cuts = cut_points(log, 30);
  EXPECT_EQ(cuts.size(), 30u);
  EXPECT_EQ(cuts.front(), 0u);
  EXPECT_EQ(cuts.back(), log.ops.size());
  for (size_t i = 0; i < log.ops.size(); i++) {
    if (!is_barrier(log.ops[i].kind)) continue;
    EXPECT_TRUE(std::binary_search(cuts.begin(), cuts.end(), i)) << i;
    EXPECT_TRUE(std::binary_search(cuts.begin(), cuts.end(), i + 1)) << i;
  }
  EXPECT_LE(cut_points(log, 5).size(), 5u);
}

TEST(CutPoints, MarksSurviveSamplingAmongManyBarriers) {
  LogBuilder b;
  b.entry(1, "f", 2, S_IFREG | 0644);
  for (int i = 0; i < 200; i++) {
    b.write(2, static_cast<uint64_t>(i), "x");
    b.fsync(2);
  }
  Log log = b.build();
  log.marks.push_back({"acked", 123});
  auto cuts = cut_points(log, 10);
  EXPECT_LE(cuts.size(), 10u);
  EXPECT_TRUE(std::binary_search(cuts.begin(), cuts.end(), size_t{123}));
  EXPECT_EQ(cuts.front(), 0u);
  EXPECT_EQ(cuts.back(), log.ops.size());
}

class MaterializeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "materializing sets owners: needs root";
    ASSERT_EQ(::mkdir(dir_.sub("start").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(dir_.sub("start/d").c_str(), 0755), 0);
    ASSERT_TRUE(write_file(dir_.sub("start/old"), "v1"));
  }
  std::string start() const { return dir_.sub("start"); }
  std::string dest(const std::string& name) const { return dir_.sub(name); }
  ScratchDir dir_;
};

TEST_F(MaterializeTest, ReplaysAStateOnACopyOfTheStart) {
  Log log = LogBuilder()
                .entry(1, "d", 2, S_IFDIR | 0755)
                .entry(1, "old", 3, S_IFREG | 0644)
                .op({.kind = OpKind::kCreate,
                     .id = 4,
                     .dir = 1,
                     .name = "new",
                     .mode = S_IFREG | 0640,
                     .uid = 1234,
                     .gid = 99})
                .write(4, 0, "hello world")
                .fsync(4)
                .fsyncdir(1)
                .op({.kind = OpKind::kSetattr, .id = 3, .set = kSetSize, .size = 0})
                .rename(1, "new", 2, "moved", 4)
                .fsyncdir(1)
                .build(dir_.sub("log.data"));
  auto m = materialize(start(), log, 7, Mode::kDropUnsynced, dest("drop"));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(read_file(dest("drop/new")), std::optional<std::string>("hello world"));
  EXPECT_EQ(read_file(dest("drop/old")), std::optional<std::string>("v1"));
  EXPECT_FALSE(read_file(dest("drop/d/moved"))) << "the rename needs d's fsync too";
  struct stat st;
  ASSERT_EQ(::lstat(dest("drop/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 0640u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 99u);

  m = materialize(start(), log, 7, Mode::kAllApplied, dest("all"));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(read_file(dest("all/d/moved")), std::optional<std::string>("hello world"));
  EXPECT_FALSE(read_file(dest("all/new")));
  EXPECT_EQ(read_file(dest("all/old")), std::optional<std::string>(""));

  auto torn = crash_states(log, 2, Mode::kTornLastWrite);
  ASSERT_FALSE(torn.empty());
  m = materialize(start(), log, CrashState{.cut = 2, .applied = {0}, .torn_op = 1, .torn_keep = 5},
                  dest("torn"));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(read_file(dest("torn/new")), std::optional<std::string>("hello"));
  EXPECT_EQ(read_file(start() + "/old"), std::optional<std::string>("v1"))
      << "the start is untouched";
}

// A reordered state can keep a removal or a replacement whose set was lost:
// the attribute ends absent, or set, as the call left it.
TEST_F(MaterializeTest, AnXattrCallWhoseEarlierSetWasLostLeavesItsResult) {
  Log log = LogBuilder()
                .entry(1, "old", 3, S_IFREG | 0644)
                .op({.kind = OpKind::kSetxattr, .id = 3, .target = "user.a", .value = "1"})
                .op({.kind = OpKind::kRemovexattr, .id = 3, .target = "user.a"})
                .op({.kind = OpKind::kSetxattr, .id = 3, .flags = XATTR_REPLACE, .target = "user.b",
                     .value = "2"})
                .build(dir_.sub("log.data"));
  auto m = materialize(start(), log, CrashState{.cut = 3, .applied = {1, 2}}, dest("r"));
  ASSERT_TRUE(m) << m.error().message;
  char v[8];
  EXPECT_LT(::getxattr(dest("r/old").c_str(), "user.a", v, sizeof v), 0);
  ASSERT_EQ(::getxattr(dest("r/old").c_str(), "user.b", v, sizeof v), 1);
  EXPECT_EQ(v[0], '2');
}

TEST_F(MaterializeTest, NeverWritesOutsideTheDestination) {
  // The log says "d" is a directory; the tree has a symlink there instead,
  // pointing out of the destination. Replay must fail, not follow it.
  ScratchDir outside;
  ASSERT_EQ(::rmdir(dir_.sub("start/d").c_str()), 0);
  ASSERT_EQ(::symlink(outside.path().c_str(), dir_.sub("start/d").c_str()), 0);
  Log log = LogBuilder()
                .entry(1, "d", 2, S_IFDIR | 0755)
                .create(2, "x", 3)
                .write(3, 0, "owned")
                .build(dir_.sub("log.data"));
  auto m = materialize(start(), log, 2, Mode::kAllApplied, dest("out"));
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("opening d: Too many levels of symbolic links"),
            std::string::npos)
      << m.error().message;
  EXPECT_FALSE(read_file(outside.sub("x")));
}

TEST_F(MaterializeTest, SnapshotCopiesEverythingAFileCarries) {
  std::string s = start();
  ASSERT_TRUE(write_file(s + "/suid", "#!/bin/sh\n"));
  ASSERT_EQ(::chown((s + "/suid").c_str(), 1000, 1001), 0);
  ASSERT_EQ(::chmod((s + "/suid").c_str(), 04755), 0);
  ASSERT_EQ(::setxattr((s + "/suid").c_str(), "user.a", "1", 1, 0), 0);
  ASSERT_EQ(::setxattr((s + "/suid").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  ASSERT_EQ(::link((s + "/old").c_str(), (s + "/d/hard").c_str()), 0);
  ASSERT_EQ(::symlink("../old", (s + "/d/sym").c_str()), 0);
  ASSERT_EQ(::lchown((s + "/d/sym").c_str(), 7, 8), 0);
  ASSERT_EQ(::mkfifo((s + "/fifo").c_str(), 0600), 0);
  ASSERT_EQ(::mknod((s + "/whiteout").c_str(), S_IFCHR | 0000, makedev(0, 0)), 0);
  int fd = ::open((s + "/sparse").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "end", 3, 8 << 20), 3);
  ::close(fd);
  ASSERT_EQ(::mkdir((s + "/ro").c_str(), 0755), 0);
  ASSERT_TRUE(write_file(s + "/ro/inside", "x"));
  ASSERT_EQ(::chmod((s + "/ro").c_str(), 0500), 0);
  struct timespec times[2] = {{1000, 5}, {2000, 7}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (s + "/suid").c_str(), times, 0), 0);

  auto r = snapshot(s, dest("copy"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(test::list_tree(s, {.times = true}), test::list_tree(dest("copy"), {.times = true}));
  struct stat st;
  ASSERT_EQ(::stat(dest("copy/sparse").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks, 1024) << "holes stay holes";
  EXPECT_FALSE(snapshot(s, dest("copy"))) << "the destination must be empty";
}

}  // namespace
}  // namespace togo::crashfs
