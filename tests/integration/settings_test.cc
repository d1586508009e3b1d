// An environment's settings (`togo create` options and `togo config`): what a
// command sees inside (variables, working directory, host name), shared host
// folders, and shares that try to reach outside the env.
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"

namespace togo::test {
namespace {

class SettingsTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_NO_FATAL_FAILURE(import_image(test_rootfs_tar(), "test"));
  }
  void TearDown() override {
    if (!IsSkipped()) tg({"stop", "dev", "--time", "1"});
  }

  /// A host directory owned by the togo user, with a file "f" holding "host\n".
  std::string host_dir(const std::string& name) {
    std::string d = sub(name);
    EXPECT_EQ(::mkdir(d.c_str(), 0755), 0) << d;
    write_file(d + "/f", "host\n");
    if (as_uid()) {
      EXPECT_EQ(::chown(d.c_str(), *as_uid(), *as_uid()), 0);
      EXPECT_EQ(::chown((d + "/f").c_str(), *as_uid(), *as_uid()), 0);
    }
    return d;
  }

  /// `togo config dev` (the settings, one per line).
  std::string settings() const {
    RunResult r = tg({"config", "dev"});
    EXPECT_EQ(r.status, 0) << describe(r);
    return r.out;
  }
};
TOGO_AS_ROOT_AND_ROOTLESS(SettingsTest);

TEST_P(SettingsTest, EnvWorkdirAndHostnameAreSeenInside) {
  ASSERT_NO_FATAL_FAILURE(
      create_env("dev", "test",
                 {"--env", "FOO=bar", "--env", "EQ=a=b", "--env", "SP=with space", "--workdir",
                  "/etc", "--hostname", "myhost"}));
  const std::string script = "echo \"$FOO|$EQ|$SP\"; pwd; hostname";
  RunResult r = sh("dev", script);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "bar|a=b|with space\n/etc\nmyhost\n");
  auto p = probe("dev");
  EXPECT_EQ(probe_value(p, "hostname"), "myhost");
  EXPECT_EQ(probe_value(p, "cwd"), "/etc");
  // A session joining a started env gets the same settings.
  ASSERT_EQ(tg({"start", "dev"}).status, 0);
  RunResult e = tg({"exec", "dev", "--", "sh", "-c", script});
  EXPECT_EQ(e.status, 0) << describe(e);
  EXPECT_EQ(e.out, "bar|a=b|with space\n/etc\nmyhost\n");
  EXPECT_EQ(settings(),
            "env=FOO=bar\nenv=EQ=a=b\nenv=SP=with space\nworkdir=/etc\nhostname=myhost\n");
}

TEST_P(SettingsTest, EtcHostnameAndHostsNameTheEnv) {
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "test", {"--hostname", "myhost"}));
  RunResult r = in_env("dev", {"cat", "/etc/hostname"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "myhost\n");
  RunResult hosts = sh("dev", "grep -w myhost /etc/hosts | grep -c 127");
  EXPECT_EQ(hosts.out, "1\n") << describe(hosts);
}

TEST_P(SettingsTest, MissingWorkdirIsCreatedOrExplained) {
  // Never silently somewhere else: either the command starts in the workdir
  // or togo says why it cannot.
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "test", {"--workdir", "/srv/work"}));
  RunResult r = in_env("dev", {"pwd"});
  if (r.status == 0) {
    EXPECT_EQ(r.out, "/srv/work\n");
  } else {
    EXPECT_TRUE(r.status == 125 && one_line_error(r, "/srv/work")) << describe(r);
  }
}

TEST_P(SettingsTest, ConfigChangesTakeEffectAtTheNextStart) {
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "test", {"--env", "A=1"}));
  RunResult c = tg({"config", "dev", "env+=B=2", "hostname=h1", "workdir=/tmp"});
  EXPECT_EQ(c.status, 0) << describe(c);
  EXPECT_EQ(c.out, "env=A=1\nenv=B=2\nworkdir=/tmp\nhostname=h1\n");
  EXPECT_EQ(c.err, "");
  const std::string script = "echo \"$A$B\"; pwd; hostname";
  EXPECT_EQ(sh("dev", script).out, "12\n/tmp\nh1\n");
  // Right after a run ended, a change is seen by the next run.
  RunResult d = tg({"config", "dev", "env-=A=1", "hostname=h2", "workdir="});
  EXPECT_EQ(d.status, 0) << describe(d);
  EXPECT_EQ(d.out, "env=B=2\nhostname=h2\n");
  EXPECT_EQ(sh("dev", script).out, "2\n/root\nh2\n");
  RunResult reset = tg({"config", "dev", "env=", "hostname="});
  EXPECT_EQ(reset.status, 0) << describe(reset);
  EXPECT_EQ(reset.out, "");
  EXPECT_EQ(sh("dev", script).out, "\n/root\ndev\n");
}

