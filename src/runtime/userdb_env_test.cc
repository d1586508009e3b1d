#include "runtime/userdb_env.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/sys.h"

namespace togo::runtime {
namespace {

class TempTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/togo-userdb-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)fs::remove_tree(AT_FDCWD, dir_); }

  std::string path(const std::string& rel) { return dir_ + "/" + rel; }
  void mkdirs(const std::string& rel) { ASSERT_TRUE(fs::make_dirs(path(rel))); }
  void put(const std::string& rel, const std::string& text) {
    Fd fd = *sys::open_at(AT_FDCWD, path(rel), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_TRUE(sys::write_all(fd.get(), text, rel));
  }
  Fd open_dir(const std::string& rel) {
    return *sys::open_at(AT_FDCWD, path(rel), O_RDONLY | O_DIRECTORY);
  }

  std::string dir_;
};

TEST_F(TempTree, ReadsTheEnvsFileConfinedToItsRoot) {
  mkdirs("root/etc");
  put("root/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  Fd root = open_dir("root");
  EXPECT_EQ(*read_env_file(root.get(), "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  EXPECT_EQ(*read_env_file(root.get(), "/etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  EXPECT_EQ(*read_env_file(root.get(), "etc/group"), "");  // missing reads as empty

  // SECURITY: an image's absolute or climbing symlink resolves inside it.
  put("root/secret", "inside\n");
  put("secret", "host\n");
  ASSERT_EQ(::symlink("/secret", path("root/etc/abs").c_str()), 0);
  EXPECT_EQ(*read_env_file(root.get(), "etc/abs"), "inside\n");
  ASSERT_EQ(::symlink("../../../../../secret", path("root/etc/climb").c_str()), 0);
  EXPECT_EQ(*read_env_file(root.get(), "etc/climb"), "inside\n");
  ASSERT_EQ(::symlink("/proc/self/root/etc/hostname", path("root/etc/magic").c_str()), 0);
  auto magic = read_env_file(root.get(), "etc/magic");  // no /proc in this root
  EXPECT_TRUE(!magic || magic->empty());
}

TEST_F(TempTree, RefusesWhatIsNotAPlainFile) {
  mkdirs("root/etc/dir");
  ASSERT_EQ(::mkfifo(path("root/etc/fifo").c_str(), 0644), 0);
  Fd root = open_dir("root");
  EXPECT_FALSE(read_env_file(root.get(), "etc/fifo"));  // and does not block
  EXPECT_FALSE(read_env_file(root.get(), "etc/dir"));
  Fd big = *sys::open_at(AT_FDCWD, path("root/etc/big"), O_WRONLY | O_CREAT, 0644);
  ASSERT_EQ(::ftruncate(big.get(), 9 << 20), 0);
  auto r = read_env_file(root.get(), "etc/big");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("8 MiB"), std::string::npos);
}

TEST_F(TempTree, ReadsThroughLayersTopFirst) {
  mkdirs("upper");
  mkdirs("mid/etc");
  mkdirs("low/etc");
  put("low/etc/passwd", "low\n");
  put("low/etc/group", "low group\n");
  put("mid/etc/passwd", "mid\n");
  Fd upper = open_dir("upper"), mid = open_dir("mid"), low = open_dir("low");
  std::vector<int> layers{upper.get(), mid.get(), low.get()};
  EXPECT_EQ(*read_layered_file(layers, "etc/passwd"), "mid\n");
  EXPECT_EQ(*read_layered_file(layers, "etc/group"), "low group\n");
  EXPECT_EQ(*read_layered_file(layers, "etc/shadow"), "");

  // /etc replaced by a file in a higher layer hides everything below.
  put("upper/etc", "not a directory");
  EXPECT_EQ(*read_layered_file(layers, "etc/passwd"), "");
}

TEST_F(TempTree, WhiteoutHidesLowerLayers) {
  mkdirs("upper/etc");
  mkdirs("low/etc");
  put("low/etc/passwd", "low\n");
  if (::mknod(path("upper/etc/passwd").c_str(), S_IFCHR | 0, makedev(0, 0)) < 0)
    GTEST_SKIP() << "cannot create a whiteout (a 0/0 device) here: " << strerror(errno);
  Fd upper = open_dir("upper"), low = open_dir("low");
  EXPECT_EQ(*read_layered_file({upper.get(), low.get()}, "etc/passwd"), "");
}

TEST_F(TempTree, FindsPrograms) {
  mkdirs("root/bin");
  put("root/bin/bash", "");
  put("root/bin/data", "");
  ::chmod(path("root/bin/bash").c_str(), 0755);
  ASSERT_EQ(::symlink("bash", path("root/bin/sh").c_str()), 0);
  Fd root = open_dir("root");
  EXPECT_TRUE(env_has_program(root.get(), "/bin/bash"));
  EXPECT_TRUE(env_has_program(root.get(), "/bin/sh"));
  EXPECT_FALSE(env_has_program(root.get(), "/bin/data"));
  EXPECT_FALSE(env_has_program(root.get(), "/bin/zsh"));
  EXPECT_FALSE(env_has_program(root.get(), "/bin"));
  auto exists = [&](const std::string& p) { return env_has_program(root.get(), p); };
  EXPECT_EQ(pick_shell("/usr/bin/zsh", exists), "/bin/bash");
}

TEST_F(TempTree, WritesRunFilesOnlyWhenTheyChange) {
  mkdirs("run");
  Fd run = open_dir("run");
  Invoker who;
  who.user = UserRecord{"me", 1000, 1000, "Me", "/home/me", "/usr/bin/zsh"};
  who.group = "me";
  auto files =
      env_user_files("root:x:0:0::/root:/bin/sh\nubuntu:x:1000:1000::/home/ubuntu:/bin/sh\n",
                     "root:x:0:\nubuntu:x:1000:\n", who, "/bin/bash");
  ASSERT_TRUE(files);
  EXPECT_EQ(files->passwd, "root:x:0:0::/root:/bin/sh\nme:x:1000:1000:Me:/home/me:/bin/bash\n");
  EXPECT_EQ(files->group, "root:x:0:\nme:x:1000:\n");

  ASSERT_TRUE(write_env_user_files(run.get(), *files));
  EXPECT_EQ(*fs::read_file(run.get(), kRunPasswd), files->passwd);
  EXPECT_EQ(*fs::read_file(run.get(), kRunGroup), files->group);
  auto before = *sys::stat_at(run.get(), kRunPasswd, 0);
  EXPECT_EQ(before.st_mode & 07777, 0644u);
  ASSERT_TRUE(write_env_user_files(run.get(), *files));
  auto same = *sys::stat_at(run.get(), kRunPasswd, 0);
  EXPECT_EQ(same.st_ino, before.st_ino);  // not rewritten

  files->passwd += "extra:x:5:5::/:/bin/sh\n";
  ASSERT_TRUE(write_env_user_files(run.get(), *files));
  EXPECT_EQ(*fs::read_file(run.get(), kRunPasswd), files->passwd);

  who.user.name = "bad:name";
  EXPECT_FALSE(env_user_files("", "", who, "/bin/sh"));
}

}  // namespace
}  // namespace togo::runtime
