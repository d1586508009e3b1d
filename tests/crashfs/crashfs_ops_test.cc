// Every kind of operation through togo-crashfs, replayed: the tree replay
// builds must be the tree the run left. And what the kernel does and does not
// forward to a FUSE server (O_TMPFILE, flock, syncfs, mmap), pinned down.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "crash_recorder.h"
#include "crash_test_util.h"

namespace togo::crashfs {
namespace {

using test::read_file;
using test::write_file;

class CrashFsOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TOGO_REQUIRE_CRASHFS();
    store_ = dir_.sub("store");
    ASSERT_EQ(::mkdir(store_.c_str(), 0755), 0);
  }
  std::string path(const std::string& rel) const { return store_ + "/" + rel; }
  const char* p(const std::string& rel) {
    last_ = path(rel);
    return last_.c_str();
  }

  test::ScratchDir dir_;
  std::string store_, last_;
};

TEST_F(CrashFsOpsTest, ReplayRebuildsTheTreeTheRunLeft) {
  ASSERT_TRUE(write_file(path("x"), "x"));
  ASSERT_TRUE(write_file(path("y"), "yy"));
  ASSERT_TRUE(write_file(path("keep"), "k"));
  ASSERT_EQ(::setxattr(p("keep"), "user.old", "1", 1, 0), 0);
  ASSERT_EQ(::mkdir(p("dir_old"), 0755), 0);
  ASSERT_TRUE(write_file(path("dir_old/inner"), "i"));
  ASSERT_TRUE(write_file(path("big"), std::string(100000, 'b')));
  auto rec = CrashRecorder::start(store_);
  ASSERT_TRUE(rec) << rec.error().message;

  ASSERT_EQ(::mkdir(p("d"), 0750), 0);
  ASSERT_EQ(::chown(p("d"), 1000, 1000), 0);
  ASSERT_TRUE(write_file(path("d/a"), "alpha"));
  ASSERT_EQ(::chmod(p("d/a"), 0600), 0);
  ASSERT_EQ(::chown(p("d/a"), 1000, 1001), 0);
  ASSERT_EQ(::symlink("a", p("d/s")), 0);
  ASSERT_EQ(::lchown(p("d/s"), 5, 6), 0);
  ASSERT_EQ(::link(p("d/a"), path("d/b").c_str()), 0);
  ASSERT_EQ(::mkfifo(p("d/fifo"), 0640), 0);
  ASSERT_EQ(::mknod(p("d/wh"), S_IFCHR | 0600, makedev(0, 0)), 0);
  ASSERT_EQ(::rename(p("d/b"), path("b2").c_str()), 0);
  ASSERT_EQ(::renameat2(AT_FDCWD, p("x"), AT_FDCWD, path("y").c_str(), RENAME_EXCHANGE), 0);
  ASSERT_EQ(::renameat2(AT_FDCWD, p("keep"), AT_FDCWD, path("d/keep2").c_str(), RENAME_NOREPLACE),
            0);
  ASSERT_TRUE(write_file(path("d/wsrc"), "w"));
  ASSERT_EQ(::renameat2(AT_FDCWD, p("d/wsrc"), AT_FDCWD, path("d/wdst").c_str(), RENAME_WHITEOUT),
            0)
      << std::strerror(errno);
  ASSERT_EQ(::truncate(p("big"), 5000), 0);
  int fd = ::open(p("big"), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "tail", 4, 90000), 4);
  ASSERT_EQ(::fallocate(fd, 0, 0, 200000), 0);
  ::close(fd);
  struct timespec times[2] = {{1, 2}, {3, 4}};
  ASSERT_EQ(::utimensat(AT_FDCWD, p("big"), times, 0), 0);
  ASSERT_EQ(::setxattr(p("d/a"), "user.k", "v", 1, 0), 0);
  ASSERT_EQ(::setxattr(p("d/a"), "trusted.t", "w", 1, 0), 0);
  ASSERT_EQ(::removexattr(p("d/keep2"), "user.old"), 0);
  ASSERT_EQ(::setxattr(p("d"), "user.dir", "1", 1, 0), 0);
  ASSERT_EQ(::unlink(p("dir_old/inner")), 0);
  ASSERT_EQ(::rmdir(p("dir_old")), 0);
  ASSERT_TRUE(write_file(path("y"), "z"));  // O_TRUNC on an existing file
  ASSERT_TRUE(write_file(path("tmp2"), "replacement"));
  ASSERT_EQ(::rename(p("tmp2"), path("x").c_str()), 0);
  ASSERT_EQ(::chmod(store_.c_str(), 0711), 0);
  // A shared writable mapping: its pages reach the server on msync.
  fd = ::open(p("mm"), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 8192), 0);
  void* map = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  std::memcpy(static_cast<char*>(map) + 4096, "mapped", 6);
  ASSERT_EQ(::msync(map, 8192, MS_SYNC), 0);
  ::munmap(map, 8192);
  ::close(fd);
  EXPECT_EQ(test::run_status(rec->watched({"sync"})), 0);

  auto recording = rec->finish();
  ASSERT_TRUE(recording) << recording.error().message;
  auto real = test::list_tree(store_);
  ASSERT_EQ(read_file(path("mm")).value_or("").substr(4096, 6), "mapped");
  for (Mode m : {Mode::kAllApplied, Mode::kDropUnsynced}) {
    std::string dest = dir_.sub(std::string("replay-") + mode_name(m));
    auto made = materialize(recording->snapshot_dir(), recording->log(),
                            recording->log().ops.size(), m, dest);
    ASSERT_TRUE(made) << made.error().message;
    EXPECT_TRUE(made->dropped.empty()) << made->dropped.front();
    EXPECT_EQ(test::list_tree(dest), real) << mode_name(m);
    struct stat a, b;
    ASSERT_EQ(::stat(dest.c_str(), &a), 0);
    ASSERT_EQ(::stat(store_.c_str(), &b), 0);
    EXPECT_EQ(a.st_mode, b.st_mode);
    ASSERT_EQ(::stat((dest + "/big").c_str(), &a), 0);
    EXPECT_EQ(a.st_mtim.tv_sec, 3);
    EXPECT_EQ(a.st_mtim.tv_nsec, 4);
  }
  // Before the final sync nothing but the msync'ed mapping was durable.
  auto early = materialize(recording->snapshot_dir(), recording->log(),
                           recording->log().ops.size() - 1, Mode::kDropUnsynced, dir_.sub("early"));
  ASSERT_TRUE(early) << early.error().message;
  EXPECT_EQ(read_file(dir_.sub("early/y")), std::optional<std::string>("yy"));
  EXPECT_FALSE(read_file(dir_.sub("early/d/a")));
}

