// `togo export` and `togo import`: an env's writable layer survives the
// round trip entry by entry (contents, modes, owners, times, xattrs,
// hardlinks, symlinks, sparse files, fifos, whiteouts, opaque directories),
// through files and pipes, with and without its image; damaged files and
// name conflicts change nothing.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <regex>

#include "fixture.h"
#include "image/tree_compare_test_util.h"

namespace togo::test {
namespace {

// The image: the test rootfs plus files for the env to delete and replace.
constexpr const char* kImage =
    "base(); dir('opt'); dir('opt/old'); file('opt/old/x', b'lower'); "
    "file('opt/old/z', b'lower too'); file('opt/gone', b'bye'); file('opt/kept', b'kept')";

// What the env does through overlayfs: a whiteout (a deleted image file),
// an opaque directory (an image directory replaced), a copied-up file.
constexpr const char* kInEnv =
    "rm /opt/gone && rm -r /opt/old && mkdir /opt/old && echo new > /opt/old/y && "
    "echo extra:x:5:5::/:/bin/false >> /etc/passwd";

// What is written straight into the stopped env's upper directory: every
// kind of entry. argv: upper, "1" when root.
constexpr const char* kPopulate = R"PY(
import os, stat, sys
up, root = sys.argv[1], sys.argv[2] == '1'
d = up + '/data'
os.mkdir(d, 0o755)
def w(p, data, mode=0o644):
    with open(p, 'wb') as f: f.write(data)
    os.chmod(p, mode)
w(d + '/regular', b'hello\n' * 1000)
w(d + '/empty', b'')
with open(d + '/sparse', 'wb') as f:  # 1 GiB, three small extents of data
    f.write(b'head'); f.seek(512 << 20); f.write(b'middle'); f.seek((1 << 30) - 4); f.write(b'tail')
os.link(d + '/regular', d + '/hard1')
os.mkdir(d + '/sub', 0o755)
os.link(d + '/regular', d + '/sub/hard2')
os.symlink('regular', d + '/sym')
os.symlink('/no/such/file', d + '/dangling')
os.symlink('../data/sub', d + '/symdir')
os.mkfifo(d + '/fifo', 0o640)
w(d + '/private', b'secret', 0o700)
w(d + '/suid', b'#!/bin/sh\n', 0o4755)
w(d + '/sgid', b'x', 0o2750)
w(d + '/nothing', b'0', 0o000)
os.mkdir(d + '/closed', 0o700)
w(d + '/closed/inside', b'in')
os.mkdir(d + '/sticky'); os.chmod(d + '/sticky', 0o1777)
os.setxattr(d + '/regular', 'user.test', b'value')
os.setxattr(d + '/sub', 'user.dir', b'\x00\x01binary')
os.setxattr(d + '/empty', 'user.empty', b'')
if root:
    w(d + '/owned', b'theirs'); os.chown(d + '/owned', 1234, 5678)
    os.lchown(d + '/sym', 4321, 8765)
    os.mkdir(d + '/ownedir'); os.chown(d + '/ownedir', 1234, 5678)
    os.mknod(d + '/null', 0o666 | stat.S_IFCHR, os.makedev(1, 3))
)PY";

// The merged view from inside, for comparing two envs. The files togo
// generates at each start (hostname, hosts, resolv.conf) are left out.
constexpr const char* kListing =
    "busybox find /data /opt /etc | busybox sort | while read f; do "
    "case $f in /etc/hostname|/etc/hosts|/etc/resolv.conf) continue;; esac; "
    "busybox stat -c '%n %F %a %u:%g %s %Y' \"$f\"; "
    "if [ -L \"$f\" ]; then echo \"  -> $(readlink \"$f\")\"; "
    "elif [ -f \"$f\" ] && [ \"${f##*/}\" != sparse ]; then busybox md5sum < \"$f\"; fi; done";

class ExportTest : public TogoTest {
 protected:
  /// `togo --store <s> args...` as the test's user.
  RunResult tgs(const std::string& s, const std::vector<std::string>& args,
                const std::string& input = {}) const {
    return togo(s, args, opts(input, 120));
  }

