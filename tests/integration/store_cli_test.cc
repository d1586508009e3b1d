// Where the store is (--store, $TOGO_STORE, togo-store/ beside the binary,
// $XDG_DATA_HOME/togo), and which directories togo refuses to treat as one.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "fixture.h"

namespace togo::test {
namespace {

class StoreTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    // The store must come from what each test sets, not from our caller.
    ::unsetenv("TOGO_STORE");
  }

  /// Runs `argv` as the togo user with HOME and XDG_DATA_HOME in the test's
  /// directory, plus `env`.
  RunResult bare(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
                 const std::string& input = {}) {
    RunOptions o = opts(input);
    o.env = {"HOME=" + sub("home"), "XDG_DATA_HOME=" + sub("xdg")};
    o.env.insert(o.env.end(), env.begin(), env.end());
    return run(argv, o);
  }

  /// Makes a directory as the togo user.
  void mkdir_as_user(const std::string& path) {
    RunResult r = run({"mkdir", "-p", path}, opts());
    ASSERT_EQ(r.status, 0) << describe(r);
  }

  /// True if `dir` holds a store of the current format with image `name`.
  void expect_store_with(const std::string& dir, const std::string& name) {
    EXPECT_EQ(read_file(dir + "/togo-store"), std::optional<std::string>("togo-store\nformat 1\n"));
    RunResult ls = togo(dir, {"image", "ls"}, opts());
    EXPECT_EQ(ls.status, 0) << describe(ls);
    EXPECT_NE(ls.out.find("\n" + name + " "), std::string::npos) << ls.out;
  }

  std::vector<std::string> header_only(const char* verb) {
    return {std::string(verb) == "ls" ? "NAME  IMAGE  STATE  ROOTFS  CREATED"
                                      : "NAME  ID  SIZE  SHARED  CREATED  SOURCE"};
  }
};
TOGO_AS_ROOT_AND_ROOTLESS(StoreTest);

TEST_P(StoreTest, StoreOptionMakesTheLayout) {
  ASSERT_NO_FATAL_FAILURE(import_image(test_rootfs_tar(), "test"));
  expect_store_with(store(), "test");
  for (const char* d : {"blobs/sha256", "layers", "envs", "tmp"}) {
    struct stat st;
    EXPECT_EQ(::stat((store() + "/" + d).c_str(), &st), 0) << d;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << d;
  }
  EXPECT_TRUE(exists(store() + "/catalog.db"));
  EXPECT_EQ(list_dir(store() + "/tmp"), std::vector<std::string>{});
}

TEST_P(StoreTest, TogoStoreVariableIsUsedAndTheOptionWins) {
  std::string from_env = sub("from-env");
  RunResult r = bare({togo_bin(), "image", "import", test_rootfs_tar(), "--name", "viaenv"},
                     {"TOGO_STORE=" + from_env});
  ASSERT_EQ(r.status, 0) << describe(r);
  expect_store_with(from_env, "viaenv");
  EXPECT_FALSE(exists(sub("xdg"))) << "nothing went to XDG_DATA_HOME";

  RunResult ls = bare({togo_bin(), "image", "ls"}, {"TOGO_STORE=" + from_env});
  EXPECT_NE(ls.out.find("\nviaenv "), std::string::npos) << describe(ls);
  RunResult other =
      bare({togo_bin(), "--store", sub("other"), "image", "ls"}, {"TOGO_STORE=" + from_env});
  EXPECT_EQ(other.status, 0) << describe(other);
  EXPECT_EQ(lines_of(other.out).size(), 1u) << "--store beats $TOGO_STORE: " << other.out;
}

TEST_P(StoreTest, TogoStoreBesideTheBinaryIsUsed) {
  std::string drive = sub("drive");
  ASSERT_NO_FATAL_FAILURE(mkdir_as_user(drive + "/togo-store"));
  RunResult cp = run({"cp", togo_bin(), drive + "/togo"}, opts());
  ASSERT_EQ(cp.status, 0) << describe(cp);
  RunResult r = bare({drive + "/togo", "image", "import", test_rootfs_tar(), "--name", "ondrive"});
  ASSERT_EQ(r.status, 0) << describe(r);
  expect_store_with(drive + "/togo-store", "ondrive");
  EXPECT_FALSE(exists(sub("xdg"))) << "nothing went to XDG_DATA_HOME";
  EXPECT_FALSE(exists(sub("home/.local"))) << "nothing went to HOME";

  // And an env from it runs, through the same binary.
  RunResult c = bare({drive + "/togo", "create", "dev", "--image", "ondrive"});
  ASSERT_EQ(c.status, 0) << describe(c);
  RunResult in = bare({drive + "/togo", "run", "dev", "--", "hostname"});
  EXPECT_EQ(in.out, "dev\n") << describe(in);
  // $TOGO_STORE still comes first.
  RunResult viaenv = bare({drive + "/togo", "image", "ls"}, {"TOGO_STORE=" + sub("elsewhere")});
  EXPECT_EQ(lines_of(viaenv.out).size(), 1u) << viaenv.out;
}

TEST_P(StoreTest, XdgDataHomeIsTheLastResort) {
  // A copy of the binary with no togo-store/ beside it.
  std::string bin = sub("bin/togo");
  ASSERT_NO_FATAL_FAILURE(mkdir_as_user(sub("bin")));
  RunResult cp = run({"cp", togo_bin(), bin}, opts());
  ASSERT_EQ(cp.status, 0) << describe(cp);
  RunResult r = bare({bin, "image", "import", test_rootfs_tar(), "--name", "xdg"});
  ASSERT_EQ(r.status, 0) << describe(r);
  expect_store_with(sub("xdg/togo"), "xdg");
  // Without XDG_DATA_HOME: ~/.local/share/togo.
  RunOptions o = opts();
  o.env = {"HOME=" + sub("home")};
  ASSERT_NO_FATAL_FAILURE(mkdir_as_user(sub("home")));
  RunResult home = run({"env", "-u", "XDG_DATA_HOME", "-u", "TOGO_STORE", bin, "image", "import",
                        test_rootfs_tar(), "--name", "home"},
                       o);
  ASSERT_EQ(home.status, 0) << describe(home);
  expect_store_with(sub("home/.local/share/togo"), "home");
}