// What the kernel forwards, and what it does not. If one of these changes
// (a newer libfuse or kernel), README.md here and the recorder must follow.
TEST_F(CrashFsOpsTest, KernelForwardsWhatItShould) {
  ASSERT_TRUE(write_file(path("f"), "f"));
  auto rec = CrashRecorder::start(store_);
  ASSERT_TRUE(rec) << rec.error().message;

  // No tmpfile hook in libfuse 3.14: O_TMPFILE fails, and callers must fall
  // back to a named temporary file.
  int fd = ::open(store_.c_str(), O_TMPFILE | O_WRONLY, 0600);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EOPNOTSUPP);

  // flock is kept by the kernel: two open files exclude each other.
  int a = ::open(p("f"), O_RDONLY), b = ::open(p("f"), O_RDONLY);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(::flock(a, LOCK_EX | LOCK_NB), 0);
  EXPECT_EQ(::flock(b, LOCK_EX | LOCK_NB), -1);
  EXPECT_EQ(errno, EWOULDBLOCK);
  ::flock(a, LOCK_UN);
  EXPECT_EQ(::flock(b, LOCK_EX | LOCK_NB), 0);

  // syncfs by an unwatched process is not seen; fsync of a directory is.
  EXPECT_EQ(::syncfs(a), 0);
  ::close(a);
  ::close(b);
  ASSERT_TRUE(test::sync_dir(store_));

  // copy_file_range is not forwarded; the kernel copies through writes, or
  // the caller falls back to read and write: either way the bytes are logged.
  int in = ::open(p("f"), O_RDONLY), out = ::open(p("g"), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(in, 0);
  ASSERT_GE(out, 0);
  ssize_t copied = ::copy_file_range(in, nullptr, out, nullptr, 1, 0);
  if (copied < 0) {
    ASSERT_EQ(::write(out, "f", 1), 1);
  }
  ::close(in);
  ::close(out);

  auto recording = rec->finish();
  ASSERT_TRUE(recording) << recording.error().message;
  std::vector<std::string> kinds;
  for (const Op& op : recording->log().ops) kinds.push_back(op_name(op.kind));
  EXPECT_EQ(kinds, std::vector<std::string>({"fsyncdir", "create", "write"}));
}