  /// The id of env `name` in store `s`.
  std::string env_id(const std::string& s, const std::string& name) const {
    RunResult r = tgs(s, {"ls", "--json"});
    EXPECT_EQ(r.status, 0) << describe(r);
    std::smatch m;
    std::regex re("\\{\"name\":\"" + name + "\",\"id\":\"([0-9a-f]{16})\"");
    if (!std::regex_search(r.out, m, re)) {
      ADD_FAILURE() << "no env " << name << " in " << r.out;
      return "";
    }
    return m[1];
  }

  std::string env_dir(const std::string& s, const std::string& name) const {
    return s + "/envs/" + env_id(s, name);
  }

  /// The env "dev" from kImage, changed in the env and then on disk.
  void make_rich_env() {
    std::string tar = sub("img.tar");
    ASSERT_NO_FATAL_FAILURE(make_tar(tar, kImage));
    ASSERT_NO_FATAL_FAILURE(import_image(tar, "img"));
    ASSERT_NO_FATAL_FAILURE(create_env("dev", "img"));
    RunResult r = sh("dev", kInEnv);
    ASSERT_EQ(r.status, 0) << describe(r);
    std::string upper = env_dir(store(), "dev") + "/upper";
    r = run({"python3", "-c", kPopulate, upper, rootless() ? "0" : "1"}, opts());
    ASSERT_EQ(r.status, 0) << describe(r);
    // Nanosecond times, children before their directories.
    r = run({"sh", "-c",
             "find \"$0\"/data -depth -exec touch -h -d '2001-02-03 04:05:06.123456789' {} + && "
             "touch -h -d '1999-12-31 23:59:59.987654321' \"$0\"/data/sym \"$0\"/data/regular && "
             "touch -d '2020-06-07 08:09:10.000000001' \"$0\"/data/sub",
             upper},
            opts());
    ASSERT_EQ(r.status, 0) << describe(r);
  }

  /// The upper (or rootfs) tree of an env as snapshot_tree lists it, with
  /// the times of whiteouts left out: overlayfs makes them when the file is
  /// deleted, the import when it is unpacked.
  static std::string tree(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return "cannot open " + dir;
    std::string snap = image::testing::snapshot_tree(fd);
    ::close(fd);
    std::string out;
    for (auto& line : lines_of(snap)) {
      std::vector<std::string> f;
      size_t at = 0;
      for (size_t sp; (sp = line.find(' ', at)) != std::string::npos; at = sp + 1)
        f.push_back(line.substr(at, sp - at));
      f.push_back(line.substr(at));
      if (f.size() > 5 && f[1] == "chr" && f[5] == "0:0") {
        // overlayfs links its whiteouts to one shared inode: an
        // implementation detail, not a hardlink anyone made.
        f[4] = "<whiteout>";
        if (f.size() > 7 && f[6].starts_with("links=")) f.erase(f.begin() + 6, f.begin() + 8);
      }
      for (size_t i = 0; i < f.size(); i++) out += (i ? " " : "") + f[i];
      out += "\n";
    }
    return out;
  }

  static bool opaque(const std::string& dir) {
    for (const char* key : {"user.overlay.opaque", "trusted.overlay.opaque"}) {
      char v[8] = {};
      if (::lgetxattr(dir.c_str(), key, v, sizeof v) == 1 && v[0] == 'y') return true;
    }
    return false;
  }

  /// Everything a failed import must not have changed.
  std::string state(const std::string& s) const {
    std::string out;
    for (const char* d : {"envs", "layers", "blobs/sha256", "tmp"}) {
      out += std::string(d) + ":";
      for (auto& n : list_dir(s + "/" + d)) out += " " + n;
      out += "\n";
    }
    out += tgs(s, {"ls", "--json"}).out + tgs(s, {"image", "ls", "--json"}).out;
    return out;
  }

