// `togo run`: what a command sees inside an environment (namespaces, ids,
// mounts, devices, descriptors) and what passes through it (stdin, stdout,
// stderr, exit status).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "fixture.h"

namespace togo::test {
namespace {

class RunTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  }
};
TOGO_AS_ROOT_AND_ROOTLESS(RunTest);

bool has_mount(const std::map<std::string, std::vector<std::string>>& p, const std::string& m) {
  auto it = p.find("mount");
  return it != p.end() && std::find(it->second.begin(), it->second.end(), m) != it->second.end();
}

TEST_P(RunTest, ProbeSeesTheEnvsOwnHostnamePidsAndIds) {
  auto p = probe("dev");
  EXPECT_EQ(probe_value(p, "hostname"), "dev");
  int pid = std::stoi(probe_value(p, "pid").empty() ? "-1" : probe_value(p, "pid"));
  EXPECT_GT(pid, 0);
  EXPECT_LE(pid, 3) << "the env has its own pid namespace";
  // The only session of the env is init's own: the command is its child.
  EXPECT_EQ(probe_value(p, "ppid"), "1") << "init runs the command itself";
  EXPECT_EQ(probe_value(p, "uid"), "0");
  EXPECT_EQ(probe_value(p, "euid"), "0");
  EXPECT_EQ(probe_value(p, "gid"), "0");
  if (rootless()) {
    EXPECT_EQ(probe_value(p, "uid_map"), "0 " + std::to_string(host_uid()) + " 1");
    EXPECT_EQ(probe_value(p, "gid_map"), "0 " + std::to_string(host_uid()) + " 1");
  } else {
    EXPECT_EQ(probe_value(p, "uid_map"), "0 0 4294967295");
    EXPECT_EQ(probe_value(p, "gid_map"), "0 0 4294967295");
  }
  EXPECT_EQ(probe_value(p, "os_id"), "togotest") << "/etc/os-release is the image's";
  EXPECT_EQ(probe_value(p, "cwd"), "/root") << "root's home from the image's /etc/passwd";
}

// The command is found in the env's PATH as execvp(3) finds it: a
// directory where it is not executable is passed over, a script without
// "#!" runs under /bin/sh, and a name found nowhere is 127.
TEST_P(RunTest, TheCommandIsSearchedInTheEnvsPath) {
  ASSERT_EQ(sh("dev",
               "mkdir -p /usr/local/sbin /usr/local/bin;"
               "echo 'echo from-script \"$@\"' > /usr/local/bin/plain; chmod 755 /usr/local/bin/plain;"
               "printf 'echo denied\\n' > /usr/local/sbin/twice; chmod 644 /usr/local/sbin/twice;"
               "printf 'echo allowed\\n' > /usr/local/bin/twice; chmod 755 /usr/local/bin/twice")
                .status,
            0);
  RunResult plain = in_env("dev", {"plain", "x"});
  EXPECT_EQ(plain.status, 0) << describe(plain);
  EXPECT_EQ(plain.out, "from-script x\n");
  RunResult twice = in_env("dev", {"twice"});
  EXPECT_EQ(twice.status, 0) << describe(twice);
  EXPECT_EQ(twice.out, "allowed\n");
  RunResult none = in_env("dev", {"no-such-command"});
  EXPECT_EQ(none.status, 127) << describe(none);
  RunResult denied = in_env("dev", {"/usr/local/sbin/twice"});
  EXPECT_EQ(denied.status, 126) << describe(denied);
}

TEST_P(RunTest, ProbeSeesTheEnvsMounts) {
  auto p = probe("dev");
  EXPECT_EQ(probe_value(p, "root_fstype"), "overlay");
  for (const char* m :
       {"/proc proc", "/dev tmpfs", "/dev/pts devpts", "/dev/shm tmpfs", "/tmp tmpfs"})
    EXPECT_TRUE(has_mount(p, m)) << "no mount " << m << " in\n"
                                 << testing::PrintToString(p["mount"]);
  for (const auto& m : p["mount"]) {
    EXPECT_TRUE(m.starts_with("/")) << m;
    EXPECT_EQ(m.find(store()), std::string::npos) << "a host path is visible: " << m;
  }
}

TEST_P(RunTest, CopyRootfsEnvIsNotOverlay) {
  ASSERT_NO_FATAL_FAILURE(create_env("solo", "test", {"--rootfs", "copy"}));
  RunResult ls = tg({"ls"});
  ASSERT_EQ(ls.status, 0) << describe(ls);
  bool found = false;
  for (const auto& line : lines_of(ls.out))
    if (line.starts_with("solo ")) {
      found = true;
      EXPECT_NE(line.find(" copy "), std::string::npos) << line;
    }
  EXPECT_TRUE(found) << ls.out;
  auto p = probe("solo");
  EXPECT_EQ(probe_value(p, "hostname"), "solo");
  EXPECT_EQ(probe_value(p, "os_id"), "togotest");
  EXPECT_NE(probe_value(p, "root_fstype"), "");
  EXPECT_NE(probe_value(p, "root_fstype"), "overlay");
  RunResult w = sh("solo", "echo kept > /root/f");
  ASSERT_EQ(w.status, 0) << describe(w);
  EXPECT_EQ(in_env("solo", {"cat", "/root/f"}).out, "kept\n");
  EXPECT_EQ(in_env("dev", {"test", "-e", "/root/f"}).status, 1) << "envs do not share writes";
}

