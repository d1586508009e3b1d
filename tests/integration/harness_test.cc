// Tests of the test harness itself: running children, the test image, the probe.
#include "harness.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace togo::test {
namespace {

TEST(Harness, ExitCodePassesThrough) {
  EXPECT_EQ(run({"sh", "-c", "exit 0"}).status, 0);
  EXPECT_EQ(run({"sh", "-c", "exit 3"}).status, 3);
  EXPECT_EQ(run({"false"}).status, 1);
}

TEST(Harness, SignalIsReportedAs128PlusN) {
  EXPECT_EQ(run({"sh", "-c", "kill -TERM $$"}).status, 128 + SIGTERM);
  EXPECT_EQ(run({"sh", "-c", "kill -KILL $$"}).status, 128 + SIGKILL);
}

TEST(Harness, CapturesStdoutAndStderrSeparately) {
  RunResult r = run({"sh", "-c", "echo out; echo err >&2"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST(Harness, StdinComesFromInput) {
  RunResult r = run({"cat"}, {.input = "hello\nworld\n"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "hello\nworld\n");
  // Empty input is an immediate EOF, not an inherited terminal.
  EXPECT_EQ(run({"cat"}).out, "");
}

TEST(Harness, LargeOutputOnBothStreamsAndLargeInput) {
  // Far more than a pipe buffer on each stream at once: a harness that reads
  // one stream at a time deadlocks here.
  std::string input(3 << 20, 'x');
  RunResult r = run({"sh", "-c", "head -c 2000000 /dev/zero >&2; cat; head -c 2000000 /dev/zero >&2"},
                    {.input = input, .timeout_s = 60});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.size(), input.size());
  EXPECT_EQ(r.err.size(), 4000000u);
}

TEST(Harness, ChildThatStopsReadingDoesNotKillUs) {
  RunResult r = run({"true"}, {.input = std::string(1 << 20, 'y')});
  EXPECT_EQ(r.status, 0);
}

TEST(Harness, TimeoutKillsAndFails) {
  EXPECT_NONFATAL_FAILURE(run({"sleep", "30"}, {.timeout_s = 1}), "timed out after 1s: sleep 30");
  // The child exits but leaves a descendant holding its stdout: that is a hang
  // for anyone reading the output, so it fails too, and the group is killed.
  EXPECT_NONFATAL_FAILURE(run({"sh", "-c", "sleep 30 & exit 0"}, {.timeout_s = 1}),
                          "a descendant kept its stdout/stderr open");
}

TEST(Harness, ExtraEnvironmentReplacesInherited) {
  RunResult r = run({"sh", "-c", "echo $TOGO_HARNESS_X; echo $HOME"},
                    {.env = {"TOGO_HARNESS_X=1", "HOME=/elsewhere"}});
  EXPECT_EQ(r.out, "1\n/elsewhere\n");
}

TEST(Harness, OnlyStandardFdsAreInherited) {
  RunResult r = run({"sh", "-c", "ls /proc/$$/fd"});
  EXPECT_EQ(r.status, 0);
  // The shell's own listing may add one fd for the directory it reads.
  EXPECT_TRUE(r.out.starts_with("0\n1\n2\n")) << r.out;
  EXPECT_LE(std::count(r.out.begin(), r.out.end(), '\n'), 4) << r.out;
}

TEST(Harness, MissingProgramIs127) {
  RunResult r = run({"/nonexistent/program"});
  EXPECT_EQ(r.status, 127);
  EXPECT_NE(r.err.find("No such file"), std::string::npos) << r.err;
}

TEST(Harness, CwdOption) {
  TempDir d;
  RunResult r = run({"pwd"}, {.cwd = d.path()});
  EXPECT_EQ(r.out, d.path() + "\n");
}

TEST(Harness, AsUidDropsPrivilegesAndEnvironment) {
  if (!running_as_root()) GTEST_SKIP() << "as_uid needs root";
  uid_t u = unprivileged_uid();
  setenv("TOGO_HARNESS_LEAK", "1", 1);
  RunResult r = run({"sh", "-c", "id -u; id -g; id -G; echo $HOME; echo $EXTRA; "
                                 "echo ${TOGO_HARNESS_LEAK:-unset}"},
                    {.as_uid = u, .env = {"EXTRA=1"}});
  unsetenv("TOGO_HARNESS_LEAK");
  ASSERT_EQ(r.status, 0) << describe(r);
  std::string n = std::to_string(u);
  const char* tmp = getenv("TMPDIR");
  std::string home = tmp && *tmp ? tmp : "/tmp";
  EXPECT_EQ(r.out, n + "\n" + n + "\n" + n + "\n" + home + "\n1\nunset\n");
}

TEST(Harness, TempDirIsRemovedEvenIfReadOnlyOrForeign) {
  std::string path;
  {
    TempDir d(running_as_root() ? std::optional<uid_t>(unprivileged_uid()) : std::nullopt);
    path = d.path();
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    if (running_as_root()) {
      EXPECT_EQ(st.st_uid, unprivileged_uid());
    }
    ASSERT_EQ(run({"sh", "-c", "mkdir -p a/b && touch a/b/f && chmod 0444 a/b/f && chmod 0555 a/b a"},
                  {.as_uid = running_as_root() ? std::optional<uid_t>(unprivileged_uid())
                                               : std::nullopt,
                   .cwd = path})
                  .status,
              0);
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0) << path << " still exists";
}

TEST(Harness, TempDirDetachesMountsInsteadOfDeletingThrough) {
  if (!running_as_root()) GTEST_SKIP() << "mounting needs root";
  TempDir outside;
  ASSERT_EQ(run({"touch", outside.sub("keep")}).status, 0);
  {
    TempDir d;
    ASSERT_EQ(mkdir(d.sub("m").c_str(), 0755), 0);
    ASSERT_EQ(mount(outside.path().c_str(), d.sub("m").c_str(), nullptr, MS_BIND, nullptr), 0);
    ASSERT_EQ(access(d.sub("m/keep").c_str(), F_OK), 0);
  }
  EXPECT_EQ(access(outside.sub("keep").c_str(), F_OK), 0) << "removal went through a bind mount";
}

TEST(Harness, TestImageHasBusyboxAndProbe) {
  TOGO_REQUIRE_BUSYBOX();
  std::string tar = test_rootfs_tar();
  ASSERT_FALSE(tar.empty());
  EXPECT_EQ(test_rootfs_tar(), tar) << "built once, then cached";
  RunResult list = run({"tar", "-tvzf", tar});
  ASSERT_EQ(list.status, 0) << describe(list);
  auto has = [&](const std::string& name) {
    return list.out.find(" " + name + "\n") != std::string::npos ||
           list.out.find(" " + name + " -> ") != std::string::npos;
  };
  EXPECT_TRUE(has("bin/busybox")) << list.out;
  EXPECT_TRUE(has("bin/sh")) << list.out;
  EXPECT_TRUE(has("usr/bin/togo-probe")) << list.out;
  EXPECT_TRUE(has("etc/os-release")) << list.out;
  EXPECT_NE(list.out.find("drwxrwxrwt 0/0"), std::string::npos) << "tmp is 1777, owned by 0:0";
  std::ifstream os(test_rootfs_dir() + "/etc/os-release");
  std::string first;
  std::getline(os, first);
  EXPECT_EQ(first, "ID=togotest");
}

TEST(Harness, ProbeReportsOnTheHost) {
  RunResult r = run({probe_bin()});
  ASSERT_EQ(r.status, 0) << describe(r);
  auto p = parse_probe(r.out);
  for (const char* key : {"hostname", "pid", "ppid", "uid", "gid", "euid", "uid_map", "gid_map",
                          "cwd", "os_id", "cap_eff", "no_new_privs", "seccomp", "root_fstype",
                          "mount", "fds"})
    EXPECT_TRUE(p.count(key)) << "missing " << key << " in\n" << r.out;
  EXPECT_EQ(probe_value(p, "uid"), std::to_string(getuid()));
  EXPECT_EQ(probe_value(p, "fds"), "0 1 2");
  EXPECT_GT(p["mount"].size(), 1u);
  EXPECT_NE(std::find(p["mount"].begin(), p["mount"].end(), "/proc proc"), p["mount"].end());
  // uid_map fields are single-space separated, lines joined by ','.
  EXPECT_EQ(probe_value(p, "uid_map").find("  "), std::string::npos);
}

TEST(Harness, ProbeSubcommands) {
  EXPECT_EQ(run({probe_bin(), "exit", "42"}).status, 42);
  EXPECT_EQ(run({probe_bin(), "kill", "9"}).status, 128 + 9);
  EXPECT_EQ(run({probe_bin(), "kill", "15"}).status, 128 + 15);
  TempDir d;
  std::string f = d.sub("f");
  EXPECT_EQ(run({probe_bin(), "write", f, "some text"}).status, 0);
  EXPECT_EQ(run({probe_bin(), "cat", f}).out, "some text");
  RunResult missing = run({probe_bin(), "cat", d.sub("nope")});
  EXPECT_EQ(missing.status, 1);
  EXPECT_TRUE(missing.err.starts_with("togo-probe: ")) << missing.err;
}

TEST(Harness, ParseProbe) {
  auto p = parse_probe("a=1\nmount=/ ext4\nmount=/proc proc\nempty=\nnoise\n");
  EXPECT_EQ(probe_value(p, "a"), "1");
  EXPECT_EQ(p["mount"], (std::vector<std::string>{"/ ext4", "/proc proc"}));
  EXPECT_TRUE(p.count("empty"));
  EXPECT_EQ(probe_value(p, "empty"), "");
  EXPECT_EQ(probe_value(p, "absent"), "");
  EXPECT_FALSE(p.count("noise"));
}

}  // namespace
}  // namespace togo::test