  std::string listing(const std::string& s, const std::string& env) const {
    RunResult r = tgs(s, {"run", env, "--", "sh", "-c", kListing});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_NE(r.out.find("/data/regular"), std::string::npos) << r.out;
    return r.out;
  }
};
TOGO_AS_ROOT_AND_ROOTLESS(ExportTest);

TEST_P(ExportTest, RoundTripKeepsEveryEntry) {
  ASSERT_NO_FATAL_FAILURE(make_rich_env());
  std::string file = sub("dev.togo");
  RunResult ex = tg({"export", "dev", file});
  ASSERT_EQ(ex.status, 0) << describe(ex);
  EXPECT_EQ(ex.out, file + "\n");
  struct stat sb;
  ASSERT_EQ(::stat(file.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u) << "an export is private";
  EXPECT_LT(sb.st_size, 64 << 20) << "the sparse file's holes are not written";

  std::string upper = env_dir(store(), "dev") + "/upper";
  std::string want = tree(upper);
  EXPECT_NE(want.find("data/sparse file"), std::string::npos) << want;
  EXPECT_NE(want.find("opt/gone chr 0000"), std::string::npos) << "a whiteout\n" << want;
  ASSERT_TRUE(opaque(upper + "/opt/old")) << "overlayfs made /opt/old opaque";
  std::string view = listing(store(), "dev");

  // Into another store: the image comes along.
  std::string other = sub("store2");
  RunResult im = tgs(other, {"import", file});
  ASSERT_EQ(im.status, 0) << describe(im);
  EXPECT_EQ(im.out, "dev\n");
  std::string got_dir = env_dir(other, "dev");
  EXPECT_EQ(tree(got_dir + "/upper"), want);
  EXPECT_TRUE(opaque(got_dir + "/upper/opt/old"));
  for (const char* d : {"work", "mount", "run"}) EXPECT_TRUE(exists(got_dir + "/" + d)) << d;
  ASSERT_EQ(::stat((got_dir + "/upper/data/sparse").c_str(), &sb), 0);
  EXPECT_LT(sb.st_blocks * 512, 8 << 20) << "still sparse";
  EXPECT_EQ(list_dir(other + "/tmp"), std::vector<std::string>{});
  EXPECT_EQ(listing(other, "dev"), view);
  EXPECT_NE(tgs(other, {"image", "ls"}).out.find("img "), std::string::npos)
      << "the image keeps its name";

  // Into the same store under a new name: the image is there already.
  auto layers = list_dir(store() + "/layers");
  RunResult again = tg({"import", file, "dev2"});
  ASSERT_EQ(again.status, 0) << describe(again);
  EXPECT_EQ(again.out, "dev2\n");
  EXPECT_EQ(list_dir(store() + "/layers"), layers);
  EXPECT_EQ(tree(env_dir(store(), "dev2") + "/upper"), want);
  EXPECT_EQ(listing(store(), "dev2"), view);
}

TEST_P(ExportTest, EveryCompressionAndAPipe) {
  ASSERT_NO_FATAL_FAILURE(make_rich_env());
  std::string want = tree(env_dir(store(), "dev") + "/upper");
  for (const char* c : {"gzip", "none"}) {
    SCOPED_TRACE(c);
    std::string file = sub(std::string("dev.") + c);
    RunResult ex = tg({"export", "dev", file, "--compression", c});
    ASSERT_EQ(ex.status, 0) << describe(ex);
    std::string s = sub(std::string("store-") + c);
    RunResult im = tgs(s, {"import", file});
    ASSERT_EQ(im.status, 0) << describe(im);
    EXPECT_EQ(tree(env_dir(s, "dev") + "/upper"), want);
  }
  auto plain = read_file(sub("dev.none")).value_or("");
  EXPECT_EQ(plain.substr(0, 16), "togo-export.json") << "a plain tar, the header first";

  // export - | import -
  std::string s = sub("store-pipe");
  std::string cmd = "'" + togo_bin() + "' --store '" + store() + "' export dev - | '" + togo_bin() +
                    "' --store '" + s + "' import - piped";
  RunResult r = run({"sh", "-c", cmd}, opts());
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "piped\n");
  EXPECT_EQ(tree(env_dir(s, "piped") + "/upper"), want);
}

TEST_P(ExportTest, CopyModeEnvKeepsItsPrivateRoot) {
  std::string tar = sub("img.tar");
  ASSERT_NO_FATAL_FAILURE(make_tar(tar, kImage));
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "img"));
  ASSERT_NO_FATAL_FAILURE(create_env("cp", "img", {"--rootfs", "copy"}));
  RunResult r = sh("cp", "rm /opt/gone && echo changed > /opt/kept && ln -s kept /opt/link");
  ASSERT_EQ(r.status, 0) << describe(r);
  std::string want = tree(env_dir(store(), "cp") + "/rootfs");
  std::string file = sub("cp.togo");
  ASSERT_EQ(tg({"export", "cp", file}).status, 0);
  std::string s = sub("store2");
  RunResult im = tgs(s, {"import", file});
  ASSERT_EQ(im.status, 0) << describe(im);
  EXPECT_EQ(tree(env_dir(s, "cp") + "/rootfs"), want);
  RunResult in = tgs(s, {"run", "cp", "--", "sh", "-c", "cat /opt/kept; ls /opt"});
  EXPECT_EQ(in.out, "changed\nkept\nlink\nold\n") << describe(in);
  RunResult ls = tgs(s, {"ls", "--json"});
  EXPECT_NE(ls.out.find("\"rootfs\":\"copy\""), std::string::npos) << ls.out;
}