TEST_P(SettingsTest, ConfigOfARunningEnvSaysWhenItTakesEffect) {
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "test"));
  ASSERT_EQ(tg({"start", "dev"}).status, 0);
  RunResult c = tg({"config", "dev", "hostname=later"});
  EXPECT_EQ(c.status, 0) << describe(c);
  EXPECT_EQ(c.out, "hostname=later\n");
  EXPECT_TRUE(contains(c.err, "takes effect when it next starts")) << describe(c);
  EXPECT_EQ(tg({"exec", "dev", "--", "hostname"}).out, "dev\n") << "not while it runs";
  ASSERT_EQ(tg({"stop", "dev"}).status, 0);
  ASSERT_EQ(tg({"start", "dev"}).status, 0);
  EXPECT_EQ(tg({"exec", "dev", "--", "hostname"}).out, "later\n");
}

TEST_P(SettingsTest, ConfigErrorsExit2AndChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "test", {"--env", "A=1", "--hostname", "h"}));
  const std::string before = settings();
  for (const char* bad :
       {"bogus=1", "workdir=relative", "workdir=/a/../b", "hostname=bad name", "network=bogus",
        "env+=NOEQ", "share+=/tmp:/x/../y", "share+=/tmp", "memory=lots", "env-=A=2"}) {
    SCOPED_TRACE(bad);
    // A good change next to a bad one is not applied either.
    RunResult r = tg({"config", "dev", "env+=GOOD=1", bad});
    EXPECT_EQ(r.status, 2) << describe(r);
    EXPECT_TRUE(one_line_error(r));
  }
  EXPECT_EQ(settings(), before);
  RunResult missing = tg({"config", "nope", "hostname=x"});
  EXPECT_EQ(missing.status, 3) << describe(missing);
  EXPECT_TRUE(one_line_error(missing, "nope"));
}

TEST_P(SettingsTest, ReadOnlyShareRefusesWrites) {
  std::string h = host_dir("ro");
  auto before = snapshot(h);
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "test", {"--share", h + ":/data:ro"}));
  RunResult r = sh("dev",
                   "cat /data/f; echo changed > /data/f; echo rc=$?; touch /data/new; "
                   "echo rc=$?; rm /data/f; echo rc=$?");
  EXPECT_EQ(r.out, "host\nrc=1\nrc=1\nrc=1\n") << describe(r);
  EXPECT_TRUE(contains(r.err, "Read-only file system")) << describe(r);
  EXPECT_EQ(snapshot(h), before) << "the host folder changed";
  // Not even remounting it writable from inside.
  RunResult m = sh("dev", "mount -o remount,rw /data 2>/dev/null; echo x > /data/f");
  EXPECT_NE(m.status, 0) << describe(m);
  EXPECT_EQ(read_file(h + "/f"), std::optional<std::string>("host\n"));
}

TEST_P(SettingsTest, WritableShareWritesThroughToTheHost) {
  std::string h = host_dir("rw");
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "test", {"--share", h + ":/data"}));
  RunResult r = sh("dev", "cat /data/f; echo inside > /data/new; echo more >> /data/f");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "host\n");
  EXPECT_EQ(read_file(h + "/new"), std::optional<std::string>("inside\n"));
  EXPECT_EQ(read_file(h + "/f"), std::optional<std::string>("host\nmore\n"));
  struct stat st {};
  ASSERT_EQ(::stat((h + "/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, host_uid()) << "files made inside belong to the togo user on the host";
  // And the host's changes are seen inside, also in a running env.
  ASSERT_EQ(tg({"start", "dev"}).status, 0);
  write_file(h + "/late", "later\n");
  EXPECT_EQ(tg({"exec", "dev", "--", "cat", "/data/late"}).out, "later\n");
}

TEST_P(SettingsTest, ShareTargetParentsAreCreatedInsideTheEnv) {
  std::string h = host_dir("deep");
  write_file(sub("one-file"), "single\n");
  if (as_uid()) {
    ASSERT_EQ(::chown(sub("one-file").c_str(), *as_uid(), *as_uid()), 0);
  }
  ASSERT_NO_FATAL_FAILURE(create_env(
      "dev", "test",
      {"--share", h + ":/not/yet/there", "--share", sub("one-file") + ":/also/new/file.txt:ro"}));
  RunResult r = sh("dev", "cat /not/yet/there/f /also/new/file.txt");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "host\nsingle\n");
  EXPECT_FALSE(exists(test_rootfs_dir() + "/not")) << "the image is not touched";
}

TEST_P(SettingsTest, SymlinkedShareTargetsStayInsideTheEnv) {
  // The image's /mnt links point out of it if resolved on the host: a share
  // below them must land in the env's own /etc, /var and /tmp.
  const std::string n = "togo-share-escape-" + std::to_string(::getpid());
  ASSERT_FALSE(exists("/etc/" + n) || exists("/var/" + n + "-up") || exists("/tmp/" + n));
  std::string tar = sub("links.tar");
  ASSERT_NO_FATAL_FAILURE(make_tar(tar,
                                   "base(); dir('mnt'); dir('var'); sym('mnt/etc', '/etc'); "
                                   "sym('mnt/up', '../../..'); sym('mnt/root', '/')"));
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "links"));
  std::string a = host_dir("a"), b = host_dir("b"), c = host_dir("c");
  write_file(b + "/f", "b\n");
  write_file(c + "/f", "c\n");
  ASSERT_NO_FATAL_FAILURE(
      create_env("dev", "links",
                 {"--share", a + ":/mnt/etc/" + n, "--share", b + ":/mnt/up/var/" + n + "-up",
                  "--share", c + ":/mnt/root/tmp/" + n}));
  RunResult r = sh("dev", "cat /etc/" + n + "/f /var/" + n + "-up/f /tmp/" + n +
                              "/f; echo w > /etc/" + n + "/w");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "host\nb\nc\n");
  EXPECT_EQ(read_file(a + "/w"), std::optional<std::string>("w\n"));
  for (const std::string& p : {"/etc/" + n, "/var/" + n + "-up", "/tmp/" + n})
    EXPECT_FALSE(exists(p)) << "the share reached the host's " << p;
}

