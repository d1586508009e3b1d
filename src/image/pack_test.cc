// Packs real trees, unpacks the archives with unpack() and compares the two
// trees entry by entry; turns real overlayfs upper directories into OCI
// layers and checks that stacking the layer gives the same merged view.
#include "image/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "base/fs.h"
#include "image/tree_compare_test_util.h"
#include "image/unpack.h"

namespace togo::image {
namespace {

using testing::snapshot_tree;

// Root of the initial user namespace. Root in a user namespace of its own
// (`unshare -r`) cannot chown to other ids, make devices or set trusted.*
// attributes: it runs the rootless paths.
bool is_root() {
  if (::geteuid() != 0) return false;
  auto map = fs::read_file(AT_FDCWD, "/proc/self/uid_map");
  return map && map->find("4294967295") != std::string::npos;
}

struct TarEntry {
  std::string name;
  mode_t type = 0;
  int64_t size = 0;
  std::string hardlink, symlink;
  std::vector<std::string> xattrs;
};

std::vector<TarEntry> list_tar(const std::string& tar) {
  std::vector<TarEntry> out;
  struct archive* ar = archive_read_new();
  archive_read_support_format_tar(ar);
  EXPECT_EQ(archive_read_open_memory(ar, tar.data(), tar.size()), ARCHIVE_OK);
  struct archive_entry* e;
  while (archive_read_next_header(ar, &e) == ARCHIVE_OK) {
    TarEntry t;
    t.name = archive_entry_pathname(e);
    t.type = archive_entry_filetype(e);
    t.size = archive_entry_size(e);
    if (archive_entry_hardlink(e)) t.hardlink = archive_entry_hardlink(e);
    if (archive_entry_symlink(e)) t.symlink = archive_entry_symlink(e);
    archive_entry_xattr_reset(e);
    const char* k;
    const void* v;
    size_t n;
    while (archive_entry_xattr_next(e, &k, &v, &n) == ARCHIVE_OK) t.xattrs.push_back(k);
    out.push_back(t);
  }
  archive_read_free(ar);
  return out;
}

std::vector<std::string> names_of(const std::vector<TarEntry>& entries) {
  std::vector<std::string> out;
  for (auto& e : entries) out.push_back(e.name);
  return out;
}

la_ssize_t append_to_string(struct archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

class PackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::umask(022);
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/togo-pack-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    ASSERT_EQ(::chmod(base_.c_str(), 0755), 0);
  }
  void TearDown() override { EXPECT_TRUE(fs::remove_tree(AT_FDCWD, base_)); }

