#include "store/tree_listing.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "base/fs.h"

namespace togo::store {
namespace {

class TreeListingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/togo-listing-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(::mkdir((dir_ + "/etc").c_str(), 0755), 0);
    put("etc/a", "one\n");
    put("etc\nodd", "x");
    ASSERT_EQ(::symlink("a", (dir_ + "/etc/b").c_str()), 0);
    ASSERT_EQ(::link((dir_ + "/etc/a").c_str(), (dir_ + "/etc/hard").c_str()), 0);
  }
  void TearDown() override { (void)fs::remove_tree(AT_FDCWD, dir_); }
  void put(const std::string& rel, const std::string& data) {
    int fd = ::open((dir_ + "/" + rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  std::string listing() {
    int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
    auto l = list_tree(fd);
    ::close(fd);
    EXPECT_TRUE(l) << l.error().message;
    return l ? *l : "";
  }
  std::string dir_;
};

TEST_F(TreeListingTest, IsStableAndOneLinePerEntry) {
  std::string a = listing();
  EXPECT_EQ(a, listing());
  // "/", "/etc", "/etc/a", "/etc/b", "/etc/hard", and the odd name escaped.
  EXPECT_EQ(std::count(a.begin(), a.end(), '\n'), 6) << a;
  EXPECT_NE(a.find("/etc\\x0aodd\t"), std::string::npos) << a;
  EXPECT_NE(a.find("/etc/b\t120777\t"), std::string::npos) << a;
}

TEST_F(TreeListingTest, DifferencesNameTheChangedPaths) {
  std::string before = listing();
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/etc/a").c_str(), &st), 0);
  put("etc/a", "two\n");  // same size, other content, same times
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir_ + "/etc/a").c_str(), times, 0), 0);
  ASSERT_EQ(::unlink((dir_ + "/etc/b").c_str()), 0);
  std::string after = listing();
  auto d = listing_differences(before, after);
  EXPECT_EQ(d, (std::vector<std::string>{"/etc/a", "/etc/b", "/etc/hard"}));
}

}  // namespace
}  // namespace togo::store