// A run that started its env returns once its command ended and the env
// with it: the env reads as stopped, and can be removed, or started again,
// right away (what is left of its init's exit, those wait for).
TEST_P(RunTest, AnEnvIsStoppedWhenTheRunThatStartedItReturns) {
  auto state = [&](const std::string& name) {
    for (auto& line : lines_of(tg({"ls"}).out))
      if (line.starts_with(name + " ")) return contains(line, " stopped ") ? "stopped" : line;
    return std::string("missing");
  };
  for (int i = 0; i < 5; i++) {
    std::string name = "brief" + std::to_string(i);
    ASSERT_NO_FATAL_FAILURE(create_env(name, "test"));
    RunResult w = sh(name, "echo kept > /root/f");
    ASSERT_EQ(w.status, 0) << describe(w);
    EXPECT_EQ(state(name), "stopped");
    RunResult rm = tg({"rm", name});
    EXPECT_EQ(rm.status, 0) << describe(rm);
  }
  // A command that cannot start ends the env as one that ran would.
  for (int i = 0; i < 5; i++) {
    RunResult r = in_env("dev", {"/no/such/command"});
    ASSERT_EQ(r.status, 127) << describe(r);
    EXPECT_EQ(state("dev"), "stopped");
    EXPECT_NE(tg({"ps", "dev"}).status, 0) << "ps lists an env that ended";
  }
  for (int i = 0; i < 5; i++) {
    RunResult w = sh("dev", "echo " + std::to_string(i) + " >> /root/runs; wc -l < /root/runs");
    ASSERT_EQ(w.status, 0) << describe(w);
    EXPECT_EQ(w.out, std::to_string(i + 1) + "\n");
  }
  // Each run's session is in the env's log; an env that ended with the run
  // that started it logs no stop.
  RunResult logs = tg({"logs", "dev"});
  int sessions = 0;
  for (auto& line : lines_of(logs.out)) sessions += line.ends_with(": sh");
  EXPECT_EQ(sessions, 5) << logs.out;
  EXPECT_FALSE(contains(logs.out, "env stopped")) << logs.out;
}

TEST_P(RunTest, DevicesExistAndWork) {
  RunResult r = sh("dev",
                   "for d in null zero full random urandom tty; do test -c /dev/$d || "
                   "echo \"missing /dev/$d\"; done; "
                   "test -e /dev/ptmx || echo 'missing /dev/ptmx'; "
                   "test -d /dev/pts || echo 'missing /dev/pts'; "
                   "test -d /dev/shm || echo 'missing /dev/shm'; "
                   "echo x > /dev/null || echo 'cannot write /dev/null'; "
                   "head -c 4 /dev/urandom | wc -c; head -c 3 /dev/zero | wc -c; "
                   "echo x > /dev/full 2>/dev/null && echo '/dev/full accepted a write'; "
                   "echo ok > /dev/shm/f && cat /dev/shm/f");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "4\n3\nok\n");
  EXPECT_EQ(r.err, "");
}

TEST_P(RunTest, OnlyStdioReachesTheCommand) {
  // togo itself is started with extra descriptors open; none may leak in.
  RunOptions o = opts();
  RunResult r = run({"sh", "-c", "exec 7</dev/null 9>/dev/null; exec \"$@\"", "sh", togo_bin(),
                     "--store", store(), "run", "dev", "--", "togo-probe"},
                    o);
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(probe_value(parse_probe(r.out), "fds"), "0 1 2");
}

TEST_P(RunTest, StdinPassesThroughByteExact) {
  std::string input;
  for (int round = 0; round < 1024; round++)
    for (int b = 0; b < 256; b++) input += static_cast<char>(b);
  RunResult r = in_env("dev", {"cat"}, input);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.size(), input.size());
  EXPECT_TRUE(r.out == input) << "cat did not echo the 256 KiB of bytes 0-255 exactly";
  RunResult small = in_env("dev", {"cat"}, "hello\n");
  EXPECT_EQ(small.out, "hello\n");
}