  std::string at(const std::string& rel) const { return base_ + "/" + rel; }
  Fd open_dir(const std::string& rel) {
    Fd fd(::open(at(rel).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    EXPECT_TRUE(fd.valid()) << rel << ": " << strerror(errno);
    return fd;
  }
  void mkdirs(const std::string& rel) { ASSERT_TRUE(fs::make_dirs(at(rel), 0755)); }
  void write(const std::string& rel, const std::string& data, mode_t mode = 0644) {
    int fd = ::open(at(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    ASSERT_GE(fd, 0) << rel << ": " << strerror(errno);
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  void set_xattr(const std::string& rel, const char* key, const std::string& value) {
    ASSERT_EQ(::lsetxattr(at(rel).c_str(), key, value.data(), value.size(), 0), 0)
        << rel << " " << key << ": " << strerror(errno);
  }
  std::string get_xattr(const std::string& rel, const char* key) {
    char buf[256];
    ssize_t n = ::lgetxattr(at(rel).c_str(), key, buf, sizeof buf);
    return n < 0 ? "<none>" : std::string(buf, static_cast<size_t>(n));
  }
  struct stat lstat_of(const std::string& rel) {
    struct stat st = {};
    EXPECT_EQ(::lstat(at(rel).c_str(), &st), 0) << rel;
    return st;
  }

  Result<PackStats> pack_dir(const std::string& rel, std::string* tar, PackOptions opts = {}) {
    Fd root = open_dir(rel);
    struct archive* aw = archive_write_new();
    archive_write_set_format_pax(aw);
    archive_write_open(aw, tar, nullptr, append_to_string, nullptr);
    auto r = pack(aw, root.get(), opts);
    EXPECT_EQ(archive_write_close(aw), ARCHIVE_OK) << archive_error_string(aw);
    archive_write_free(aw);
    return r;
  }

  Result<UnpackStats> unpack_into(const std::string& tar, const std::string& rel,
                                  WhiteoutMode mode = WhiteoutMode::kOverlay) {
    if (::access(at(rel).c_str(), F_OK) != 0) mkdirs(rel);
    Fd root = open_dir(rel);
    struct archive* ar = archive_read_new();
    archive_read_support_format_tar(ar);
    EXPECT_EQ(archive_read_open_memory(ar, tar.data(), tar.size()), ARCHIVE_OK);
    UnpackOptions opts;
    opts.rootless = !is_root();
    opts.whiteouts = mode;
    auto r = unpack(ar, root.get(), opts);
    archive_read_free(ar);
    return r;
  }

  bool save(const std::string& name, const std::string& data) {
    Fd dir(::open(base_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return fs::write_file_atomic(dir.get(), name, data).has_value();
  }

  std::string snapshot(const std::string& rel) {
    Fd fd = open_dir(rel);
    return snapshot_tree(fd.get());
  }

  std::string base_;
};

// Distinct nanosecond times on everything, children first.
void stamp_times(const std::string& root) {
  std::vector<std::string> paths;
  std::function<void(const std::string&)> walk = [&](const std::string& dir) {
    for (const auto& n : fs::list_dir(Fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY)).get())) {
      std::string p = dir + "/" + n;
      struct stat st;
      if (::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) walk(p);
      paths.push_back(p);
    }
  };
  walk(root);
  paths.push_back(root);
  long ns = 1;
  for (const auto& p : paths) {
    struct timespec times[2] = {{1600000000, 0}, {1700000000 + ns, (ns * 7919) % 1000000000}};
    ns += 104729;
    EXPECT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << p;
  }
}

// v2 file capabilities: cap_net_bind_service, effective.
std::string net_bind_capability() {
  uint32_t words[5] = {0x02000000u | 1u, 1u << 10, 0, 0, 0};
  return std::string(reinterpret_cast<const char*>(words), sizeof words);
}

TEST_F(PackTest, RoundTripEveryKindOfEntry) {
  mkdirs("src/etc");
  mkdirs("src/bin");
  mkdirs("src/run");
  mkdirs("src/odd/ro");
  mkdirs("src/odd/sticky");
  mkdirs("src/odd/setgid");
  mkdirs("src/odd/exec-only");
  mkdirs("src/emptydir");
  mkdirs("src/deep/a/b/c");
  write("src/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  write("src/empty", "", 0600);
  write("src/odd/ro/inside", "in a read-only directory");
  write("src/deep/a/b/c/leaf", std::string(300000, 'L'), 0755);
  write("src/caf\xc3\xa9 with space", "utf-8 name");
  write("src/bin/tool", "elf", 04755);
  ASSERT_EQ(::link(at("src/bin/tool").c_str(), at("src/bin/tool2").c_str()), 0);
  ASSERT_EQ(::link(at("src/bin/tool").c_str(), at("src/tool3").c_str()), 0);
  ASSERT_EQ(::symlink("tool", at("src/bin/sl").c_str()), 0);
  ASSERT_EQ(::linkat(AT_FDCWD, at("src/bin/sl").c_str(), AT_FDCWD, at("src/bin/sl2").c_str(), 0),
            0);
  ASSERT_EQ(::symlink("etc/passwd", at("src/rel").c_str()), 0);
  ASSERT_EQ(::symlink("no/such/file", at("src/dangling").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/hostname", at("src/abs").c_str()), 0);
  ASSERT_EQ(::mkfifo(at("src/run/fifo").c_str(), 0620), 0);
  ASSERT_EQ(::chmod(at("src/run/fifo").c_str(), 0620), 0);

  // Sparse: 1 GiB with data at both ends and in the middle; one ending in a
  // hole; one that is all hole.
  constexpr off_t kGiB = off_t(1) << 30;
  {
    Fd f(::open(at("src/disk.img").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_EQ(::ftruncate(f.get(), kGiB), 0);
    ASSERT_EQ(::pwrite(f.get(), "head", 4, 0), 4);
    std::string mid(8192, 'm');
    ASSERT_EQ(::pwrite(f.get(), mid.data(), mid.size(), (600 << 20) + 12345), 8192);
    ASSERT_EQ(::pwrite(f.get(), "tail", 4, kGiB - 4), 4);
    Fd g(::open(at("src/hole-at-end").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640));
    ASSERT_EQ(::ftruncate(g.get(), 64 << 20), 0);
    ASSERT_EQ(::pwrite(g.get(), "x", 1, 1 << 20), 1);
    Fd h(::open(at("src/all-hole").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_EQ(::ftruncate(h.get(), 16 << 20), 0);
  }
  ASSERT_LT(lstat_of("src/disk.img").st_blocks * 512, 1 << 20) << "the test file system is not sparse";

  set_xattr("src/etc/passwd", "user.comment", "hello");
  set_xattr("src/etc", "user.dir", std::string("bin\0ary", 7));
  // Overlay attributes are never packed.
  set_xattr("src/emptydir", "user.overlay.opaque", "y");

  // A socket is left out.
  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::string sock_path = at("src/run/sock");
  ASSERT_LT(sock_path.size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sock_path.c_str());
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(sock);

  if (is_root()) {
    ASSERT_EQ(::mknod(at("src/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(::mknod(at("src/loop9").c_str(), S_IFBLK | 0660, makedev(7, 9)), 0);
    ASSERT_EQ(::mknod(at("src/whiteout-like").c_str(), S_IFCHR, makedev(0, 0)), 0);
    ASSERT_EQ(::chown(at("src/etc/passwd").c_str(), 1234, 5678), 0);
    ASSERT_EQ(::lchown(at("src/rel").c_str(), 4321, 8765), 0);
    ASSERT_EQ(::chown(at("src/odd/setgid").c_str(), 0, 5678), 0);
    ASSERT_EQ(::chown(at("src/bin/tool").c_str(), 0, 0), 0);
    set_xattr("src/etc/passwd", "trusted.t", "trusted value");
    set_xattr("src/bin/tool", "security.capability", net_bind_capability());
    set_xattr("src/dangling", "trusted.on-a-symlink", "yes");
    set_xattr("src/emptydir", "trusted.overlay.opaque", "y");
    write("src/odd/secret", "no one may read this", 0000);
    mkdirs("src/odd/closed/inner");
    write("src/odd/closed/inner/f", "behind a 0000 directory");
    ASSERT_EQ(::chmod(at("src/odd/closed").c_str(), 0000), 0);
  }
  ASSERT_EQ(::chmod(at("src/bin/tool").c_str(), 04755), 0);  // writing and chown clear setuid
  ASSERT_EQ(::chmod(at("src/odd/ro").c_str(), 0555), 0);
  ASSERT_EQ(::chmod(at("src/odd/sticky").c_str(), 01777), 0);
  ASSERT_EQ(::chmod(at("src/odd/setgid").c_str(), 02750), 0);
  ASSERT_EQ(::chmod(at("src/odd/exec-only").c_str(), 0711), 0);
  stamp_times(at("src"));

  std::string tar;
  auto stats = pack_dir("src", &tar);
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  EXPECT_LT(tar.size(), 1u << 20) << "holes were written into the archive";
  EXPECT_EQ(stats->sockets, 1u);
  EXPECT_EQ(stats->hardlinks, 3u);
  EXPECT_EQ(stats->whiteouts, 0u);
  // Data extents are whole blocks: a little more than the bytes written.
  EXPECT_GT(stats->bytes, 300000u);
  EXPECT_LT(stats->bytes, 600000u);

  // The same tree gives the same archive.
  std::string again;
  ASSERT_TRUE(pack_dir("src", &again).has_value());
  EXPECT_TRUE(tar == again) << "packing the same tree twice gave different archives";

  auto entries = list_tar(tar);
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries[0].name, "./");
  for (auto& e : entries) {
    EXPECT_EQ(e.name.find(".wh."), std::string::npos) << e.name;
    EXPECT_NE(e.name, "run/sock");
    for (auto& x : e.xattrs) EXPECT_EQ(x.find(".overlay."), std::string::npos) << e.name << " " << x;
    if (e.name == "bin/tool2" || e.name == "tool3") { EXPECT_EQ(e.hardlink, "bin/tool"); }
    if (e.name == "bin/sl2") { EXPECT_EQ(e.hardlink, "bin/sl"); }
    if (e.name == "abs") { EXPECT_EQ(e.symlink, "/etc/hostname"); }
  }

  auto r = unpack_into(tar, "dst");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  std::string want = snapshot("src");
  if (is_root()) {
    EXPECT_NE(want.find("bin/tool file 4755 0:0"), std::string::npos) << want;
    EXPECT_NE(want.find("xattr security.capability="), std::string::npos) << want;
    EXPECT_NE(want.find("etc/passwd file 0644 1234:5678"), std::string::npos) << want;
    EXPECT_NE(want.find("whiteout-like chr 0000 0:0"), std::string::npos) << want;
  }
  EXPECT_NE(want.find("bin/tool2 file 4755"), std::string::npos) << want;
  EXPECT_NE(want.find("links=3 first=bin/tool"), std::string::npos) << want;
  EXPECT_NE(want.find("links=2 first=bin/sl"), std::string::npos) << want;
  EXPECT_NE(want.find("odd/sticky dir 1777"), std::string::npos) << want;
  EXPECT_EQ(snapshot("dst"), want);

  struct stat big = lstat_of("dst/disk.img");
  EXPECT_EQ(big.st_size, kGiB);
  EXPECT_LT(big.st_blocks * 512, 1 << 20) << "the sparse file was filled in";
  EXPECT_EQ(lstat_of("dst/hole-at-end").st_size, 64 << 20);
  EXPECT_LT(lstat_of("dst/hole-at-end").st_blocks * 512, 1 << 20);
  EXPECT_EQ(lstat_of("dst/all-hole").st_size, 16 << 20);
  EXPECT_LT(lstat_of("dst/all-hole").st_blocks * 512, 64 << 10);
  EXPECT_EQ(get_xattr("dst/emptydir", "user.overlay.opaque"), "<none>");
  EXPECT_EQ(get_xattr("dst/emptydir", "trusted.overlay.opaque"), "<none>");
}

TEST_F(PackTest, NamesOrderPrefixAndFilter) {
  mkdirs("src/b/inner");
  mkdirs("src/a");
  mkdirs("src/skip/deeper");
  write("src/b/inner/x", "x");
  write("src/b/z", "z");
  write("src/a/y", "y");
  write("src/skip/deeper/f", "f");
  write("src/c", "c");
  PackOptions opts;
  opts.prefix = "./rootfs//";
  std::vector<std::string> asked;
  opts.filter = [&](const std::string& path, const struct stat& st) {
    asked.push_back(path);
    return !(path == "skip" && S_ISDIR(st.st_mode)) && path != "c";
  };
  std::string tar;
  auto stats = pack_dir("src", &tar, opts);
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  std::vector<std::string> want = {"rootfs/",    "rootfs/a/",         "rootfs/a/y",
                                   "rootfs/b/",  "rootfs/b/inner/",   "rootfs/b/inner/x",
                                   "rootfs/b/z"};
  EXPECT_EQ(names_of(list_tar(tar)), want);
  EXPECT_EQ(stats->filtered, 2u);
  EXPECT_EQ(stats->entries, want.size());
  std::vector<std::string> want_asked = {"a", "a/y", "b", "b/inner", "b/inner/x", "b/z", "c",
                                         "skip"};
  std::sort(asked.begin(), asked.end());
  EXPECT_EQ(asked, want_asked);

  std::string ignored;
  for (std::string bad : {"../up", "/abs", "a/../../b"}) {
    PackOptions o;
    o.prefix = bad;
    auto r = pack_dir("src", &ignored, o);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage) << bad;
  }
}

TEST_F(PackTest, NeverFollowsSymlinks) {
  mkdirs("outside");
  write("outside/secret", "host data");
  mkdirs("src");
  ASSERT_EQ(::symlink(at("outside").c_str(), at("src/link").c_str()), 0);
  ASSERT_EQ(::symlink("../outside/secret", at("src/rel").c_str()), 0);
  std::string tar;
  auto stats = pack_dir("src", &tar);
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  EXPECT_EQ(tar.find("host data"), std::string::npos);
  auto entries = list_tar(tar);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[1].name, "link");
  EXPECT_EQ(entries[1].type, AE_IFLNK);
  EXPECT_EQ(entries[2].type, AE_IFLNK);
}

TEST_F(PackTest, ErrorsNameThePath) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads everything";
  mkdirs("src/d");
  write("src/d/locked", "x", 0000);
  std::string tar;
  auto r = pack_dir("src", &tar);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "packing d/locked: opening locked: Permission denied");
}

// An upper directory made by hand: what overlayfs leaves there.
TEST_F(PackTest, OverlayUpperBecomesWhiteouts) {
  mkdirs("upper/opq/sub");
  mkdirs("upper/notopq");
  mkdirs("upper/plain");
  write("upper/opq/kept", "kept");
  write("upper/zz", "after the whiteouts");
  if (::mknod(at("upper/gone").c_str(), S_IFCHR, makedev(0, 0)) != 0)
    GTEST_SKIP() << "cannot create a 0/0 device here: " << strerror(errno);
  // overlayfs shares one whiteout inode between names.
  ASSERT_EQ(::link(at("upper/gone").c_str(), at("upper/also-gone").c_str()), 0);
  ASSERT_EQ(::mknod(at("upper/plain/x").c_str(), S_IFCHR, makedev(0, 0)), 0);
  set_xattr("upper/opq", "user.overlay.opaque", "y");
  set_xattr("upper/notopq", "user.overlay.opaque", "x");  // "may hold xwhiteouts", not opaque
  if (is_root()) set_xattr("upper/plain", "trusted.overlay.opaque", "y");

  PackOptions opts;
  opts.overlay_whiteouts = true;
  std::string tar;
  auto stats = pack_dir("upper", &tar, opts);
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  auto entries = list_tar(tar);
  std::vector<std::string> want = {"./", ".wh.also-gone", ".wh.gone", "notopq/", "opq/",
                                   "opq/.wh..wh..opq", "opq/kept", "opq/sub/", "plain/"};
  if (is_root()) want.push_back("plain/.wh..wh..opq");
  want.push_back("plain/.wh.x");
  want.push_back("zz");
  EXPECT_EQ(names_of(entries), want);
  for (auto& e : entries) {
    EXPECT_NE(e.type, AE_IFCHR) << e.name;
    EXPECT_TRUE(e.hardlink.empty()) << e.name;
    EXPECT_TRUE(e.xattrs.empty()) << e.name;
    if (e.name.find(".wh.") != std::string::npos) {
      EXPECT_EQ(e.type, AE_IFREG) << e.name;
      EXPECT_EQ(e.size, 0) << e.name;
    }
  }
  EXPECT_EQ(stats->whiteouts, 3u);
  EXPECT_EQ(stats->opaque_dirs, is_root() ? 2u : 1u);

  // Without the option the same tree is packed as it is (minus overlay
  // attributes): devices stay devices.
  std::string plain;
  ASSERT_TRUE(pack_dir("upper", &plain).has_value());
  for (auto& e : list_tar(plain)) {
    EXPECT_EQ(e.name.find(".wh."), std::string::npos) << e.name;
    if (e.name == "also-gone") { EXPECT_EQ(e.type, AE_IFCHR); }
    if (e.name == "gone") { EXPECT_EQ(e.hardlink, "also-gone"); }
  }
}

TEST_F(PackTest, OverlayStateOciCannotHold) {
  mkdirs("upper/moved");
  write("upper/meta", "");
  set_xattr("upper/moved", "user.overlay.redirect", "/old");
  PackOptions opts;
  opts.overlay_whiteouts = true;
  std::string tar;
  auto r = pack_dir("upper", &tar, opts);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message,
            "packing moved: an overlay redirect (a renamed directory) cannot be written as an OCI "
            "layer");
  ASSERT_EQ(::removexattr(at("upper/moved").c_str(), "user.overlay.redirect"), 0);
  set_xattr("upper/meta", "user.overlay.metacopy", "");
  tar.clear();
  r = pack_dir("upper", &tar, opts);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("packing meta: an overlay metacopy file"), std::string::npos)
      << r.error().message;
}

// ---- a real overlayfs ----

// Runs `fn` in a child with its own mount namespace, and when not root a
// user namespace where the caller is root. Returns "" or why it failed.
std::string in_mount_namespace(const std::function<std::string()>& fn) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) return "pipe failed";
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    auto say = [&](const std::string& msg) {
      ssize_t ignored = ::write(fds[1], msg.data(), msg.size());
      (void)ignored;
      ::_exit(0);
    };
    auto put = [](const char* file, const std::string& text) {
      int fd = ::open(file, O_WRONLY | O_CLOEXEC);
      if (fd < 0) return false;
      bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
      ::close(fd);
      return ok;
    };
    if (::unshare(CLONE_NEWNS | (uid == 0 ? 0 : CLONE_NEWUSER)) < 0)  // root in a userns: no need
      say(std::string("unshare: ") + strerror(errno));
    if (uid != 0 && (!put("/proc/self/setgroups", "deny") ||
                     !put("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n") ||
                     !put("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1\n")))
      say(std::string("mapping ids: ") + strerror(errno));
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
      say(std::string("making mounts private: ") + strerror(errno));
    say(fn());
  }
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    return "fork failed";
  }
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return "the child died";
  return out;
}

TEST_F(PackTest, OverlayRoundTripThroughARealMount) {
  // The lower layer, as an image would have it.
  mkdirs("lower/d/old2");
  mkdirs("lower/e");
  mkdirs("lower/untouched");
  write("lower/a", "deleted later");
  write("lower/keep", "changed later");
  write("lower/d/old1", "hidden by the opaque directory");
  write("lower/d/old2/deep", "also hidden");
  write("lower/e/x", "deleted later");
  write("lower/e/stays", "stays");
  write("lower/untouched/f", "f");
  stamp_times(at("lower"));
  for (auto d : {"upper", "work", "m1", "m2"}) mkdirs(d);
  std::string userxattr = is_root() ? "" : ",userxattr";

  // Changes made through overlayfs: a deleted file, a directory removed and
  // made again (opaque), a deleted file in a kept directory, a changed file.
  std::string why = in_mount_namespace([&]() -> std::string {
    std::string options = "lowerdir=" + at("lower") + ",upperdir=" + at("upper") +
                          ",workdir=" + at("work") + userxattr;
    if (::mount("overlay", at("m1").c_str(), "overlay", 0, options.c_str()) < 0)
      return "SKIP mounting overlayfs (" + options + "): " + strerror(errno);
    if (::unlink(at("m1/a").c_str()) < 0) return "unlink a";
    if (!fs::remove_tree(AT_FDCWD, at("m1/d"))) return "removing d";
    if (::mkdir(at("m1/d").c_str(), 0750) < 0) return "mkdir d";
    if (::unlink(at("m1/e/x").c_str()) < 0) return "unlink e/x";
    int fd = ::open(at("m1/d/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ::write(fd, "new", 3) != 3) return "writing d/new";
    ::close(fd);
    fd = ::open(at("m1/keep").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "!", 1) != 1) return "appending to keep";
    ::close(fd);
    Fd m(::open(at("m1").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!save("merged1.txt", snapshot_tree(m.get())))
      return "writing the snapshot";
    return "";
  });
  if (why.starts_with("SKIP")) GTEST_SKIP() << why;
  ASSERT_EQ(why, "");
  ASSERT_TRUE(S_ISCHR(lstat_of("upper/a").st_mode)) << "overlayfs made no whiteout";

  PackOptions opts;
  opts.overlay_whiteouts = true;
  std::string tar;
  auto stats = pack_dir("upper", &tar, opts);
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  std::vector<std::string> want = {"./",   ".wh.a",  "d/",     "d/.wh..wh..opq",
                                   "d/new", "e/",    "e/.wh.x", "keep"};
  EXPECT_EQ(names_of(list_tar(tar)), want);
  EXPECT_EQ(stats->whiteouts, 2u);
  EXPECT_EQ(stats->opaque_dirs, 1u);

  // The layer unpacked for overlayfs, stacked on the lower one.
  auto r = unpack_into(tar, "layer", WhiteoutMode::kOverlay);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->whiteouts, 2u);
  EXPECT_EQ(r->opaque_dirs, 1u);
  EXPECT_TRUE(S_ISCHR(lstat_of("layer/a").st_mode));
  EXPECT_EQ(lstat_of("layer/a").st_rdev, makedev(0, 0));
  EXPECT_EQ(get_xattr("layer/d", "user.overlay.opaque"), "y");
  if (is_root()) { EXPECT_EQ(get_xattr("layer/d", "trusted.overlay.opaque"), "y"); }
  why = in_mount_namespace([&]() -> std::string {
    std::string options = "lowerdir=" + at("layer") + ":" + at("lower") + userxattr;
    if (::mount("overlay", at("m2").c_str(), "overlay", MS_RDONLY, options.c_str()) < 0)
      return "mounting the stacked layers (" + options + "): " + strerror(errno);
    Fd m(::open(at("m2").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!save("merged2.txt", snapshot_tree(m.get())))
      return "writing the snapshot";
    return "";
  });
  ASSERT_EQ(why, "");
  std::string merged1 = fs::read_file(AT_FDCWD, at("merged1.txt")).value_or("?");
  std::string merged2 = fs::read_file(AT_FDCWD, at("merged2.txt")).value_or("?");
  EXPECT_EQ(merged1.find("\na "), std::string::npos) << merged1;
  EXPECT_EQ(merged1.find("old1"), std::string::npos) << merged1;
  EXPECT_NE(merged1.find("e/stays"), std::string::npos) << merged1;
  EXPECT_EQ(merged2, merged1);

  // The same layer applied to a merged copy of the lower one gives the same
  // tree again, without overlayfs.
  std::string lower_tar;
  ASSERT_TRUE(pack_dir("lower", &lower_tar).has_value());
  ASSERT_TRUE(unpack_into(lower_tar, "applied", WhiteoutMode::kApply).has_value());
  r = unpack_into(tar, "applied", WhiteoutMode::kApply);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->whiteouts, 2u);
  // Seen from the same user namespace as the merged views, for the owners.
  why = in_mount_namespace([&]() -> std::string {
    Fd m(::open(at("applied").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return save("applied.txt", snapshot_tree(m.get())) ? "" : "writing the snapshot";
  });
  ASSERT_EQ(why, "");
  EXPECT_EQ(fs::read_file(AT_FDCWD, at("applied.txt")).value_or("?"), merged1);
}

}  // namespace
}  // namespace togo::image
