#include "store/store.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <map>

#include "base/fs.h"
#include "base/sys.h"
#include "store/layout.h"

namespace togo::store {
namespace {

LocateInputs inputs(std::map<std::string, std::string> env, std::string exe_dir = "",
                    bool beside_exists = false) {
  LocateInputs in;
  auto vars = std::make_shared<std::map<std::string, std::string>>(std::move(env));
  in.getenv = [vars](const char* k) -> const char* {
    auto it = vars->find(k);
    return it == vars->end() ? nullptr : it->second.c_str();
  };
  in.exe_dir = exe_dir;
  in.is_dir = [beside_exists](const std::string&) { return beside_exists; };
  return in;
}

TEST(Locate, FollowsTheDocumentedOrder) {
  auto in = inputs({{"TOGO_STORE", "/env/store"}, {"XDG_DATA_HOME", "/xdg"}, {"HOME", "/home/u"}},
                   "/media/stick", true);
  in.flag = "/flag/store";
  EXPECT_EQ(*locate(in), "/flag/store");
  in.flag.reset();
  EXPECT_EQ(*locate(in), "/env/store");
  in = inputs({{"XDG_DATA_HOME", "/xdg"}, {"HOME", "/home/u"}}, "/media/stick", true);
  EXPECT_EQ(*locate(in), "/media/stick/togo-store");
  in = inputs({{"XDG_DATA_HOME", "/xdg"}, {"HOME", "/home/u"}}, "/media/stick", false);
  EXPECT_EQ(*locate(in), "/xdg/togo");
  in = inputs({{"HOME", "/home/u"}});
  EXPECT_EQ(*locate(in), "/home/u/.local/share/togo");
  in = inputs({});
  auto r = locate(in);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().hint.find("--store"), std::string::npos);
}

TEST(Locate, RelativeFlagBecomesAbsolute) {
  auto in = inputs({});
  in.flag = "rel/store";
  auto r = locate(in);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->front(), '/');
  EXPECT_EQ(r->substr(r->size() - 10), "/rel/store");
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/togo-store-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { (void)fs::remove_tree(AT_FDCWD, dir_); }
  std::string dir_;
};

TEST_F(StoreTest, CreatesTheLayoutInAnEmptyDirectory) {
  auto st = Store::open(dir_ + "/s", Store::Access::kWrite);
  ASSERT_TRUE(st) << st.error().message;
  for (const char* p : {kMarker, kCatalog, kBlobs, kLayers, kEnvs, kTmp}) {
    struct stat sb;
    EXPECT_EQ(::stat((dir_ + "/s/" + p).c_str(), &sb), 0) << p;
  }
  EXPECT_TRUE(Store::exists(dir_ + "/s"));
}

TEST_F(StoreTest, ReadingAMissingStoreCreatesNothing) {
  auto st = Store::open(dir_, Store::Access::kRead);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kNotFound);
  EXPECT_FALSE(Store::exists(dir_));
}

TEST_F(StoreTest, RefusesADirectoryThatIsNotAStore) {
  Fd d = *sys::open_at(AT_FDCWD, dir_, O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(fs::write_file_atomic(d.get(), "notes.txt", "mine"));
  auto st = Store::open(dir_, Store::Access::kWrite);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("not a togo store"), std::string::npos);
  EXPECT_FALSE(Store::exists(dir_));
}

TEST_F(StoreTest, RefusesANewerFormatAndLeavesItUnchanged) {
  Fd d = *sys::open_at(AT_FDCWD, dir_, O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(fs::write_file_atomic(d.get(), kMarker, marker_text(kFormat + 1)));
  auto st = Store::open(dir_, Store::Access::kWrite);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kConflict);
  EXPECT_NE(st.error().message.find("newer"), std::string::npos);
  struct stat sb;
  EXPECT_NE(::stat((dir_ + "/" + kCatalog).c_str(), &sb), 0);
  EXPECT_NE(::stat((dir_ + "/" + kTmp).c_str(), &sb), 0);
}

TEST_F(StoreTest, WriterLockIsExclusive) {
  auto a = Store::open(dir_, Store::Access::kWrite);
  auto b = Store::open(dir_, Store::Access::kWrite);
  ASSERT_TRUE(a && b);
  auto la = a->lock_for_writing("first");
  ASSERT_TRUE(la);
  Fd probe = *sys::open_at(a->fd(), kLock, O_RDONLY);
  EXPECT_NE(::flock(probe.get(), LOCK_EX | LOCK_NB), 0);
  auto holder = fs::read_file(a->fd(), kLock);
  EXPECT_NE(holder->find("first"), std::string::npos);
}

}  // namespace
}  // namespace togo::store