TEST_P(StoreTest, RelativeAndOddStorePathsWork) {
  // Relative to the working directory; and a name with characters that
  // mount options and shells treat specially.
  RunOptions o = opts();
  o.cwd = sub("");
  RunResult imp = run(
      {togo_bin(), "--store", "rel", "image", "import", test_rootfs_tar(), "--name", "test"}, o);
  ASSERT_EQ(imp.status, 0) << describe(imp);
  ASSERT_EQ(run({togo_bin(), "--store", "rel", "create", "dev", "--image", "test"}, o).status, 0);
  RunResult in = run({togo_bin(), "--store", "./rel/", "run", "dev", "--", "hostname"}, o);
  EXPECT_EQ(in.out, "dev\n") << describe(in);
  expect_store_with(sub("rel"), "test");

  std::string odd = sub("my store,lowerdir=x:y");
  RunResult imp2 = togo(odd, {"image", "import", test_rootfs_tar(), "--name", "test"}, opts());
  ASSERT_EQ(imp2.status, 0) << describe(imp2);
  ASSERT_EQ(togo(odd, {"create", "dev", "--image", "test"}, opts()).status, 0);
  RunResult p = togo(odd, {"run", "dev", "--", "togo-probe"}, opts());
  ASSERT_EQ(p.status, 0) << describe(p);
  auto report = parse_probe(p.out);
  EXPECT_EQ(probe_value(report, "hostname"), "dev");
  EXPECT_EQ(probe_value(report, "root_fstype"), "overlay");
}

TEST_P(StoreTest, DirectoryWithOtherFilesIsRefused) {
  std::string dir = sub("notes");
  ASSERT_NO_FATAL_FAILURE(mkdir_as_user(dir));
  write_file(dir + "/notes.txt", "my notes\n");
  auto before = snapshot(dir);
  RunResult imp = togo(dir, {"image", "import", test_rootfs_tar(), "--name", "x"}, opts());
  EXPECT_EQ(imp.status, 4);
  EXPECT_TRUE(one_line_error(imp, dir));
  RunResult create = togo(dir, {"create", "dev", "--image", "x"}, opts());
  EXPECT_EQ(create.status, 4);
  EXPECT_TRUE(one_line_error(create, dir));
  // Listing it reads nothing and writes nothing either.
  RunResult ls = togo(dir, {"ls"}, opts());
  EXPECT_EQ(lines_of(ls.out).size(), ls.status == 0 ? 1u : 0u) << describe(ls);
  // Refused like the writers, not listed as an empty store.
  EXPECT_EQ(ls.status, 4) << describe(ls);
  EXPECT_TRUE(one_line_error(ls, dir));
  RunResult images = togo(dir, {"image", "ls"}, opts());
  EXPECT_EQ(images.status, 4) << describe(images);
  EXPECT_TRUE(one_line_error(images, dir));
  EXPECT_EQ(snapshot(dir), before) << "nothing was added to the directory";
}

TEST_P(StoreTest, NewerFormatIsRefusedAndLeftAlone) {
  ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  write_file(store() + "/togo-store", "togo-store\nformat 99\n");
  auto before = snapshot(store());
  const std::vector<std::vector<std::string>> commands = {
      {"image", "ls"},
      {"ls"},
      {"ls", "--json"},
      {"image", "import", test_rootfs_tar(), "--name", "more"},
      {"create", "other", "--image", "test"},
      {"rm", "dev"},
      {"image", "rm", "test"},
  };
  for (const auto& args : commands) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    SCOPED_TRACE(joined);
    RunResult r = tg(args);
    EXPECT_EQ(r.status, 4);
    EXPECT_TRUE(one_line_error(r, "newer"));
  }
  RunResult run = in_env("dev", {"true"});
  EXPECT_EQ(run.status, 125);
  EXPECT_TRUE(one_line_error(run, "newer"));
  EXPECT_EQ(snapshot(store()), before) << "the store's files are byte-identical";
}

TEST_P(StoreTest, ListingAMissingOrEmptyStoreCreatesNothing) {
  std::string missing = sub("missing");
  for (const char* verb : {"ls", "image"}) {
    std::vector<std::string> args = verb == std::string("ls")
                                        ? std::vector<std::string>{"ls"}
                                        : std::vector<std::string>{"image", "ls"};
    RunResult r = togo(missing, args, opts());
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(lines_of(r.out), header_only(args[0] == "ls" ? "ls" : "image"));
    EXPECT_EQ(r.err, "");
    args.push_back("--json");
    RunResult j = togo(missing, args, opts());
    EXPECT_EQ(j.status, 0) << describe(j);
    EXPECT_EQ(j.out, "[]\n");
  }
  EXPECT_FALSE(exists(missing));

  std::string empty = sub("empty");
  ASSERT_NO_FATAL_FAILURE(mkdir_as_user(empty));
  RunResult r = togo(empty, {"ls"}, opts());
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(lines_of(r.out), header_only("ls"));
  RunResult rm = togo(empty, {"rm", "dev"}, opts());
  EXPECT_EQ(rm.status, 3);
  EXPECT_TRUE(one_line_error(rm, "dev"));
  EXPECT_EQ(list_dir(empty), std::vector<std::string>{});
}

}  // namespace
}  // namespace togo::test
