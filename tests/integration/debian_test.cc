// `togo image create debian`: a real Debian image built with mmdebstrap from
// Debian's archive. Slow (a minute or more) and needs the network, so it is
// named DebianImage.* to be filtered in or out.
#include <unistd.h>

#include <algorithm>

#include "fixture.h"

namespace togo::test {
namespace {

// Why the test cannot run here, or "" if it can.
std::string debian_unavailable() {
  if (!running_as_root()) return "building the Debian image needs root here";
  if (run({"sh", "-c", "command -v mmdebstrap"}).status != 0)
    return "mmdebstrap is not installed (apt-get install mmdebstrap)";
  RunResult dns = run({"getent", "hosts", "deb.debian.org"}, {.timeout_s = 20});
  if (dns.status != 0) return "deb.debian.org does not resolve: the archive is unreachable";
  RunResult tcp =
      run({"timeout", "10", "bash", "-c", "exec 3<>/dev/tcp/deb.debian.org/80"}, {.timeout_s = 20});
  if (tcp.status != 0) return "deb.debian.org:80 does not answer: the archive is unreachable";
  return "";
}

TEST(DebianImage, BookwormRunsAptAndKnowsItsName) {
  std::string why = debian_unavailable();
  if (!why.empty()) GTEST_SKIP() << why;
  TempDir d;
  std::string store = d.sub("store");
  RunResult img = togo(store, {"image", "create", "debian"}, {.timeout_s = 600});
  ASSERT_EQ(img.status, 0) << describe(img);
  EXPECT_TRUE(img.out.starts_with("debian ")) << img.out;

  RunResult ls = togo(store, {"image", "ls"});
  EXPECT_NE(ls.out.find("\ndebian "), std::string::npos) << ls.out;
  RunResult c = togo(store, {"create", "deb", "--image", "debian"});
  ASSERT_EQ(c.status, 0) << describe(c);

  RunResult os = togo(store, {"run", "deb", "--", "cat", "/etc/os-release"});
  ASSERT_EQ(os.status, 0) << describe(os);
  auto lines = lines_of(os.out);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "ID=debian"), lines.end()) << os.out;
  EXPECT_NE(std::find(lines.begin(), lines.end(), "VERSION_CODENAME=bookworm"), lines.end())
      << os.out;

  RunResult host = togo(store, {"run", "deb", "--", "hostname"});
  EXPECT_EQ(host.status, 0) << describe(host);
  EXPECT_EQ(host.out, "deb\n");

  RunResult apt = togo(store, {"run", "deb", "--", "apt-get", "update"}, {.timeout_s = 300});
  EXPECT_EQ(apt.status, 0) << describe(apt);

  // A login shell is Debian's bash, from the image's /etc/passwd.
  RunResult shell = togo(store, {"run", "deb"}, {.input = "echo $0; exit 3\n"});
  EXPECT_EQ(shell.status, 3) << describe(shell);
  EXPECT_EQ(shell.out, "-bash\n");
}

// Rootless, the real-world check: a Debian root filesystem built by
// mmdebstrap, imported and run by an unprivileged user, where apt-get update
// and apt-get install of a small package succeed. This host grants the user
// no subordinate ids, so only one id is mapped: apt then downloads as root
// (togo tells it so), and a file owner it cannot keep is a warning.
TEST(DebianImage, RootlessAptGetInstallSucceeds) {
  std::string why = debian_unavailable();
  if (!why.empty()) GTEST_SKIP() << why;
  uid_t uid = unprivileged_uid();
  TempDir d(uid);
  std::string tar = d.sub("debian.tar");
  RunResult build = run({"mmdebstrap", "--variant=minbase", "--quiet", "bookworm", tar},
                        {.timeout_s = 600});
  ASSERT_EQ(build.status, 0) << describe(build);
  ASSERT_EQ(::chmod(tar.c_str(), 0644), 0);
  std::string store = d.sub("store");
  RunOptions as_user{.as_uid = uid, .timeout_s = 300};
  RunResult img = togo(store, {"image", "import", tar, "--name", "debian"}, as_user);
  ASSERT_EQ(img.status, 0) << describe(img);
  ASSERT_EQ(togo(store, {"create", "deb", "--image", "debian"}, as_user).status, 0);
  RunResult apt = togo(store,
                       {"run", "deb", "--", "sh", "-c",
                        "apt-get update -q && apt-get install -y -q hello && hello"},
                       as_user);
  EXPECT_EQ(apt.status, 0) << describe(apt);
  EXPECT_NE(apt.out.find("Hello, world!"), std::string::npos) << apt.out;
  // What apt installed is in the env's own layer, there at the next run.
  RunResult again = togo(store, {"run", "deb", "--", "hello"}, as_user);
  EXPECT_EQ(again.out, "Hello, world!\n") << describe(again);
}

}  // namespace
}  // namespace togo::test