// allow_other and default_permissions: another user may use the mount, gets
// the permission checks a real file system makes, and owns what it creates.
TEST_F(CrashFsOpsTest, OtherUsersGetOrdinaryPermissions) {
  constexpr uid_t kUser = 4321;
  ASSERT_EQ(::mkdir(p("own"), 0755), 0);
  ASSERT_EQ(::chown(p("own"), kUser, kUser), 0);
  auto rec = CrashRecorder::start(store_);
  ASSERT_TRUE(rec) << rec.error().message;
  std::string mine = path("own/f"), theirs = path("rootonly");
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) < 0 || ::setresgid(kUser, kUser, kUser) < 0 ||
        ::setresuid(kUser, kUser, kUser) < 0)
      ::_exit(10);
    ::umask(022);
    if (!write_file(mine, "mine", true)) ::_exit(11);
    int fd = ::open(theirs.c_str(), O_WRONLY | O_CREAT, 0644);
    ::_exit(fd < 0 && errno == EACCES ? 0 : 12);
  }
  int ws;
  ASSERT_EQ(::waitpid(pid, &ws, 0), pid);
  EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << "status " << ws;
  auto recording = rec->finish();
  ASSERT_TRUE(recording) << recording.error().message;
  auto made = materialize(recording->snapshot_dir(), recording->log(), recording->log().ops.size(),
                          Mode::kAllApplied, dir_.sub("replay"));
  ASSERT_TRUE(made) << made.error().message;
  for (const std::string& f : {mine, dir_.sub("replay/own/f")}) {
    struct stat st;
    ASSERT_EQ(::lstat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_uid, kUser) << f;
    EXPECT_EQ(st.st_gid, kUser) << f;
    EXPECT_EQ(st.st_mode, S_IFREG | 0644u) << f;
  }
}

// A store that does not exist yet is recorded from an empty directory, and
// is a plain directory holding what the run made once recording finishes.
TEST_F(CrashFsOpsTest, RecordsAStoreThatDoesNotExistYet) {
  std::string fresh = dir_.sub("fresh");
  auto rec = CrashRecorder::start(fresh);
  ASSERT_TRUE(rec) << rec.error().message;
  ASSERT_TRUE(write_file(fresh + "/f", "made", true));
  ASSERT_TRUE(test::sync_dir(fresh));
  auto recording = rec->finish();
  ASSERT_TRUE(recording) << recording.error().message;
  EXPECT_EQ(read_file(fresh + "/f"), std::optional<std::string>("made"));
  EXPECT_TRUE(test::list_tree(recording->snapshot_dir()).empty());
  ASSERT_TRUE(write_file(dir_.sub("file"), ""));
  EXPECT_FALSE(CrashRecorder::start(dir_.sub("file")));
  for (const auto& [path, what] : test::list_tree(dir_.path()))
    EXPECT_FALSE(path.starts_with(".file.crashfs")) << "work directory left behind: " << path;
}

}  // namespace
}  // namespace togo::crashfs