TEST_P(ExportTest, SettingsComeAlong) {
  ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  RunResult c = tg({"config", "dev", "env+=GREETING=hello", "hostname=box", "network=none"});
  ASSERT_EQ(c.status, 0) << describe(c);
  std::string file = sub("dev.togo");
  ASSERT_EQ(tg({"export", "dev", file}).status, 0);
  std::string s = sub("store2");
  ASSERT_EQ(tgs(s, {"import", file, "other"}).status, 0);
  EXPECT_EQ(tgs(s, {"config", "other"}).out, tg({"config", "dev"}).out);
  RunResult in = tgs(s, {"run", "other", "--", "sh", "-c", "echo $GREETING; hostname"});
  EXPECT_EQ(in.out, "hello\nbox\n") << describe(in);
}

TEST_P(ExportTest, WithoutTheImage) {
  ASSERT_NO_FATAL_FAILURE(make_rich_env());
  std::string full = sub("full.togo"), slim = sub("slim.togo");
  ASSERT_EQ(tg({"export", "dev", full}).status, 0);
  RunResult ex = tg({"export", "dev", slim, "--no-image"});
  ASSERT_EQ(ex.status, 0) << describe(ex);
  EXPECT_LT(read_file(slim)->size() + 100000, read_file(full)->size())
      << "the busybox layer is left out";

  // A store without the image: refused, and nothing changes.
  std::string lacks = sub("lacks");
  ASSERT_EQ(tgs(lacks, {"image", "import", test_rootfs_tar(), "--name", "other"}).status, 0);
  std::string before = state(lacks);
  RunResult r = tgs(lacks, {"import", slim});
  EXPECT_EQ(r.status, 3) << describe(r);
  EXPECT_TRUE(one_line_error(r, "not in this store"));
  EXPECT_NE(r.err.find("import the image first"), std::string::npos) << r.err;
  EXPECT_EQ(state(lacks), before);

  // A store with it (the same tarball gives the same image id).
  std::string has = sub("has");
  ASSERT_EQ(tgs(has, {"image", "import", sub("img.tar"), "--name", "mine"}).status, 0);
  RunResult ok = tgs(has, {"import", slim});
  ASSERT_EQ(ok.status, 0) << describe(ok);
  EXPECT_EQ(tree(env_dir(has, "dev") + "/upper"), tree(env_dir(store(), "dev") + "/upper"));
  EXPECT_EQ(list_dir(has + "/layers").size(), 1u);
  RunResult in = tgs(has, {"run", "dev", "--", "cat", "/opt/old/y", "/opt/kept"});
  EXPECT_EQ(in.out, "new\nkept") << describe(in);
}

