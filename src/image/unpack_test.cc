// Unpacks archives built in memory and checks what lands on disk. Escape
// attempts must fail with kBadInput and leave the sibling "outside" untouched.
#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "base/fs.h"

namespace togo::image {
namespace {

// Root of the initial user namespace. Root in a user namespace of its own
// (`unshare -r`) cannot chown to other ids, make devices or set trusted.*
// attributes: it runs the rootless paths.
bool is_root() {
  if (::geteuid() != 0) return false;
  auto map = fs::read_file(AT_FDCWD, "/proc/self/uid_map");
  return map && map->find("4294967295") != std::string::npos;
}

struct Meta {
  mode_t mode = 0644;
  int64_t uid = 0, gid = 0;
  time_t mtime = 1500000000;
  long mtime_nsec = 0;
  time_t atime = -1;  // unset unless >= 0
  long atime_nsec = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

Meta mode(mode_t m) {
  Meta meta;
  meta.mode = m;
  return meta;
}

// Builds a pax tar stream in memory.
class TarWriter {
 public:
  TarWriter() {
    a_ = archive_write_new();
    archive_write_set_format_pax(a_);  // full pax: nanosecond times and atimes
    archive_write_open(a_, this, nullptr, &TarWriter::append, nullptr);
  }
  ~TarWriter() { archive_write_free(a_); }

  TarWriter& file(const std::string& path, const std::string& data, Meta m = {}) {
    return add(path, AE_IFREG, m, [&](archive_entry* e) { archive_entry_set_size(e, data.size()); },
               data);
  }
  TarWriter& dir(const std::string& path, Meta m = mode(0755)) {
    return add(path, AE_IFDIR, m, nullptr);
  }
  TarWriter& symlink(const std::string& path, const std::string& target, Meta m = mode(0777)) {
    return add(path, AE_IFLNK, m,
               [&](archive_entry* e) { archive_entry_set_symlink(e, target.c_str()); });
  }
  TarWriter& hardlink(const std::string& path, const std::string& target) {
    return add(path, AE_IFREG, {}, [&](archive_entry* e) {
      archive_entry_set_hardlink(e, target.c_str());
      archive_entry_set_size(e, 0);
    });
  }
  TarWriter& node(const std::string& path, mode_t type, unsigned major, unsigned minor,
                  Meta m = mode(0666)) {
    return add(path, type, m, [&](archive_entry* e) {
      archive_entry_set_rdevmajor(e, major);
      archive_entry_set_rdevminor(e, minor);
    });
  }
  // A sparse file of `size` bytes holding `chunks` ({offset, data}) and holes.
  TarWriter& sparse(const std::string& path, int64_t size,
                    const std::vector<std::pair<int64_t, std::string>>& chunks) {
    std::string logical(static_cast<size_t>(size), '\0');
    for (auto& [off, data] : chunks) logical.replace(static_cast<size_t>(off), data.size(), data);
    return add(path, AE_IFREG, {}, [&](archive_entry* e) {
      archive_entry_set_size(e, size);
      for (auto& [off, data] : chunks) archive_entry_sparse_add_entry(e, off, data.size());
    }, logical);
  }
  std::string finish() {
    archive_write_close(a_);
    return out_;
  }

 private:
  template <typename F>
  TarWriter& add(const std::string& path, mode_t type, const Meta& m, F&& extra,
                 const std::string& data = "") {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, m.mode);
    archive_entry_set_uid(e, m.uid);
    archive_entry_set_gid(e, m.gid);
    archive_entry_set_mtime(e, m.mtime, m.mtime_nsec);
    if (m.atime >= 0) archive_entry_set_atime(e, m.atime, m.atime_nsec);
    for (auto& [k, v] : m.xattrs) archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    if constexpr (!std::is_same_v<std::decay_t<F>, std::nullptr_t>) extra(e);
    EXPECT_GE(archive_write_header(a_, e), ARCHIVE_WARN) << archive_error_string(a_);
    if (!data.empty()) {
      EXPECT_EQ(archive_write_data(a_, data.data(), data.size()),
                static_cast<la_ssize_t>(data.size()));
    }
    archive_entry_free(e);
    return *this;
  }
  static la_ssize_t append(struct archive*, void* self, const void* buf, size_t n) {
    static_cast<TarWriter*>(self)->out_.append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }

  struct archive* a_;
  std::string out_;
};

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::umask(022);
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/togo-unpack-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    ASSERT_EQ(::mkdir((base_ + "/root").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((base_ + "/outside").c_str(), 0755), 0);
    Fd out(::open((base_ + "/outside").c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_TRUE(fs::write_file_atomic(out.get(), "file", "secret\n", 0644));
    root_ = Fd(::open((base_ + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root_.valid());
    before_ = outside_state();
  }
  void TearDown() override {
    root_.reset();
    EXPECT_TRUE(fs::remove_tree(AT_FDCWD, base_));
  }

  Result<UnpackStats> unpack_tar(const std::string& tar, bool rootless = !is_root()) {
    struct archive* ar = archive_read_new();
    archive_read_support_format_tar(ar);
    EXPECT_EQ(archive_read_open_memory(ar, tar.data(), tar.size()), ARCHIVE_OK);
    UnpackOptions opts;
    opts.rootless = rootless;
    opts.whiteouts = mode_;
    opts.warn = [this](const std::string& line) { warnings_.push_back(line); };
    opts.max_entries = max_entries_;
    auto r = unpack(ar, root_.get(), opts);
    archive_read_free(ar);
    return r;
  }

  // Type, mode, size, time, link target and content of everything next to
  // the root (not inside it).
  std::string outside_state() {
    namespace sfs = std::filesystem;
    std::vector<std::string> lines;
    for (auto it = sfs::recursive_directory_iterator(base_); it != sfs::end(it); ++it) {
      if (it->path() == base_ + "/root") {
        it.disable_recursion_pending();
        continue;
      }
      struct stat st;
      EXPECT_EQ(::lstat(it->path().c_str(), &st), 0);
      std::string line = it->path().string() + " " + std::to_string(st.st_mode) + " " +
                         std::to_string(st.st_size) + " " + std::to_string(st.st_mtime) + " " +
                         std::to_string(st.st_nlink);
      if (S_ISLNK(st.st_mode)) line += " -> " + sfs::read_symlink(it->path()).string();
      if (S_ISREG(st.st_mode)) line += " " + fs::read_file(AT_FDCWD, it->path()).value_or("?");
      lines.push_back(line);
    }
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (auto& l : lines) out += l + "\n";
    return out;
  }
  void expect_outside_unchanged() { EXPECT_EQ(outside_state(), before_); }

  void expect_refused(const std::string& tar, const std::string& message) {
    auto r = unpack_tar(tar);
    ASSERT_FALSE(r.has_value()) << "an escaping archive was unpacked";
    EXPECT_EQ(r.error().kind, ErrorKind::kBadInput) << r.error().message;
    EXPECT_NE(r.error().message.find(message), std::string::npos) << r.error().message;
    expect_outside_unchanged();
  }

  nlink_t outside_file_links() {
    struct stat st = {};
    EXPECT_EQ(::lstat((base_ + "/outside/file").c_str(), &st), 0);
    return st.st_nlink;
  }
  struct stat lstat_in(const std::string& path) {
    struct stat st = {};
    EXPECT_EQ(::fstatat(root_.get(), path.c_str(), &st, AT_SYMLINK_NOFOLLOW), 0) << path;
    return st;
  }
  bool exists_in(const std::string& path) {
    struct stat st;
    return ::fstatat(root_.get(), path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  }
  std::string read_in(const std::string& path) {
    auto data = fs::read_file(root_.get(), path);
    EXPECT_TRUE(data.has_value()) << path;
    return data ? *data : "";
  }
  std::string link_in(const std::string& path) {
    char buf[4096];
    ssize_t n = ::readlinkat(root_.get(), path.c_str(), buf, sizeof buf);
    EXPECT_GE(n, 0) << path;
    return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
  }
  std::string xattr_in(const std::string& path, const char* name) {
    char buf[256];
    std::string full = base_ + "/root/" + path;
    ssize_t n = ::lgetxattr(full.c_str(), name, buf, sizeof buf);
    return n < 0 ? "<none>" : std::string(buf, static_cast<size_t>(n));
  }

  std::string base_;
  Fd root_;
  WhiteoutMode mode_ = WhiteoutMode::kOverlay;
  uint64_t max_entries_ = 0;
  std::string before_;
  std::vector<std::string> warnings_;
};


// ---- what lands on disk ----

TEST_F(UnpackTest, FilesDirectoriesModesAndTimes) {
  Meta etc = mode(0755);
  etc.mtime = 1111111111;
  Meta passwd = mode(0644);
  passwd.mtime = 1222222222;
  std::string tar = TarWriter()
                        .dir("./", etc)
                        .dir("etc/", etc)
                        .file("etc/passwd", "root:x:0:0\n", passwd)
                        .file("etc/shadow", "secret", mode(0000))
                        .file("bin/su", "elf", mode(04755))
                        .file("empty", "", mode(0444))
                        .finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(read_in("etc/passwd"), "root:x:0:0\n");
  EXPECT_EQ(lstat_in("etc/passwd").st_mode & 07777, 0644u);
  EXPECT_EQ(lstat_in("etc/passwd").st_mtime, 1222222222);
  EXPECT_EQ(lstat_in("etc/shadow").st_mode & 07777, 0000u);
  EXPECT_EQ(lstat_in("etc/shadow").st_size, 6);
  EXPECT_EQ(lstat_in("bin/su").st_mode & 07777, 04755u);
  EXPECT_EQ(lstat_in("empty").st_size, 0);
  EXPECT_EQ(lstat_in("empty").st_mode & 07777, 0444u);
  // Directory times are set after their children were created.
  EXPECT_TRUE(S_ISDIR(lstat_in("etc").st_mode));
  EXPECT_EQ(lstat_in("etc").st_mtime, 1111111111);
  EXPECT_EQ(lstat_in("etc").st_mode & 07777, 0755u);
  EXPECT_EQ(lstat_in("bin").st_mode & 07777, 0755u);  // not listed: made 0755
  struct stat root;
  ASSERT_EQ(::fstat(root_.get(), &root), 0);
  EXPECT_EQ(root.st_mtime, 1111111111);  // "./" is the root itself
  EXPECT_EQ(r->entries, 6u);
  EXPECT_EQ(r->files, 4u);
  EXPECT_EQ(r->dirs, 2u);
  EXPECT_EQ(r->bytes, 11u + 6 + 3);
  EXPECT_EQ(r->skipped, 0u);
  EXPECT_TRUE(warnings_.empty());
}

TEST_F(UnpackTest, ReadOnlyDirectoriesAreStillFilled) {
  std::string tar = TarWriter()
                        .dir("ro/", mode(0555))
                        .file("ro/f", "x")
                        .dir("locked/", mode(0000))
                        .file("locked/inner/f", "y")
                        .finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(lstat_in("ro").st_mode & 07777, 0555u);
  EXPECT_EQ(read_in("ro/f"), "x");
  EXPECT_EQ(lstat_in("locked").st_mode & 07777, 0000u);
  ASSERT_EQ(::fchmodat(root_.get(), "locked", 0700, 0), 0);
  EXPECT_EQ(read_in("locked/inner/f"), "y");
}

TEST_F(UnpackTest, DirectoriesListedAfterTheirChildren) {
  Meta b = mode(0750);
  b.mtime = 1000000001;
  Meta a = mode(0711);
  a.mtime = 1000000002;
  std::string tar = TarWriter().file("a/b/c/file", "data").dir("a/b/", b).dir("a", a).finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(read_in("a/b/c/file"), "data");
  EXPECT_EQ(lstat_in("a/b").st_mode & 07777, 0750u);
  EXPECT_EQ(lstat_in("a/b").st_mtime, 1000000001);
  EXPECT_EQ(lstat_in("a").st_mode & 07777, 0711u);
  EXPECT_EQ(lstat_in("a").st_mtime, 1000000002);
  EXPECT_EQ(lstat_in("a/b/c").st_mode & 07777, 0755u);
}

TEST_F(UnpackTest, NamesAreCleaned) {
  std::string tar = TarWriter().file("./x", "1").file(".//y/./z", "2").dir("./d//").finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(read_in("x"), "1");
  EXPECT_EQ(read_in("y/z"), "2");
  EXPECT_TRUE(S_ISDIR(lstat_in("d").st_mode));
}

TEST_F(UnpackTest, SymlinksKeepTheirTargetText) {
  Meta m = mode(0777);
  m.mtime = 1300000000;
  std::string tar = TarWriter()
                        .symlink("abs", "/etc/passwd", m)
                        .symlink("up", "../../..", m)
                        .symlink("dir/rel", "a/b", m)
                        .finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(link_in("abs"), "/etc/passwd");
  EXPECT_EQ(link_in("up"), "../../..");
  EXPECT_EQ(link_in("dir/rel"), "a/b");
  EXPECT_TRUE(S_ISLNK(lstat_in("abs").st_mode));
  EXPECT_EQ(lstat_in("abs").st_mtime, 1300000000);
  EXPECT_EQ(r->symlinks, 3u);
}

TEST_F(UnpackTest, HardlinksShareTheInode) {
  std::string tar = TarWriter()
                        .file("bin/a", "same", mode(0755))
                        .hardlink("bin/b", "bin/a")
                        .hardlink("c", "./bin//a")
                        .finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  struct stat a = lstat_in("bin/a"), b = lstat_in("bin/b"), c = lstat_in("c");
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_ino, c.st_ino);
  EXPECT_EQ(a.st_nlink, 3u);
  EXPECT_EQ(read_in("c"), "same");
  EXPECT_EQ(r->hardlinks, 2u);
  EXPECT_EQ(r->files, 1u);
}

TEST_F(UnpackTest, SparseFilesKeepTheirHoles) {
  constexpr int64_t kSize = 32 << 20;
  std::string head(4096, 'h'), mid(8192, 'm');
  std::string tar = TarWriter().sparse("disk.img", kSize, {{0, head}, {16 << 20, mid}}).finish();
  EXPECT_LT(tar.size(), 1u << 20);  // the archive itself holds no holes
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  struct stat st = lstat_in("disk.img");
  EXPECT_EQ(st.st_size, kSize);
  EXPECT_LT(st.st_blocks * 512, 1 << 20);
  std::string data = read_in("disk.img");
  ASSERT_EQ(data.size(), static_cast<size_t>(kSize));
  EXPECT_EQ(data.substr(0, 4096), head);
  EXPECT_EQ(data.substr(16 << 20, 8192), mid);
  EXPECT_EQ(data.substr(4096, 4096), std::string(4096, '\0'));
  EXPECT_EQ(data.substr(kSize - 10), std::string(10, '\0'));
  EXPECT_EQ(r->bytes, static_cast<uint64_t>(kSize));
}

TEST_F(UnpackTest, ExtendedAttributes) {
  Meta f = mode(0444);
  f.xattrs = {{"user.comment", "hello"}, {"trusted.secret", "t"}};
  Meta d = mode(0555);
  d.xattrs = {{"user.dir", "yes"}};
  std::string tar = TarWriter().dir("d", d).file("d/f", "x", f).symlink("d/l", "f").finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(xattr_in("d/f", "user.comment"), "hello");
  EXPECT_EQ(xattr_in("d", "user.dir"), "yes");
  if (is_root()) {
    EXPECT_EQ(xattr_in("d/f", "trusted.secret"), "t");
    EXPECT_TRUE(warnings_.empty());
  } else {
    EXPECT_EQ(xattr_in("d/f", "trusted.secret"), "<none>");
    ASSERT_EQ(warnings_.size(), 1u);
    EXPECT_EQ(warnings_[0],
              "skipped 1 trusted.*/security.* extended attribute: setting them needs root");
  }
}

TEST_F(UnpackTest, OverlayAttributesAreNeverApplied) {
  Meta d = mode(0755);
  d.xattrs = {{"trusted.overlay.opaque", "y"}, {"user.overlay.redirect", "/etc"}, {"user.ok", "1"}};
  std::string tar = TarWriter().dir("d", d).finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(xattr_in("d", "trusted.overlay.opaque"), "<none>");
  EXPECT_EQ(xattr_in("d", "user.overlay.redirect"), "<none>");
  EXPECT_EQ(xattr_in("d", "user.ok"), "1");
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_EQ(warnings_[0],
            "skipped 2 overlay extended attributes: an image layer may not steer the overlay "
            "filesystem");
}

TEST_F(UnpackTest, LaterEntriesReplaceEarlierOnes) {
  Meta d2 = mode(0700);
  d2.mtime = 1400000000;
  std::string tar = TarWriter()
                        .file("f", "one")
                        .file("f", "two")
                        .file("a", "old")
                        .hardlink("b", "a")
                        .file("a", "new")  // b keeps the old content
                        .dir("e")
                        .file("e", "was an empty directory")
                        .file("g", "was a file")
                        .dir("g")
                        .dir("d", mode(0755))
                        .file("d/inside", "kept")
                        .dir("d", d2)  // a directory over a directory: updated
                        .symlink("l", "../outside/file")
                        .file("l", "replaces the symlink, not its target")
                        .finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(read_in("f"), "two");
  EXPECT_EQ(read_in("a"), "new");
  EXPECT_EQ(read_in("b"), "old");
  EXPECT_EQ(read_in("e"), "was an empty directory");
  EXPECT_TRUE(S_ISDIR(lstat_in("g").st_mode));
  EXPECT_EQ(read_in("d/inside"), "kept");
  EXPECT_EQ(lstat_in("d").st_mode & 07777, 0700u);
  EXPECT_EQ(lstat_in("d").st_mtime, 1400000000);
  EXPECT_TRUE(S_ISREG(lstat_in("l").st_mode));
  expect_outside_unchanged();
}

TEST_F(UnpackTest, NonEmptyDirectoryIsNotReplaced) {
  std::string tar = TarWriter().file("d/x", "1").file("d", "2").finish();
  auto r = unpack_tar(tar);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
  EXPECT_EQ(r.error().message, "entry d: replaces a directory that is not empty");
}

TEST_F(UnpackTest, OwnersAreNumericIdsAsRoot) {
  if (!is_root()) GTEST_SKIP() << "chown to other ids needs root";
  Meta m = mode(04755);
  m.uid = 1234;
  m.gid = 5678;
  Meta d = mode(02775);
  d.uid = 1234;
  d.gid = 5678;
  Meta l = mode(0777);
  l.uid = 4321;
  l.gid = 8765;
  std::string tar = TarWriter()
                        .dir("d", d)
                        .file("d/suid", "elf", m)
                        .symlink("d/l", "suid", l)
                        .node("d/fifo", AE_IFIFO, 0, 0, m)
                        .finish();
  auto r = unpack_tar(tar, /*rootless=*/false);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(lstat_in("d/suid").st_uid, 1234u);
  EXPECT_EQ(lstat_in("d/suid").st_gid, 5678u);
  EXPECT_EQ(lstat_in("d/suid").st_mode & 07777, 04755u);  // chown did not clear setuid
  EXPECT_EQ(lstat_in("d").st_uid, 1234u);
  EXPECT_EQ(lstat_in("d").st_mode & 07777, 02775u);
  EXPECT_EQ(lstat_in("d/l").st_uid, 4321u);
  EXPECT_EQ(lstat_in("d/l").st_gid, 8765u);
  EXPECT_EQ(lstat_in("d/fifo").st_uid, 1234u);
}

TEST_F(UnpackTest, RootlessLeavesTheCallerAsOwner) {
  Meta m = mode(0644);
  m.uid = 1234;
  m.gid = 5678;
  Meta d = m;
  d.mode = 0755;
  std::string tar = TarWriter().dir("d", d).file("d/f", "x", m).symlink("l", "d", m).finish();
  auto r = unpack_tar(tar, /*rootless=*/true);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  for (const char* p : {"d", "d/f", "l"}) {
    EXPECT_EQ(lstat_in(p).st_uid, ::geteuid()) << p;
    EXPECT_EQ(lstat_in(p).st_gid, ::getegid()) << p;
  }
}

TEST_F(UnpackTest, DevicesAndFifos) {
  std::string tar = TarWriter()
                        .node("dev/null", AE_IFCHR, 1, 3)
                        .node("dev/loop0", AE_IFBLK, 7, 0, mode(0660))
                        .hardlink("dev/null2", "dev/null")
                        .node("run/fifo", AE_IFIFO, 0, 0, mode(0620))
                        .finish();
  if (is_root()) {
    auto r = unpack_tar(tar, /*rootless=*/false);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    struct stat null = lstat_in("dev/null");
    EXPECT_TRUE(S_ISCHR(null.st_mode));
    EXPECT_EQ(null.st_rdev, makedev(1, 3));
    EXPECT_EQ(null.st_mode & 07777, 0666u);
    EXPECT_TRUE(S_ISBLK(lstat_in("dev/loop0").st_mode));
    EXPECT_EQ(lstat_in("dev/null2").st_ino, null.st_ino);
    EXPECT_TRUE(warnings_.empty());
    ASSERT_EQ(::unlinkat(root_.get(), "dev/null", 0), 0);
    ASSERT_EQ(::unlinkat(root_.get(), "dev/null2", 0), 0);
    ASSERT_EQ(::unlinkat(root_.get(), "dev/loop0", 0), 0);
    ASSERT_EQ(::unlinkat(root_.get(), "run/fifo", 0), 0);
  }
  warnings_.clear();
  auto r = unpack_tar(tar, /*rootless=*/true);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_FALSE(exists_in("dev/null"));
  EXPECT_FALSE(exists_in("dev/loop0"));
  EXPECT_FALSE(exists_in("dev/null2"));
  EXPECT_TRUE(S_ISFIFO(lstat_in("run/fifo").st_mode));
  EXPECT_EQ(lstat_in("run/fifo").st_mode & 07777, 0620u);
  EXPECT_EQ(r->skipped, 3u);
  EXPECT_EQ(r->entries, 4u);
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_EQ(warnings_[0], "skipped 3 device nodes: creating devices needs root");
}

TEST_F(UnpackTest, TruncatedArchiveIsBadInput) {
  std::string tar = TarWriter().file("big", std::string(100000, 'x')).finish();
  tar.resize(20000);
  auto r = unpack_tar(tar);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
  EXPECT_NE(r.error().message.find("entry big: reading data"), std::string::npos)
      << r.error().message;
}

TEST_F(UnpackTest, EntriesBeyondTheLimitAreBadInput) {
  // Empty files and skipped entries count: they cost inodes, not bytes.
  std::string tar = TarWriter().dir("d").file("d/a", "").file("d/b", "").file("d/c", "").finish();
  max_entries_ = 4;
  auto ok = unpack_tar(tar);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->entries, 4u);
  max_entries_ = 3;
  auto r = unpack_tar(tar);
  ASSERT_FALSE(r.has_value()) << "a fourth entry was allowed past a limit of 3";
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
  EXPECT_EQ(r.error().message, "the archive has more than 3 entries");
}

TEST_F(UnpackTest, ErrorsShowNamesSafely) {
  std::string tar = TarWriter().file("evil\x1b[2J/../x", "x").finish();
  auto r = unpack_tar(tar);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "entry evil\\x1b[2J/../x: path leaves the image root");
}

// ---- escapes: each must fail with kBadInput and change nothing outside ----

TEST_F(UnpackTest, RefusesAbsolutePath) {
  expect_refused(TarWriter().file(base_ + "/outside/evil", "x").finish(), "absolute path");
  expect_refused(TarWriter().file("/etc/togo-evil", "x").finish(), "absolute path");
  EXPECT_NE(::access("/etc/togo-evil", F_OK), 0);
}

TEST_F(UnpackTest, RefusesDotDot) {
  expect_refused(TarWriter().file("../x", "x").finish(), "entry ../x: path leaves the image root");
  expect_refused(TarWriter().file("a/../../x", "x").finish(), "path leaves the image root");
  expect_refused(TarWriter().file("../outside/file", "pwned").finish(),
                 "path leaves the image root");
  expect_refused(TarWriter().dir("a").symlink("a/../../x", "y").finish(),
                 "path leaves the image root");
}

TEST_F(UnpackTest, RefusesWritingThroughAnAbsoluteSymlink) {
  std::string tar = TarWriter()
                        .symlink("l", base_ + "/outside")
                        .file("l/file", "pwned")
                        .file("l/new", "pwned")
                        .finish();
  expect_refused(tar, "entry l/file: path goes through a symlink");
  EXPECT_EQ(link_in("l"), base_ + "/outside");
}

TEST_F(UnpackTest, RefusesWritingThroughASymlinkToParent) {
  expect_refused(TarWriter().symlink("up", "..").file("up/x", "pwned").finish(),
                 "entry up/x: path goes through a symlink");
  expect_refused(TarWriter().symlink("up2", "..").dir("up2/outside/sub").finish(),
                 "path goes through a symlink");
}

TEST_F(UnpackTest, RefusesSymlinksDeeperInThePath) {
  std::string tar = TarWriter()
                        .dir("d")
                        .symlink("d/l", "/")
                        .file("d/l" + base_ + "/outside/file", "pwned")
                        .finish();
  expect_refused(tar, "path goes through a symlink");
  expect_refused(TarWriter().symlink("m", "../outside").hardlink("m/h", "d/l").finish(),
                 "path goes through a symlink");
}

TEST_F(UnpackTest, RefusesThroughAFile) {
  expect_refused(TarWriter().file("f", "x").file("f/x", "y").finish(),
                 "entry f/x: path goes through something that is not a directory");
}

TEST_F(UnpackTest, RefusesHardlinkOutsideTheRoot) {
  expect_refused(TarWriter().hardlink("h", "../outside/file").finish(),
                 "entry h: hardlink target ../outside/file leaves the image root");
  expect_refused(TarWriter().hardlink("h2", base_ + "/outside/file").finish(),
                 "hardlink target " + base_ + "/outside/file: absolute path");
  EXPECT_EQ(outside_file_links(), 1u);
}

TEST_F(UnpackTest, RefusesHardlinkThroughASymlink) {
  std::string tar =
      TarWriter().symlink("l", base_ + "/outside").hardlink("h", "l/file").finish();
  expect_refused(tar, "entry h: hardlink target l/file: path goes through a symlink");
  EXPECT_EQ(outside_file_links(), 1u);
}

TEST_F(UnpackTest, RefusesHardlinkToAMissingTarget) {
  expect_refused(TarWriter().hardlink("h", "nowhere").finish(),
                 "entry h: hardlink target nowhere does not exist");
  expect_refused(TarWriter().hardlink("h", "no/such/dir").finish(), "does not exist");
  expect_refused(TarWriter().file("later", "x").hardlink("h", "./").finish(),
                 "hardlink target is the image root");
}

TEST_F(UnpackTest, RefusesReplacingTheRoot) {
  expect_refused(TarWriter().symlink("./", base_ + "/outside").finish(),
                 "the image root can only be a directory");
  expect_refused(TarWriter().file(".", "x").finish(), "the image root can only be a directory");
}

TEST_F(UnpackTest, RefusesEntriesWithNoName) {
  expect_refused(TarWriter().file("", "x").finish(), "empty name");
}


// ---- metadata to the nanosecond, capabilities, attributes on links ----

TEST_F(UnpackTest, NanosecondTimesOnEveryKindOfEntry) {
  auto at = [](mode_t m, time_t t, long ns) {
    Meta meta = mode(m);
    meta.mtime = t;
    meta.mtime_nsec = ns;
    meta.atime = t - 1000;
    meta.atime_nsec = 999999999 - ns;
    return meta;
  };
  std::string tar = TarWriter()
                        .dir("d", at(0755, 1500000001, 123456789))
                        .file("d/f", "x", at(0644, 1500000002, 1))
                        .symlink("d/l", "f", at(0777, 1500000003, 999999999))
                        .node("d/p", AE_IFIFO, 0, 0, at(0600, 1500000004, 500000000))
                        .finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  struct Want {
    const char* path;
    time_t sec;
    long nsec;
  };
  for (Want w : {Want{"d", 1500000001, 123456789}, Want{"d/f", 1500000002, 1},
                 Want{"d/l", 1500000003, 999999999}, Want{"d/p", 1500000004, 500000000}}) {
    struct stat st = lstat_in(w.path);
    EXPECT_EQ(st.st_mtim.tv_sec, w.sec) << w.path;
    EXPECT_EQ(st.st_mtim.tv_nsec, w.nsec) << w.path;
    EXPECT_EQ(st.st_atim.tv_sec, w.sec - 1000) << w.path;
    EXPECT_EQ(st.st_atim.tv_nsec, 999999999 - w.nsec) << w.path;
  }
}

TEST_F(UnpackTest, FileCapabilities) {
  // v2 capabilities: cap_net_bind_service, effective.
  uint32_t words[5] = {0x02000000u | 1u, 1u << 10, 0, 0, 0};
  Meta m = mode(04755);
  m.uid = is_root() ? 1234 : 0;
  m.xattrs = {{"security.capability", std::string(reinterpret_cast<char*>(words), sizeof words)}};
  std::string tar = TarWriter().file("ping", "elf", m).finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(lstat_in("ping").st_mode & 07777, 04755u);
  if (is_root()) {
    EXPECT_EQ(lstat_in("ping").st_uid, 1234u);
  }
  if (::geteuid() == 0) {
    // Set after the owner and the data, which would have cleared it. Root in
    // a user namespace may set them too: the kernel scopes them to it.
    EXPECT_EQ(xattr_in("ping", "security.capability"), m.xattrs[0].second);
    EXPECT_TRUE(warnings_.empty());
  } else {
    EXPECT_EQ(xattr_in("ping", "security.capability"), "<none>");
    ASSERT_EQ(warnings_.size(), 1u);
    EXPECT_EQ(warnings_[0],
              "skipped 1 trusted.*/security.* extended attribute: setting them needs root");
  }
}

TEST_F(UnpackTest, AttributesOnSymlinksAndNodes) {
  Meta l = mode(0777);
  l.xattrs = {{"trusted.link", "on the link"}, {"user.no", "user.* cannot be on a symlink"}};
  Meta p = mode(0600);
  p.xattrs = {{"trusted.fifo", "on the fifo"}};
  std::string tar = TarWriter().file("f", "x").symlink("l", "f", l).node("p", AE_IFIFO, 0, 0, p)
                        .finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(xattr_in("f", "trusted.link"), "<none>");  // not through the link
  EXPECT_EQ(xattr_in("l", "user.no"), "<none>");
  if (is_root()) {
    EXPECT_EQ(xattr_in("l", "trusted.link"), "on the link");
    EXPECT_EQ(xattr_in("p", "trusted.fifo"), "on the fifo");
    ASSERT_EQ(warnings_.size(), 1u);
    EXPECT_EQ(warnings_[0], "skipped 1 extended attribute: the file system does not support them");
  }
}

// ---- whiteouts, overlay mode (the default) ----

std::string opaque_of(int root, const std::string& path, const char* key) {
  char buf[8];
  Fd fd(::openat(root, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  ssize_t n = fd.valid() ? ::fgetxattr(fd.get(), key, buf, sizeof buf) : -1;
  return n < 0 ? "<none>" : std::string(buf, static_cast<size_t>(n));
}

TEST_F(UnpackTest, WhiteoutsBecomeOverlayWhiteouts) {
  std::string tar = TarWriter()
                        .dir("etc")
                        .file("etc/.wh.passwd", "")
                        .file(".wh.gone", "")
                        .dir("usr")
                        .file("usr/.wh..wh..opq", "")
                        .file("usr/kept", "this layer's own")
                        .dir(".wh.was-a-dir")  // only the name counts
                        .file("opt/sub/.wh..wh..opq", "")  // parents made as usual
                        .finish();
  auto r = unpack_tar(tar);
  if (!r && r.error().err == EPERM) GTEST_SKIP() << "no unprivileged whiteouts: " << r.error().message;
  ASSERT_TRUE(r.has_value()) << r.error().message;
  for (const char* p : {"etc/passwd", "gone", "was-a-dir"}) {
    struct stat st = lstat_in(p);
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << p;
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << p;
  }
  EXPECT_FALSE(exists_in(".wh.gone"));
  EXPECT_FALSE(exists_in("usr/.wh..wh..opq"));
  EXPECT_EQ(read_in("usr/kept"), "this layer's own");
  EXPECT_EQ(opaque_of(root_.get(), "usr", "user.overlay.opaque"), "y");
  EXPECT_EQ(opaque_of(root_.get(), "opt/sub", "user.overlay.opaque"), "y");
  EXPECT_EQ(opaque_of(root_.get(), "etc", "user.overlay.opaque"), "<none>");
  EXPECT_EQ(opaque_of(root_.get(), "usr", "trusted.overlay.opaque"), is_root() ? "y" : "<none>");
  EXPECT_EQ(r->whiteouts, 3u);
  EXPECT_EQ(r->opaque_dirs, 2u);
  EXPECT_EQ(r->entries, 8u);
  EXPECT_EQ(r->files, 1u);
  EXPECT_TRUE(warnings_.empty());
}

TEST_F(UnpackTest, OverlayWhiteoutsSpareThisLayer) {
  std::string tar = TarWriter()
                        .file("a", "written first")
                        .file(".wh.a", "")  // the lower a is hidden by this a anyway
                        .dir("d")
                        .file("d/x", "x")
                        .file(".wh.d", "")  // d stays, opaque: the lower d is gone
                        .file(".wh.e", "")
                        .dir("e", mode(0750))  // a directory over this layer's whiteout
                        .file(".wh.f", "")
                        .file("f/y", "y")  // a child with no directory entry
                        .file(".wh.g", "")
                        .file("g", "a file over this layer's whiteout")
                        .file(".wh.h", "")
                        .file("h/i/.wh..wh..opq", "")  // a marker under this layer's whiteout
                        .finish();
  auto r = unpack_tar(tar);
  if (!r && r.error().err == EPERM) GTEST_SKIP() << "no unprivileged whiteouts: " << r.error().message;
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(read_in("a"), "written first");
  EXPECT_EQ(read_in("d/x"), "x");
  EXPECT_EQ(read_in("f/y"), "y");
  EXPECT_EQ(read_in("g"), "a file over this layer's whiteout");
  EXPECT_TRUE(S_ISDIR(lstat_in("e").st_mode));
  EXPECT_EQ(lstat_in("e").st_mode & 07777, 0750u);
  for (const char* dir : {"d", "e", "f", "h", "h/i"})
    EXPECT_EQ(opaque_of(root_.get(), dir, "user.overlay.opaque"), "y") << dir;
  EXPECT_EQ(r->whiteouts, 6u);
  EXPECT_EQ(r->opaque_dirs, 1u);

  // A hardlink cannot reach below the layer to what a whiteout hid.
  UnpackTest::TearDown();
  SetUp();
  expect_refused(TarWriter().file(".wh.h", "").hardlink("k", "h").finish(),
                 "entry k: hardlink target h was deleted by a whiteout");
}

// ---- whiteouts, apply mode ----

class ApplyTest : public UnpackTest {
 protected:
  void SetUp() override {
    UnpackTest::SetUp();
    mode_ = WhiteoutMode::kApply;
    // The layers below, already merged into the root.
    std::string lower = TarWriter()
                            .file("a", "lower a")
                            .file("b", "lower b")
                            .dir("tree")
                            .file("tree/f", "f")
                            .dir("tree/ro", mode(0555))
                            .file("tree/ro/g", "g")
                            .symlink("tree/l", "../outside")
                            .dir("keep", mode(0700))
                            .file("keep/old1", "1")
                            .dir("keep/old2")
                            .file("keep/old2/x", "x")
                            .dir("same")
                            .file("same/old", "old")
                            .symlink("escape", base_ + "/outside")
                            .dir("ro", mode(0555))
                            .file("ro/f", "f")
                            .file("ro/stays", "stays")
                            .finish();
    auto r = unpack_tar(lower);
    ASSERT_TRUE(r.has_value()) << r.error().message;
  }
};

TEST_F(ApplyTest, WhiteoutsRemoveWhatLowerLayersMade) {
  Meta keep = mode(0711);
  keep.mtime = 1600000000;
  std::string tar = TarWriter()
                        .file(".wh.a", "")
                        .file(".wh.tree", "")
                        .file(".wh.escape", "")  // the symlink goes, not what it points to
                        .file(".wh.missing", "")
                        .dir("keep", keep)
                        .file("keep/.wh..wh..opq", "")
                        .file("keep/new", "new")
                        .file("same/new", "this layer's")
                        .file("same/.wh..wh..opq", "")  // after this layer's entry: spared
                        .file("b", "this layer's b")
                        .file(".wh.b", "")  // the same layer's b is spared
                        .file("ro/.wh.f", "")  // in a lower directory we cannot write
                        .file("ro/new", "new")
                        .finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_FALSE(exists_in("a"));
  EXPECT_FALSE(exists_in(".wh.a"));
  EXPECT_FALSE(exists_in("tree"));
  EXPECT_FALSE(exists_in("escape"));
  EXPECT_FALSE(exists_in("missing"));
  EXPECT_EQ(fs::list_dir(Fd(::openat(root_.get(), "keep", O_RDONLY | O_DIRECTORY)).get()),
            std::vector<std::string>{"new"});
  EXPECT_EQ(lstat_in("keep").st_mode & 07777, 0711u);
  EXPECT_EQ(lstat_in("keep").st_mtime, 1600000000);
  EXPECT_EQ(read_in("same/new"), "this layer's");
  EXPECT_FALSE(exists_in("same/old"));
  EXPECT_EQ(read_in("b"), "this layer's b");
  EXPECT_FALSE(exists_in("ro/f"));
  EXPECT_EQ(read_in("ro/new"), "new");
  EXPECT_EQ(read_in("ro/stays"), "stays");
  EXPECT_EQ(lstat_in("ro").st_mode & 07777, 0555u);  // given its mode back
  EXPECT_EQ(opaque_of(root_.get(), "keep", "user.overlay.opaque"), "<none>");
  EXPECT_EQ(r->whiteouts, 6u);
  EXPECT_EQ(r->opaque_dirs, 2u);
  expect_outside_unchanged();
}

TEST_F(ApplyTest, WhiteoutOfADirectoryThisLayerWroteInto) {
  std::string tar = TarWriter()
                        .file("keep/mine", "mine")  // keep was a lower directory
                        .file(".wh.keep", "")
                        .finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(fs::list_dir(Fd(::openat(root_.get(), "keep", O_RDONLY | O_DIRECTORY)).get()),
            std::vector<std::string>{"mine"});
}

TEST_F(ApplyTest, EntriesReplaceLowerDirectories) {
  std::string tar = TarWriter()
                        .file("tree", "a file where a directory was")
                        .symlink("keep", "elsewhere")
                        .dir("same", mode(0700))  // a directory over a directory: merged
                        .finish();
  auto r = unpack_tar(tar);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(read_in("tree"), "a file where a directory was");
  EXPECT_EQ(link_in("keep"), "elsewhere");
  EXPECT_EQ(read_in("same/old"), "old");
  EXPECT_EQ(lstat_in("same").st_mode & 07777, 0700u);
  // Within one layer, a non-empty directory is still never replaced.
  auto again = unpack_tar(TarWriter().file("n/x", "1").file("n", "2").finish());
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().message, "entry n: replaces a directory that is not empty");
}

// ---- hostile whiteouts: refused in both modes, nothing deleted ----

TEST_F(ApplyTest, RefusesHostileWhiteouts) {
  struct Case {
    std::string name, why;
  };
  std::vector<Case> cases = {
      {".wh.", "whiteout names nothing"},
      {"keep/.wh.", "whiteout names nothing"},
      {".wh..", "whiteout of . or .."},
      {"keep/.wh..", "whiteout of . or .."},
      {".wh...", "whiteout of . or .."},
      {"keep/old2/.wh...", "whiteout of . or .."},
      {".wh..wh.", "reserved whiteout name"},
      {"keep/.wh..wh..opq2", "reserved whiteout name"},
      {".wh..wh.keep", "reserved whiteout name"},
      {".wh.keep/x", "whiteout name used as a directory"},
      {"../outside/.wh.file", "path leaves the image root"},
      {"keep/../../outside/.wh.file", "path leaves the image root"},
      {"../.wh.outside", "path leaves the image root"},
      {"escape/.wh.file", "path goes through a symlink"},
      {"escape/.wh..wh..opq", "path goes through a symlink"},
      {"tree/l/.wh.file", "path goes through a symlink"},
      {"a/.wh.x", "path goes through something that is not a directory"},
  };
  std::string lower_state;
  for (WhiteoutMode m : {WhiteoutMode::kApply, WhiteoutMode::kOverlay}) {
    mode_ = m;
    for (const auto& c : cases) {
      expect_refused(TarWriter().file(c.name, "").finish(), "entry " + c.name + ": " + c.why);
      // A whiteout entry of another type is judged by its name all the same.
      expect_refused(TarWriter().dir(c.name).finish(), c.why);
      EXPECT_EQ(read_in("keep/old1"), "1") << c.name;
      EXPECT_EQ(read_in("a"), "lower a") << c.name;
      EXPECT_EQ(link_in("escape"), base_ + "/outside") << c.name;
    }
  }
}

}  // namespace
}  // namespace togo::image
