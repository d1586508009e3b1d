#include "cli/output_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "base/fs.h"
#include "base/sys.h"

namespace togo::cli {
namespace {

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/togo-out-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { EXPECT_TRUE(fs::remove_tree(AT_FDCWD, dir_)); }

  std::vector<std::string> names() {
    Fd d = *sys::open_at(AT_FDCWD, dir_, O_RDONLY | O_DIRECTORY);
    return fs::list_dir(d.get());
  }
  std::string read(const std::string& name) {
    return fs::read_file(AT_FDCWD, dir_ + "/" + name).value_or("<missing>");
  }

  std::string dir_;
};

TEST_F(OutputFileTest, NamedOnlyOnceCommitted) {
  auto f = OutputFile::open(dir_ + "/out.tar", 0600);
  ASSERT_TRUE(f) << f.error().message;
  ASSERT_TRUE(sys::write_all(f->fd(), "whole", "test"));
  EXPECT_EQ(names(), std::vector<std::string>{}) << "nothing has a name before commit()";
  ASSERT_TRUE(f->commit());
  EXPECT_EQ(names(), std::vector<std::string>{"out.tar"});
  EXPECT_EQ(read("out.tar"), "whole");
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/out.tar").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(OutputFileTest, WithoutCommitTheOldFileStays) {
  Fd d = *sys::open_at(AT_FDCWD, dir_, O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(fs::write_file_atomic(d.get(), "out.tar", "old"));
  {
    auto f = OutputFile::open(dir_ + "/out.tar", 0644);
    ASSERT_TRUE(f) << f.error().message;
    ASSERT_TRUE(sys::write_all(f->fd(), "half", "test"));
  }
  EXPECT_EQ(names(), std::vector<std::string>{"out.tar"});
  EXPECT_EQ(read("out.tar"), "old");

  auto f = OutputFile::open(dir_ + "/out.tar", 0644);
  ASSERT_TRUE(f) << f.error().message;
  ASSERT_TRUE(sys::write_all(f->fd(), "new", "test"));
  ASSERT_TRUE(f->commit());
  EXPECT_EQ(read("out.tar"), "new");
  EXPECT_EQ(names(), std::vector<std::string>{"out.tar"});
}

TEST_F(OutputFileTest, RefusesWhatIsNoFileName) {
  ASSERT_EQ(::mkdir((dir_ + "/sub").c_str(), 0755), 0);
  for (std::string bad : {dir_ + "/sub", dir_ + "/", dir_ + "/.."}) {
    auto f = OutputFile::open(bad, 0644);
    ASSERT_FALSE(f) << bad;
    EXPECT_EQ(f.error().kind, ErrorKind::kUsage) << bad;
  }
  EXPECT_EQ(names(), std::vector<std::string>{"sub"});
}

}  // namespace
}  // namespace togo::cli