TEST_P(RunTest, LargeOutputPassesThrough) {
  RunResult r = in_env("dev", {"head", "-c", "4000000", "/dev/zero"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.size(), 4000000u);
  EXPECT_EQ(r.out.find_first_not_of('\0'), std::string::npos);
}

TEST_P(RunTest, StdoutAndStderrAreSeparate) {
  RunResult r = sh("dev", "echo out; echo err >&2; echo out2");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "out\nout2\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST_P(RunTest, ExitStatusPassesThrough) {
  EXPECT_EQ(in_env("dev", {"true"}).status, 0);
  EXPECT_EQ(in_env("dev", {"false"}).status, 1);
  RunResult r42 = sh("dev", "exit 42");
  EXPECT_EQ(r42.status, 42) << describe(r42);
  EXPECT_EQ(r42.err, "") << "togo adds nothing when the command fails";
  EXPECT_EQ(in_env("dev", {"togo-probe", "exit", "255"}).status, 255);
  RunResult k9 = sh("dev", "kill -9 $$");
  EXPECT_EQ(k9.status, 128 + 9) << describe(k9);
  RunResult k15 = in_env("dev", {"togo-probe", "kill", "15"});
  EXPECT_EQ(k15.status, 128 + 15) << describe(k15);
}

TEST_P(RunTest, CommandNotFoundIs127) {
  RunResult r = in_env("dev", {"no-such-command"});
  EXPECT_EQ(r.status, 127);
  EXPECT_TRUE(one_line_error(r, "no-such-command"));
  RunResult abs = in_env("dev", {"/usr/bin/no-such-command"});
  EXPECT_EQ(abs.status, 127);
  EXPECT_TRUE(one_line_error(abs, "/usr/bin/no-such-command"));
}

TEST_P(RunTest, NotExecutableIs126) {
  RunResult w =
      sh("dev", "printf '#!/bin/sh\\necho ran\\n' > /root/script; chmod 644 /root/script");
  ASSERT_EQ(w.status, 0) << describe(w);
  RunResult r = in_env("dev", {"/root/script"});
  EXPECT_EQ(r.status, 126);
  EXPECT_TRUE(one_line_error(r, "/root/script"));
  RunResult dir = in_env("dev", {"/root"});
  EXPECT_EQ(dir.status, 126) << describe(dir);
}

TEST_P(RunTest, NoCommandRunsTheLoginShell) {
  RunResult r = tg({"run", "dev"}, "echo $0; echo $HOME; pwd; exit 7\n");
  EXPECT_EQ(r.status, 7) << describe(r);
  EXPECT_EQ(r.out, "-sh\n/root\n/root\n");
}

// --user: the command runs as the invoker, who is in the env's passwd with
// their home; a login shell the image lacks (the host's zsh here) gives way
// to one it has, for $SHELL and for a login.
TEST_P(RunTest, UserRunsCommandsAsTheInvoker) {
  if (rootless() && !as_uid()) GTEST_SKIP() << "needs a user the host's /etc/passwd lacks";
  const std::string uid = std::to_string(unprivileged_uid());
  std::string home = sub("home");
  ASSERT_EQ(::mkdir(home.c_str(), 0755), 0);
  RunOptions o = opts();
  if (rootless()) {
    ASSERT_EQ(::chown(home.c_str(), host_uid(), host_uid()), 0);
    o.env = {"USER=me", "HOME=" + home, "SHELL=/bin/zsh"};
  } else {
    // Root on behalf of someone (sudo): that person, their home under /home.
    o.env = {"SUDO_UID=" + uid, "SUDO_GID=" + uid, "SUDO_USER=me", "SHELL=/bin/zsh"};
    home = "/home/me";
  }
  auto tgu = [&](const std::vector<std::string>& args, const std::string& input = {}) {
    RunOptions with_input = o;
    with_input.input = input;
    return togo(store(), args, with_input);
  };
  RunResult c = tgu({"create", "me", "--image", "test", "--user"});
  ASSERT_EQ(c.status, 0) << describe(c);
  RunResult r = tgu({"run", "me", "--", "sh", "-c",
                     "id -u; id -un; echo $HOME; echo $SHELL; grep ^me: /etc/passwd"});
  EXPECT_EQ(r.status, 0) << describe(r);
  std::string shell = rootless() ? "/bin/zsh" : "/bin/sh";
  EXPECT_EQ(r.out, uid + "\nme\n" + home + "\n/bin/sh\nme:x:" + uid + ":" + uid + "::" + home +
                       ":" + shell + "\n");
  RunResult login = tgu({"run", "me"}, "echo $0; exit 3\n");
  EXPECT_EQ(login.status, 3) << describe(login);
  EXPECT_EQ(login.out, "-sh\n");
}

// An image's User that its /etc/passwd lacks: togo cannot start the command.
TEST_P(RunTest, ImageUserMissingFromPasswdIsTogosFailure) {
  RunResult c = tg({"commit", "dev", "ghostly", "--change", "USER=ghost"});
  ASSERT_EQ(c.status, 0) << describe(c);
  ASSERT_NO_FATAL_FAILURE(create_env("haunted", "ghostly"));
  RunResult r = in_env("haunted", {"true"});
  EXPECT_EQ(r.status, 125) << describe(r);
  EXPECT_TRUE(one_line_error(r, "ghost is not in /etc/passwd"));
}

TEST_P(RunTest, MissingEnvIsTogosFailure) {
  RunResult r = in_env("nope", {"true"});
  EXPECT_EQ(r.status, 125);
  EXPECT_TRUE(one_line_error(r, "nope"));
}

}  // namespace
}  // namespace togo::test
