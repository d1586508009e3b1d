#include "store/run_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "base/fd.h"
#include "base/fs.h"

namespace togo::store {
namespace {

class RunCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/togo-run-cache-XXXXXX";
    dir_ = mkdtemp(tmpl);
    fd_ = Fd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    // A writer leaves the catalog settled (its log emptied) when it closes.
    auto c = Catalog::open(db(), true);
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->transaction([&]() -> Result<void> {
      TRY(c->put_layer({"sha256:l1", 1, 2}));
      TRY(c->put_image(record_.image));
      return c->put_env(record_.env);
    }));
    generation_ = *c->generation();
  }
  void TearDown() override { (void)fs::remove_tree(AT_FDCWD, dir_); }
  std::string db() { return dir_ + "/catalog.db"; }
  std::string copy_path() { return dir_ + "/cache/run/dev"; }
  Result<void> replace_copy(const std::string& text) {
    Fd dir(::open((dir_ + "/cache/run").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return fs::write_file_atomic(dir.get(), "dev", text);
  }

  std::string dir_;
  Fd fd_;
  uint32_t generation_ = 0;
  RunRecord record_{{"0123456789abcdef", "dev", "sha256:i1", "overlay", 7, "hostname=box\n"},
                    {"sha256:i1", "img", {"sha256:l1"}, R"({"config":{"Cmd":["sh"]}})", "here", 5}};
};

TEST_F(RunCacheTest, ASettledCatalogShowsItsGenerationInItsHeader) {
  EXPECT_EQ(settled_generation(fd_.get()), std::optional<uint32_t>(generation_));
}

TEST_F(RunCacheTest, ACatalogWithCommitsInItsLogIsNotSettled) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->transaction([&] { return c->set_env_settings(record_.env.id, ""); }));
  EXPECT_EQ(settled_generation(fd_.get()), std::nullopt) << "the change is in the -wal file";
}

TEST_F(RunCacheTest, ACopyIsReadBackWhileTheCatalogIsUnchanged) {
  EXPECT_FALSE(read_run_record(fd_.get(), "dev")) << "no copy yet";
  write_run_record(fd_.get(), generation_, record_);
  auto r = read_run_record(fd_.get(), "dev");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->env.id, record_.env.id);
  EXPECT_EQ(r->env.settings, "hostname=box\n");
  EXPECT_EQ(r->env.rootfs, "overlay");
  EXPECT_EQ(r->env.created, 7);
  EXPECT_EQ(r->image.id, "sha256:i1");
  EXPECT_EQ(r->image.layers, std::vector<std::string>{"sha256:l1"});
  EXPECT_EQ(r->image.config, record_.image.config);
  EXPECT_FALSE(read_run_record(fd_.get(), "other"));
}

TEST_F(RunCacheTest, AnyChangeToTheCatalogRetiresTheCopy) {
  write_run_record(fd_.get(), generation_, record_);
  {
    auto c = Catalog::open(db(), true);
    ASSERT_TRUE(c);
    // Not even this env's row: any change counts.
    ASSERT_TRUE(c->transaction([&] { return c->put_layer({"sha256:l2", 1, 2}); }));
  }
  ASSERT_TRUE(settled_generation(fd_.get()));
  EXPECT_FALSE(read_run_record(fd_.get(), "dev"));
}

TEST_F(RunCacheTest, ACopyOfAnotherGenerationOrDamagedIsNotUsed) {
  write_run_record(fd_.get(), generation_ + 1, record_);
  EXPECT_FALSE(read_run_record(fd_.get(), "dev")) << "written for another generation";
  write_run_record(fd_.get(), generation_, record_);
  auto text = fs::read_file(AT_FDCWD, copy_path());
  ASSERT_TRUE(text);
  std::string flipped = *text;
  flipped[flipped.size() - 5] ^= 0x01;
  ASSERT_TRUE(replace_copy(flipped));
  EXPECT_FALSE(read_run_record(fd_.get(), "dev")) << "damaged";
  ASSERT_TRUE(replace_copy(text->substr(0, text->size() / 2)));
  EXPECT_FALSE(read_run_record(fd_.get(), "dev")) << "torn";
  ASSERT_TRUE(replace_copy(*text));
  EXPECT_TRUE(read_run_record(fd_.get(), "dev"));
}

TEST_F(RunCacheTest, ACopyThatCannotBeWrittenIsSkipped) {
  ASSERT_EQ(::mkdir((dir_ + "/cache").c_str(), 0755), 0);
  ASSERT_EQ(::symlinkat("/nonexistent", fd_.get(), "cache/run"), 0);
  write_run_record(fd_.get(), generation_, record_);  // no crash, no error
  EXPECT_FALSE(read_run_record(fd_.get(), "dev"));
}

}  // namespace
}  // namespace togo::store