TEST_P(ExportTest, DamagedFilesChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(make_rich_env());
  // Incompressible data at the end of the tree, where flips at 90% land:
  // there only the digest of the tree (or zstd's checksum) can tell.
  RunResult rnd = sh("dev", "dd if=/dev/urandom of=/data/random bs=65536 count=32 2>/dev/null");
  ASSERT_EQ(rnd.status, 0) << describe(rnd);
  std::string file = sub("dev.togo");
  ASSERT_EQ(tg({"export", "dev", file}).status, 0);
  std::string gz = sub("dev.gz"), plain = sub("dev.tar");
  ASSERT_EQ(tg({"export", "dev", gz, "--compression", "gzip"}).status, 0);
  ASSERT_EQ(tg({"export", "dev", plain, "--compression", "none"}).status, 0);
  std::string target = sub("target");
  ASSERT_EQ(tgs(target, {"image", "import", test_rootfs_tar(), "--name", "base"}).status, 0);
  ASSERT_EQ(tgs(target, {"create", "keep", "--image", "base"}).status, 0);
  std::string before = state(target);

  struct Case {
    std::string name, bytes;
  };
  std::vector<Case> cases;
  for (const std::string& f : {file, gz, plain}) {
    std::string good = read_file(f).value_or("");
    ASSERT_GT(good.size(), 1000u);
    for (double at : {0.3, 0.6, 0.9}) {
      std::string bad = good;
      size_t pos = static_cast<size_t>(static_cast<double>(bad.size()) * at);
      for (size_t i = pos; i < pos + 16; i++) bad[i] = static_cast<char>(bad[i] ^ 0x5a);
      cases.push_back({f + " flipped at " + std::to_string(at), bad});
    }
    for (double at : {0.02, 0.5, 0.99})
      cases.push_back({f + " cut at " + std::to_string(at),
                       good.substr(0, static_cast<size_t>(static_cast<double>(good.size()) * at))});
  }
  cases.push_back({"empty", ""});
  cases.push_back({"a rootfs tarball", read_file(test_rootfs_tar()).value_or("")});
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string path = sub("bad");
    write_file(path, c.bytes);
    ::chmod(path.c_str(), 0644);
    RunResult r = tgs(target, {"import", path, "x"});
    EXPECT_EQ(r.status, 5) << describe(r);
    EXPECT_TRUE(one_line_error(r));
    EXPECT_EQ(state(target), before);
  }
  // The same through a pipe.
  std::string good = read_file(file).value_or("");
  RunResult r = tgs(target, {"import", "-", "x"}, good.substr(0, good.size() / 2));
  EXPECT_EQ(r.status, 5) << describe(r);
  EXPECT_TRUE(one_line_error(r));
  EXPECT_EQ(state(target), before);
}

TEST_P(ExportTest, ConflictsAndRefusals) {
  ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  std::string file = sub("dev.togo");
  ASSERT_EQ(tg({"export", "dev", file}).status, 0);
  std::string before = state(store());
  RunResult r = tg({"import", file});
  EXPECT_EQ(r.status, 4) << describe(r);
  EXPECT_TRUE(one_line_error(r, "exists"));
  EXPECT_NE(r.err.find("togo import FILE NEWNAME"), std::string::npos) << r.err;
  EXPECT_EQ(state(store()), before);

  r = tg({"import", file, "no/slash"});
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_TRUE(one_line_error(r, "not a valid environment name"));

  r = tg({"export", "nosuch", sub("x.togo")});
  EXPECT_EQ(r.status, 3) << describe(r);
  EXPECT_TRUE(one_line_error(r, "no such environment"));
  EXPECT_FALSE(exists(sub("x.togo")));

  r = tg({"export", "dev", sub("x.togo"), "--compression", "xz"});
  EXPECT_EQ(r.status, 2) << describe(r);

  // A running env is refused; the half-written file is not left behind.
  Background bg(
      {togo_bin(), "--store", store(), "run", "dev", "--", "sh", "-c", "echo started; sleep 30"},
      as_uid());
  ASSERT_TRUE(bg.wait_for_line("started", 20)) << bg.err();
  ASSERT_EQ(state_of("dev"), "running") << bg.err();
  r = tg({"export", "dev", sub("run.togo")});
  EXPECT_EQ(r.status, 4) << describe(r);
  EXPECT_TRUE(one_line_error(r, "running"));
  EXPECT_NE(r.err.find("togo stop dev"), std::string::npos) << r.err;
  for (auto& n : list_dir(sub("")))
    EXPECT_EQ(n.find(".togo-"), std::string::npos) << "a temporary file was left: " << n;
}

