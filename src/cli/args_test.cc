#include "cli/args.h"

#include <gtest/gtest.h>

#include "cli/commands.h"

namespace togo::cli {
namespace {

Result<Invocation> p(std::vector<std::string> argv) { return parse(argv, verbs()); }

TEST(Args, TwoWordVerbsWithOptions) {
  auto inv = p({"image", "import", "rootfs.tar.gz", "--name", "base"});
  ASSERT_TRUE(inv) << inv.error().message;
  EXPECT_EQ(inv->verb->name, "image import");
  EXPECT_EQ(inv->args, std::vector<std::string>{"rootfs.tar.gz"});
  EXPECT_EQ(inv->value("--name"), "base");
  inv = p({"image", "import", "--name=base", "-"});
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->args, std::vector<std::string>{"-"});
  EXPECT_EQ(inv->value("--name"), "base");
}

TEST(Args, GlobalStoreBeforeOrAfterTheVerb) {
  auto inv = p({"--store", "/s", "ls"});
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->store, "/s");
  inv = p({"ls", "--store=/t", "--json"});
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->store, "/t");
  EXPECT_TRUE(inv->flag("--json"));
}

TEST(Args, RunTakesTheRestAsTheCommand) {
  auto inv = p({"run", "dev", "--", "ls", "-l", "--store"});
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->args, std::vector<std::string>{"dev"});
  EXPECT_EQ(inv->rest, (std::vector<std::string>{"ls", "-l", "--store"}));
  inv = p({"run", "dev", "ls", "-l"});  // "--" is optional
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->rest, (std::vector<std::string>{"ls", "-l"}));
  inv = p({"run", "dev"});
  ASSERT_TRUE(inv);
  EXPECT_TRUE(inv->rest.empty());
  inv = p({"--store", "/s", "run", "dev", "--", "--help"});
  ASSERT_TRUE(inv);
  EXPECT_FALSE(inv->help);
  EXPECT_EQ(inv->rest, std::vector<std::string>{"--help"});
}

TEST(Args, UsageErrorsSayWhatAndPointToHelp) {
  struct {
    std::vector<std::string> argv;
    std::string says;
  } cases[] = {
      {{"frobnicate"}, "togo frobnicate: unknown command"},
      {{"image"}, "togo image: needs a command"},
      {{"image", "frob"}, "togo image frob: unknown command"},
      {{"create", "dev", "--bogus"}, "togo create: unknown option --bogus"},
      {{"create"}, "togo create: missing NAME"},
      {{"create", "dev", "--image"}, "--image: needs a value"},
      {{"ls", "extra"}, "togo ls: unexpected argument 'extra'"},
      {{"ls", "--json=yes"}, "togo ls: --json takes no value"},
      {{"--bogus"}, "--bogus: unknown option"},
  };
  for (auto& c : cases) {
    auto inv = p(c.argv);
    ASSERT_FALSE(inv) << c.says;
    EXPECT_EQ(inv.error().kind, ErrorKind::kUsage);
    EXPECT_EQ(inv.error().message, c.says);
    EXPECT_NE(inv.error().hint.find("togo help"), std::string::npos);
  }
}

TEST(Args, HelpAndVersion) {
  auto inv = p({});
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->verb, nullptr);
  inv = p({"create", "--help"});
  ASSERT_TRUE(inv);
  EXPECT_TRUE(inv->help);
  EXPECT_EQ(inv->verb->name, "create");
  inv = p({"--version"});
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->verb->name, "version");
  inv = p({"help", "image", "ls"});
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->args, (std::vector<std::string>{"image", "ls"}));
}

TEST(Args, EveryVerbHasAHandlerAndAUsageLine) {
  for (auto& v : verbs()) {
    EXPECT_NE(handler_for(v), nullptr) << v.name;
    EXPECT_EQ(usage_line(v).rfind("togo " + std::string(v.name), 0), 0u);
  }
}

}  // namespace
}  // namespace togo::cli
