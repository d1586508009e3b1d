// Crafted tarballs that try to write outside the image root: each import is
// refused with one line naming the entry, writes nothing outside, and leaves
// the store as it was.
#include <sys/stat.h>

#include "fixture.h"

namespace togo::test {
namespace {

struct Escape {
  const char* name;
  /// Python for make_tar(); ARGS[0] is the outside directory (absolute),
  /// ARGS[1] the same path without its leading '/'.
  const char* body;
  /// What the error line must name ("OUT" stands for the outside directory).
  const char* entry;
};

const Escape kEscapes[] = {
    {"AbsolutePath", "file(ARGS[0] + '/abs', b'pwned')", "OUT/abs"},
    {"DotDot", "file('../escape', b'pwned')", "../escape"},
    {"DotDotToOutside", "file('../' * 40 + ARGS[1] + '/deep', b'pwned')", "OUT/deep"},
    {"DotDotInTheMiddle", "dir('a'); file('a/../../escape', b'pwned')", "a/../../escape"},
    {"ThroughAbsoluteSymlink", "sym('l', ARGS[0]); file('l/pwned', b'pwned')", "l/pwned"},
    {"ThroughRelativeSymlink", "sym('l', '../' * 40 + ARGS[1]); file('l/pwned', b'pwned')",
     "l/pwned"},
    {"ThroughSymlinkUp", "sym('up', '..'); file('up/pwned', b'pwned')", "up/pwned"},
    {"ThroughSymlinkedDirDeep",
     "dir('d'); sym('d/l', ARGS[0]); dir('d/l/sub'); file('d/l/sub/pwned', b'pwned')", "d/l/sub"},
    {"HardlinkToDotDot", "hard('h', '../' * 40 + ARGS[1] + '/marker')", "h"},
    {"HardlinkToOutsideRelative", "hard('h', '../outside/file')", "h"},
    {"HardlinkToAbsolutePath", "hard('h', '/etc/hostname')", "h"},
    {"HardlinkThroughSymlink", "sym('l', ARGS[0]); hard('h', 'l/marker')", "h"},
};

void PrintTo(const Escape& e, std::ostream* os) { *os << e.name; }

using Param = std::tuple<As, Escape>;

// Files of the store that change without a change of content: the catalog
// (compared through `image ls --json`) and the writer lock (it names the last
// writer).
const std::vector<std::string> kVolatile = {"catalog.db", "catalog.db-wal", "catalog.db-shm",
                                            "lock"};

class MaliciousTarTest : public ::testing::TestWithParam<Param> {};

std::string stat_line(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return "missing";
  return std::to_string(st.st_ino) + " " + std::to_string(st.st_nlink) + " " +
         std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + " " +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

TEST_P(MaliciousTarTest, IsRefusedAndChangesNothing) {
  auto [as, esc] = GetParam();
  if (as == As::kRoot && !running_as_root())
    GTEST_SKIP() << "the root variant needs root; this test runs as uid " << ::geteuid();
  TOGO_REQUIRE_BUSYBOX();
  std::optional<uid_t> user;
  if (as == As::kRootless && running_as_root()) user = unprivileged_uid();

  // The store, with one image already, in a directory the togo user owns.
  TempDir dir(user);
  std::string store = dir.sub("store");
  std::string tiny = dir.sub("tiny.tar");
  ASSERT_NO_FATAL_FAILURE(make_tar(tiny, "file('etc/hello', b'hi')"));
  RunOptions o;
  o.as_uid = user;
  RunResult first = togo(store, {"image", "import", tiny, "--name", "tiny"}, o);
  ASSERT_EQ(first.status, 0) << describe(first);

  // A directory outside the store that the togo user could write to, with a
  // marker file; the tarball also aims at ../outside from the store.
  TempDir outside(user);
  write_file(outside.sub("marker"), "marker\n");
  ASSERT_EQ(::mkdir(dir.sub("outside").c_str(), 0777), 0);
  write_file(dir.sub("outside/file"), "file\n");
  ::chmod(dir.sub("outside").c_str(), 0777);

  std::string evil = dir.sub("evil.tar");
  ASSERT_NO_FATAL_FAILURE(make_tar(evil, std::string("base()\n") + esc.body,
                                   {outside.path(), outside.path().substr(1)}));

  auto ls = [&] { return togo(store, {"image", "ls", "--json"}, o); };
  std::string images_before = ls().out;
  auto layers_before = list_dir(store + "/layers");
  auto blobs_before = list_dir(store + "/blobs/sha256");
  auto store_before = snapshot(store, kVolatile);
  auto outside_before = snapshot(outside.path());
  auto dir_before = list_dir(dir.path());
  std::string hostname_before = stat_line("/etc/hostname");
  std::string marker_before = stat_line(outside.sub("marker"));
  std::string file_before = stat_line(dir.sub("outside/file"));
  std::map<std::string, bool> host_before;
  for (const char* p : {"/escape", "/abs", "/deep", "/pwned", "/h", "/tmp/escape", "/tmp/pwned"})
    host_before[p] = exists(p);

  RunResult r = togo(store, {"image", "import", evil, "--name", "evil"}, o);
  EXPECT_EQ(r.status, 5) << describe(r);
  std::string entry = esc.entry;
  if (entry.starts_with("OUT")) entry = outside.path() + entry.substr(3);
  EXPECT_TRUE(one_line_error(r, entry));

  // Nothing outside.
  EXPECT_EQ(snapshot(outside.path()), outside_before);
  EXPECT_EQ(stat_line(outside.sub("marker")), marker_before);
  EXPECT_EQ(stat_line(dir.sub("outside/file")), file_before);
  EXPECT_EQ(list_dir(dir.path()), dir_before);
  EXPECT_EQ(stat_line("/etc/hostname"), hostname_before);
  for (const auto& [p, existed] : host_before) EXPECT_EQ(exists(p), existed) << p;

  // The store as it was.
  EXPECT_EQ(ls().out, images_before);
  EXPECT_EQ(list_dir(store + "/layers"), layers_before);
  EXPECT_EQ(list_dir(store + "/blobs/sha256"), blobs_before);
  EXPECT_EQ(list_dir(store + "/tmp"), std::vector<std::string>{});
  EXPECT_EQ(snapshot(store, kVolatile), store_before);
}

INSTANTIATE_TEST_SUITE_P(, MaliciousTarTest,
                         ::testing::Combine(::testing::Values(As::kRoot, As::kRootless),
                                            ::testing::ValuesIn(kEscapes)),
                         [](const ::testing::TestParamInfo<Param>& i) {
                           return as_name(std::get<0>(i.param)) + "_" + std::get<1>(i.param).name;
                         });

// A later entry of the same name replaces a symlink; it never writes through it.
class TarReplaceTest : public TogoTest {};
TOGO_AS_ROOT_AND_ROOTLESS(TarReplaceTest);

TEST_P(TarReplaceTest, LaterFileReplacesASymlinkInsteadOfWritingThroughIt) {
  TempDir outside(as_uid());
  write_file(outside.sub("marker"), "marker\n");
  std::string before = stat_line(outside.sub("marker"));
  std::string tar = sub("replace.tar");
  ASSERT_NO_FATAL_FAILURE(make_tar(tar,
                                   "base(); sym('etc/f', ARGS[0] + '/marker'); "
                                   "file('etc/f', b'replaced')",
                                   {outside.path()}));
  RunResult r = tg({"image", "import", tar, "--name", "replace"});
  EXPECT_EQ(read_file(outside.sub("marker")), std::optional<std::string>("marker\n"));
  EXPECT_EQ(stat_line(outside.sub("marker")), before);
  if (r.status != 0) {
    // Refusing is safe too, if it is said clearly.
    EXPECT_EQ(r.status, 5);
    EXPECT_TRUE(one_line_error(r, "etc/f"));
    return;
  }
  ASSERT_NO_FATAL_FAILURE(create_env("r", "replace"));
  RunResult in = sh("r", "test -L /etc/f && echo symlink; cat /etc/f");
  EXPECT_EQ(in.out, "replaced") << describe(in);
}

TEST_P(TarReplaceTest, DirectoryEntryNeverChangesASymlinksTarget) {
  TempDir outside(as_uid());
  ::chmod(outside.path().c_str(), 0700);
  std::string before = stat_line(outside.path());
  std::string tar = sub("dir.tar");
  ASSERT_NO_FATAL_FAILURE(make_tar(tar,
                                   "base(); sym('srv', ARGS[0]); "
                                   "ti = tarfile.TarInfo('srv'); ti.type = tarfile.DIRTYPE; "
                                   "ti.mode = 0o777; ti.uid = 1234; ti.gid = 1234; _add(ti); "
                                   "file('srv/inside', b'in')",
                                   {outside.path()}));
  RunResult r = tg({"image", "import", tar, "--name", "dirrep"});
  EXPECT_EQ(stat_line(outside.path()), before) << "mode or owner changed through the symlink";
  EXPECT_EQ(list_dir(outside.path()), std::vector<std::string>{});
  if (r.status != 0) {
    EXPECT_EQ(r.status, 5);
    EXPECT_TRUE(one_line_error(r, "srv"));
    return;
  }
  ASSERT_NO_FATAL_FAILURE(create_env("d", "dirrep"));
  RunResult in = sh("d", "test -L /srv && echo symlink; stat -c %a /srv; cat /srv/inside");
  EXPECT_EQ(in.out, "777\nin") << describe(in);
}

}  // namespace
}  // namespace togo::test
