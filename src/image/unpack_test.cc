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

bool is_root() { return ::geteuid() == 0; }

struct Meta {
  mode_t mode = 0644;
  int64_t uid = 0, gid = 0;
  time_t mtime = 1500000000;
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
    archive_write_set_format_pax_restricted(a_);
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
    archive_entry_set_mtime(e, m.mtime, 0);
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
    opts.warn = [this](const std::string& line) { warnings_.push_back(line); };
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

}  // namespace
}  // namespace togo::image