TEST_P(SettingsTest, ShareTargetThatIsASymlinkOutOfTheEnvStaysInside) {
  // The target itself is an absolute symlink: it is either followed inside
  // the env or refused, never resolved on the host.
  const std::string n = "togo-share-last-" + std::to_string(::getpid());
  ASSERT_FALSE(exists("/var/" + n));
  std::string tar = sub("last.tar");
  ASSERT_NO_FATAL_FAILURE(
      make_tar(tar, "base(); dir('mnt'); dir('var'); sym('mnt/last', '/var/' + ARGS[0])", {n}));
  ASSERT_NO_FATAL_FAILURE(import_image(tar, "last"));
  std::string d = host_dir("d");
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "last", {"--share", d + ":/mnt/last"}));
  RunResult r = in_env("dev", {"cat", "/var/" + n + "/f"});
  if (r.status == 0) {
    EXPECT_EQ(r.out, "host\n");
  } else {
    EXPECT_TRUE(r.status == 125 && one_line_error(r, "/mnt/last")) << describe(r);
  }
  EXPECT_FALSE(exists("/var/" + n)) << "the share reached the host's /var/" << n;
}

TEST_P(SettingsTest, DotDotInSharePathsIsRefused) {
  std::string h = host_dir("h");
  for (const std::string& s : {h + ":/mnt/../etc/x", h + ":/a/..", h + ":../x", h + "/..:/x",
                               h + "/../h:/x", h + ":/x/./../../y:ro"}) {
    SCOPED_TRACE(s);
    RunResult r = tg({"create", "dev", "--image", "test", "--share", s});
    EXPECT_EQ(r.status, 2) << describe(r);
    EXPECT_TRUE(one_line_error(r, "share"));
  }
  RunResult ls = tg({"ls"});
  EXPECT_EQ(lines_of(ls.out).size(), 1u) << "no env was created:\n" << ls.out;
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "test"));
  RunResult c = tg({"config", "dev", "share+=" + h + ":/x/../etc"});
  EXPECT_EQ(c.status, 2) << describe(c);
  EXPECT_TRUE(one_line_error(c, "share"));
  EXPECT_EQ(settings(), "");
}

TEST_P(SettingsTest, MissingHostFolderFailsTheStartNamingTheShare) {
  std::string gone = sub("gone");
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "test", {"--share", gone + ":/data"}));
  RunResult r = in_env("dev", {"sh", "-c", "echo ran"});
  EXPECT_EQ(r.status, 125) << describe(r);
  EXPECT_TRUE(one_line_error(r, gone));
  RunResult s = tg({"start", "dev"});
  EXPECT_NE(s.status, 0) << describe(s);
  EXPECT_TRUE(one_line_error(s, gone));
  RunResult ls = tg({"ls"});
  EXPECT_TRUE(contains(ls.out, " stopped ")) << ls.out;
  EXPECT_FALSE(exists(gone)) << "togo does not make the host folder";
}

TEST_P(SettingsTest, ShareOverProcIsRefused) {
  // A share must not replace the env's /proc (or part of it): runc refuses
  // such mounts (CVE-2019-19921), and masked /proc paths would be lost.
  std::string h = host_dir("p");
  for (std::string target : {"/proc", "/proc/sys"}) {
    SCOPED_TRACE(target);
    tg({"rm", "dev"});
    RunResult c = tg({"create", "dev", "--image", "test", "--share", h + ":" + target});
    if (c.status != 0) {
      EXPECT_EQ(c.status, 2) << describe(c);
      EXPECT_TRUE(one_line_error(c, target));
      continue;
    }
    RunResult r = in_env("dev", {"cat", target + "/f"});
    EXPECT_EQ(r.status, 125) << "the share was mounted over " << target << "\n" << describe(r);
    EXPECT_TRUE(one_line_error(r, target));
  }
}

}  // namespace
}  // namespace togo::test
