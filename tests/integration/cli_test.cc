// The command line: version, help, and the documented exit status and
// one-line message of each kind of mistake.
#include <regex>

#include "fixture.h"

namespace togo::test {
namespace {

RunResult bare(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {togo_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

TEST(Cli, Version) {
  RunResult r = bare({"version"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(std::regex_match(r.out, std::regex("togo [0-9][^ \n]* \\(store format 1\\)\n")))
      << r.out;
  EXPECT_EQ(r.err, "");
}

TEST(Cli, HelpListsEveryVerb) {
  RunResult r = bare({"help"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  for (const char* verb : {"run", "create", "ls", "rm", "image import", "image create", "image ls",
                           "image rm", "version", "help"}) {
    bool listed = false;
    for (const auto& line : lines_of(r.out))
      if (line.starts_with(std::string("  ") + verb + " ")) listed = true;
    EXPECT_TRUE(listed) << verb << " is not listed in\n" << r.out;
  }
  EXPECT_NE(r.out.find("--store"), std::string::npos);
  EXPECT_NE(r.out.find("TOGO_STORE"), std::string::npos);
}

TEST(Cli, HelpForOneVerb) {
  RunResult r = bare({"help", "run"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(r.out.starts_with("usage: togo run NAME")) << r.out;
  for (const char* code : {"125", "126", "127"})
    EXPECT_NE(r.out.find(code), std::string::npos) << "exit status " << code << " is documented";
  EXPECT_EQ(bare({"run", "--help"}).out, r.out);

  RunResult imp = bare({"help", "image", "import"});
  EXPECT_EQ(imp.status, 0) << describe(imp);
  EXPECT_TRUE(imp.out.starts_with("usage: togo image import")) << imp.out;
  EXPECT_NE(imp.out.find("--name"), std::string::npos) << imp.out;

  RunResult create = bare({"help", "create"});
  EXPECT_NE(create.out.find("--image"), std::string::npos) << create.out;
  EXPECT_NE(create.out.find("--rootfs"), std::string::npos) << create.out;

  RunResult unknown = bare({"help", "frobnicate"});
  EXPECT_EQ(unknown.status, 2);
  EXPECT_TRUE(one_line_error(unknown, "frobnicate"));
}

TEST(Cli, UnknownVerbIsUsageErrorWithHint) {
  RunResult r = bare({"frobnicate"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(one_line_error(r, "frobnicate"));
  EXPECT_EQ(lines_of(r.err).size(), 2u) << "with a hint: " << r.err;
  RunResult sub = bare({"image", "frobnicate"});
  EXPECT_EQ(sub.status, 2);
  EXPECT_TRUE(one_line_error(sub, "frobnicate"));
}

TEST(Cli, NoVerbPrintsHelpAndIsUsageError) {
  RunResult r = bare({});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("usage: togo"), std::string::npos) << describe(r);
}

TEST(Cli, BadOptionsAndArgumentsAreUsageErrors) {
  TempDir d;
  std::string store = d.sub("store");
  const std::vector<std::vector<std::string>> cases = {
      {"ls", "--bogus"},
      {"ls", "extra"},
      {"create"},
      {"create", "dev"},
      {"create", "dev", "--image"},
      {"create", "dev", "--image", "x", "--rootfs", "zfs"},
      {"run"},
      {"image", "import"},
      {"--store"},
  };
  for (const auto& args : cases) {
    RunResult r = togo(store, args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    SCOPED_TRACE(joined);
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(one_line_error(r));
  }
  EXPECT_FALSE(exists(store)) << "a usage error creates no store";
}

class CliStoreTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  }
  bool image_listed(const std::string& name) {
    for (const auto& line : lines_of(tg({"image", "ls"}).out))
      if (line.starts_with(name + " ")) return true;
    return false;
  }
};
TOGO_AS_ROOT_AND_ROOTLESS(CliStoreTest);

TEST_P(CliStoreTest, CreateWithUnknownImageIsNotFound) {
  RunResult r = tg({"create", "other", "--image", "no-such-image"});
  EXPECT_EQ(r.status, 3);
  EXPECT_TRUE(one_line_error(r, "no-such-image"));
  EXPECT_EQ(lines_of(tg({"ls"}).out).size(), 2u) << "nothing was created";
}

TEST_P(CliStoreTest, DuplicateEnvNameIsConflict) {
  RunResult r = tg({"create", "dev", "--image", "test"});
  EXPECT_EQ(r.status, 4);
  EXPECT_TRUE(one_line_error(r, "dev"));
  EXPECT_EQ(list_dir(store() + "/envs").size(), 1u);
}

TEST_P(CliStoreTest, InvalidEnvNameIsUsageError) {
  const std::vector<std::string> names = {
      "bad/name", "has space", ".hidden", "a:b", "\xc3\xa9t\xc3\xa9", "_x", std::string(64, 'a')};
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    RunResult r = tg({"create", name, "--image", "test"});
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(one_line_error(r));
  }
  RunResult ok = tg({"create", std::string(63, 'a'), "--image", "test"});
  EXPECT_EQ(ok.status, 0) << "63 characters is a valid hostname: " << describe(ok);
  EXPECT_EQ(list_dir(store() + "/envs").size(), 2u);
}

TEST_P(CliStoreTest, RmOfMissingEnvIsNotFound) {
  RunResult r = tg({"rm", "nope"});
  EXPECT_EQ(r.status, 3);
  EXPECT_TRUE(one_line_error(r, "nope"));
  EXPECT_EQ(list_dir(store() + "/envs").size(), 1u);
}

TEST_P(CliStoreTest, RmRemovesSeveral) {
  ASSERT_NO_FATAL_FAILURE(create_env("two", "test"));
  RunResult r = tg({"rm", "dev", "two"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "dev\ntwo\n");
  EXPECT_EQ(list_dir(store() + "/envs"), std::vector<std::string>{});
}

TEST_P(CliStoreTest, ImageInUseCannotBeRemoved) {
  RunResult r = tg({"image", "rm", "test"});
  EXPECT_EQ(r.status, 4);
  EXPECT_TRUE(one_line_error(r, "dev")) << "the error names the env using it";
  EXPECT_TRUE(image_listed("test"));
  EXPECT_EQ(list_dir(store() + "/layers").size(), 1u);
  RunResult still = in_env("dev", {"hostname"});
  EXPECT_EQ(still.out, "dev\n") << describe(still);
}

TEST_P(CliStoreTest, UnusedImageIsRemovedWithItsLayer) {
  ASSERT_EQ(tg({"rm", "dev"}).status, 0);
  RunResult r = tg({"image", "rm", "test"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "test\n");
  EXPECT_FALSE(image_listed("test"));
  EXPECT_EQ(lines_of(tg({"image", "ls"}).out).size(), 1u);
  EXPECT_EQ(list_dir(store() + "/layers"), std::vector<std::string>{});
  EXPECT_EQ(list_dir(store() + "/blobs/sha256"), std::vector<std::string>{});
  RunResult again = tg({"image", "rm", "test"});
  EXPECT_EQ(again.status, 3);
  EXPECT_TRUE(one_line_error(again, "test"));
}

TEST_P(CliStoreTest, RemovingOneImageKeepsTheOthersLayer) {
  // The test image plus one file: another image with a layer of its own.
  std::string tar = sub("more.tar");
  ASSERT_NO_FATAL_FAILURE(make_tar(tar, "base(); file('etc/more', b'1')"));
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "more"));
  EXPECT_EQ(list_dir(store() + "/layers").size(), 2u);
  RunResult r = tg({"image", "rm", "more"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(list_dir(store() + "/layers").size(), 1u);
  EXPECT_TRUE(image_listed("test"));
}

TEST_P(CliStoreTest, LsIsAnAlignedTable) {
  ASSERT_NO_FATAL_FAILURE(create_env("a-much-longer-name", "test"));
  RunResult r = tg({"ls"});
  ASSERT_EQ(r.status, 0) << describe(r);
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  size_t col = lines[0].find("IMAGE");
  ASSERT_NE(col, std::string::npos) << r.out;
  for (size_t i = 1; i < lines.size(); i++) {
    EXPECT_EQ(lines[i].substr(col, 5), "test ") << "column IMAGE is aligned:\n" << r.out;
    EXPECT_NE(lines[i].find(" stopped "), std::string::npos) << lines[i];
  }
}

}  // namespace
}  // namespace togo::test