// An export that fails half-way (here on a damaged blob in the store, found
// once its bytes are written) keeps FILE as it was and leaves nothing
// beside it; `togo image export` too.
TEST_P(ExportTest, AFailedExportLeavesFileAsItWas) {
  ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  auto blobs = list_dir(store() + "/blobs/sha256");
  ASSERT_EQ(blobs.size(), 1u);
  std::string blob = store() + "/blobs/sha256/" + blobs[0];
  std::string bytes = read_file(blob).value_or("");
  ASSERT_GT(bytes.size(), 1000u);
  bytes.back() = static_cast<char>(bytes.back() ^ 1);
  struct stat sb;
  ASSERT_EQ(::stat(blob.c_str(), &sb), 0);
  ASSERT_EQ(::chmod(blob.c_str(), 0644), 0);
  write_file(blob, bytes);
  ASSERT_EQ(::chmod(blob.c_str(), sb.st_mode & 07777), 0);

  std::string dir = sub("out");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  if (as_uid()) {
    ASSERT_EQ(::chown(dir.c_str(), *as_uid(), *as_uid()), 0);
  }
  std::string file = dir + "/old.tar";
  write_file(file, "the file as it was\n");
  for (auto args : {std::vector<std::string>{"export", "dev", file},
                    std::vector<std::string>{"image", "export", "test", file}}) {
    SCOPED_TRACE(args[0]);
    RunResult r = tg(args);
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_TRUE(one_line_error(r, blobs[0])) << "the error names the damaged layer";
    EXPECT_NE(r.err.find("togo fsck"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(file).value_or(""), "the file as it was\n");
    EXPECT_EQ(list_dir(dir), std::vector<std::string>{"old.tar"}) << "a temporary file was left";
  }
}

TEST_P(ExportTest, OwnersAreThoseTheEnvSees) {
  // Files written inside the env belong to root inside it; rootless, that is
  // the user on the host, and the export says root.
  ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  RunResult r = sh("dev", "echo hi > /root/mine && chown 0:0 /root/mine");
  ASSERT_EQ(r.status, 0) << describe(r);
  std::string file = sub("dev.togo");
  ASSERT_EQ(tg({"export", "dev", file, "--compression", "none"}).status, 0);
  RunResult list = run({"tar", "--numeric-owner", "-tvf", file, "upper/root/mine"});
  ASSERT_EQ(list.status, 0) << describe(list);
  EXPECT_NE(list.out.find(" 0/0 "), std::string::npos) << list.out;
  if (rootless()) {
    struct stat sb;
    ASSERT_EQ(::stat((env_dir(store(), "dev") + "/upper/root/mine").c_str(), &sb), 0);
    EXPECT_EQ(sb.st_uid, host_uid()) << "on the host the file is the user's";
  }
}

TEST_P(ExportTest, OwnersBetweenRootAndRootlessStores) {
  if (!running_as_root()) GTEST_SKIP() << "runs togo both as root and as a user: needs root";
  // The other side runs togo as root when this one is rootless, and the
  // reverse; its directory belongs to whoever it runs as.
  std::optional<uid_t> other_uid;
  if (!rootless()) other_uid = unprivileged_uid();
  std::string dir = sub("other");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  uid_t owner = other_uid ? *other_uid : 0;
  ASSERT_EQ(::chown(dir.c_str(), owner, owner), 0);
  RunOptions o;
  o.as_uid = other_uid;
  auto other = [&](const std::vector<std::string>& args) { return togo(dir + "/store", args, o); };
  ASSERT_EQ(other({"image", "import", test_rootfs_tar(), "--name", "test"}).status, 0);
  ASSERT_EQ(other({"create", "dev", "--image", "test"}).status, 0);
  std::string script = "echo hi > /root/mine";
  if (rootless()) script += " && echo x > /root/theirs && chown 1234:5678 /root/theirs";
  RunResult r = other({"run", "dev", "--", "sh", "-c", script});
  ASSERT_EQ(r.status, 0) << describe(r);
  std::string file = dir + "/dev.togo";
  ASSERT_EQ(other({"export", "dev", file}).status, 0);
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);

  RunResult im = tg({"import", file});
  ASSERT_EQ(im.status, 0) << describe(im);
  RunResult in = sh("dev", "stat -c '%n %u:%g' /root/*");
  if (rootless()) {
    // Owners other than root cannot be kept without subordinate ids: the
    // file of 1234 becomes the user's (root inside), and a warning says so.
    EXPECT_EQ(in.out, "/root/mine 0:0\n/root/theirs 0:0\n") << describe(in);
    EXPECT_NE(im.err.find("belonged to users other than root"), std::string::npos) << im.err;
  } else {
    // Written rootless as root inside, the file is the user's on that
    // host, and root's in the export and here.
    EXPECT_EQ(in.out, "/root/mine 0:0\n") << describe(in);
    struct stat sb;
    ASSERT_EQ(::stat((env_dir(store(), "dev") + "/upper/root/mine").c_str(), &sb), 0);
    EXPECT_EQ(sb.st_uid, 0u);
  }
}

}  // namespace
}  // namespace togo::test
