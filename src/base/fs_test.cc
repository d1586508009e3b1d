#include "base/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace togo::fs {
namespace {

class FindProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/togo-fs-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* d : {"/a", "/b", "/a/tool-dir"}) ASSERT_EQ(::mkdir((dir_ + d).c_str(), 0755), 0);
    put("/a/plain", 0644);
    put("/b/plain", 0755);
    put("/b/tool", 0755);
  }
  void TearDown() override { (void)!std::system(("rm -rf " + dir_).c_str()); }
  void put(const std::string& name, mode_t mode) {
    std::string p = dir_ + name;
    FILE* f = std::fopen(p.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    ASSERT_EQ(::chmod(p.c_str(), mode), 0);
  }
  std::string dir_;
};

TEST_F(FindProgramTest, TakesTheFirstExecutableRegularFileInOrder) {
  std::string path = dir_ + "/a:" + dir_ + "/b/";
  EXPECT_EQ(find_program("plain", path), dir_ + "/b/plain") << "a/plain is not executable";
  EXPECT_EQ(find_program("tool", path), dir_ + "/b/tool");
  EXPECT_EQ(find_program("tool-dir", path), "") << "a directory is no program";
  EXPECT_EQ(find_program("missing", path), "");
}

TEST_F(FindProgramTest, SearchesOnlyAbsoluteDirectoriesAndOneComponent) {
  char* was = ::getcwd(nullptr, 0);
  ASSERT_NE(was, nullptr);
  ASSERT_EQ(::chdir((dir_ + "/b").c_str()), 0);
  EXPECT_EQ(find_program("tool", "b:.:"), "") << "relative entries run what the working directory holds";
  EXPECT_EQ(::chdir(was), 0);
  std::free(was);
  EXPECT_EQ(find_program("b/tool", dir_), "");
  EXPECT_EQ(find_program("", dir_ + "/b"), "");
}

}  // namespace
}  // namespace togo::fs
