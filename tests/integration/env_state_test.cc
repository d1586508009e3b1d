// An environment's state across runs: what persists, what is fresh each time,
// what the host provides, and what happens while it is running.
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/sha256.h"
#include "fixture.h"

namespace togo::test {
namespace {

class EnvStateTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  }

  /// `togo run dev -- sh -c script` in the background, once it printed "ready".
  std::unique_ptr<Background> start(const std::string& script) {
    auto bg =
        std::make_unique<Background>(std::vector<std::string>{togo_bin(), "--store", store(), "run",
                                                              "dev", "--", "sh", "-c", script},
                                     as_uid());
    EXPECT_TRUE(bg->wait_for_line("ready", 30)) << "stdout:\n"
                                                << bg->out() << "\nstderr:\n"
                                                << bg->err();
    return bg;
  }

};
TOGO_AS_ROOT_AND_ROOTLESS(EnvStateTest);

TEST_P(EnvStateTest, WritesPersistAcrossRuns) {
  RunResult w = sh("dev",
                   "echo hello > /root/f && mkdir -p /srv/data && echo x > /srv/data/y "
                   "&& rm /etc/os-release");
  ASSERT_EQ(w.status, 0) << describe(w);
  RunResult r = sh("dev", "cat /root/f /srv/data/y; test -e /etc/os-release || echo deleted");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "hello\nx\ndeleted\n");
}

TEST_P(EnvStateTest, WritesAreGoneAfterRmAndCreate) {
  ASSERT_EQ(sh("dev", "echo hello > /root/f").status, 0);
  ASSERT_EQ(list_dir(store() + "/envs").size(), 1u);
  RunResult rm = tg({"rm", "dev"});
  EXPECT_EQ(rm.status, 0) << describe(rm);
  EXPECT_EQ(rm.out, "dev\n");
  EXPECT_EQ(list_dir(store() + "/envs"), std::vector<std::string>{})
      << "the env's directory is removed";
  RunResult ls = tg({"ls"});
  EXPECT_EQ(lines_of(ls.out).size(), 1u) << ls.out;
  ASSERT_NO_FATAL_FAILURE(create_env("dev", "test"));
  RunResult r = sh("dev", "test -e /root/f && echo still there; echo $?");
  EXPECT_EQ(r.out, "1\n") << describe(r);
}

// Overlayfs makes its work directory anew at every mount; togo moves the
// old one aside and removes it while the env starts, so none piles up, not
// even one left by a start that was cut short.
TEST_P(EnvStateTest, OverlayWorkDirectoriesDoNotPileUp) {
  ASSERT_EQ(sh("dev", "true").status, 0);
  auto envs = list_dir(store() + "/envs");
  ASSERT_EQ(envs.size(), 1u);
  std::string work = store() + "/envs/" + envs[0] + "/work";
  EXPECT_EQ(list_dir(work), std::vector<std::string>{"work"});
  std::string left = work + "/retired-left";
  ASSERT_EQ(::mkdir(left.c_str(), 0755), 0);
  write_file(left + "/#1", "");
  if (rootless()) {
    ASSERT_EQ(::chown(left.c_str(), host_uid(), host_uid()), 0);
    ASSERT_EQ(::chown((left + "/#1").c_str(), host_uid(), host_uid()), 0);
  }
  for (int i = 0; i < 3; i++) ASSERT_EQ(sh("dev", "echo x > /root/f").status, 0);
  EXPECT_EQ(list_dir(work), std::vector<std::string>{"work"});
  EXPECT_EQ(sh("dev", "cat /root/f").out, "x\n");

  // One that holds something (a copy-up cut short, owned by an id of the
  // env's) is left where it is, for overlayfs to empty.
  ASSERT_EQ(::chmod((work + "/work").c_str(), 0700), 0);
  write_file(work + "/work/#2", "");
  ASSERT_EQ(::chown((work + "/work/#2").c_str(), 4242, 4242), 0);
  ASSERT_EQ(sh("dev", "true").status, 0);
  EXPECT_EQ(list_dir(work), std::vector<std::string>{"work"});
  EXPECT_EQ(::access((work + "/work/#2").c_str(), F_OK), -1) << "overlayfs emptied it";
}

// A run reads the env from its copy (cache/run/NAME) while the catalog is
// unchanged, and from the catalog once anything changed it. The copy is
// altered here (and its checksum made to match) to tell which one a run read.
TEST_P(EnvStateTest, ARunReadsItsCopyUntilTheCatalogChanges) {
  ASSERT_EQ(sh("dev", "true").status, 0);
  std::string copy = store() + "/cache/run/dev";
  auto text = read_file(copy);
  ASSERT_TRUE(text) << "the run left a copy";
  size_t first = text->find('\n'), second = text->find('\n', first + 1);
  ASSERT_NE(second, std::string::npos);
  std::string body = text->substr(second + 1);
  size_t at = body.find("\"settings\":\"\"");
  ASSERT_NE(at, std::string::npos) << body;
  body.replace(at, 13, "\"settings\":\"hostname=fromcopy\\n\"");
  std::string generation = text->substr(first + 1, text->find(' ', first) - first - 1);
  write_file(copy, text->substr(0, first + 1) + generation + " " + Sha256::digest_of(body) +
                       "\n" + body);
  EXPECT_EQ(sh("dev", "hostname").out, "fromcopy\n") << "the run read its copy";

  ASSERT_EQ(tg({"config", "dev", "hostname=fromcatalog"}).status, 0);
  EXPECT_EQ(sh("dev", "hostname").out, "fromcatalog\n") << "a change retires the copy";
  EXPECT_EQ(sh("dev", "hostname").out, "fromcatalog\n") << "and the new copy says the same";
}

TEST_P(EnvStateTest, RmRemovesWhatTheEnvLockedDown) {
  RunResult w = sh("dev",
                   "mkdir -p /root/ro/sub && touch /root/ro/f /root/ro/sub/g && "
                   "chmod 000 /root/ro/f && chmod 0555 /root/ro/sub /root/ro");
  ASSERT_EQ(w.status, 0) << describe(w);
  RunResult rm = tg({"rm", "dev"});
  EXPECT_EQ(rm.status, 0) << describe(rm);
  EXPECT_EQ(list_dir(store() + "/envs"), std::vector<std::string>{});
}

TEST_P(EnvStateTest, ImageIsNotChangedByTheEnv) {
  ASSERT_EQ(sh("dev", "echo changed > /etc/os-release").status, 0);
  ASSERT_NO_FATAL_FAILURE(create_env("other", "test"));
  EXPECT_EQ(probe_value(probe("other"), "os_id"), "togotest");
  EXPECT_EQ(in_env("dev", {"cat", "/etc/os-release"}).out, "changed\n");
}

TEST_P(EnvStateTest, TmpIsEmptyInEachRun) {
  RunResult w = sh("dev", "ls -A /tmp; touch /tmp/x; ls -A /tmp");
  EXPECT_EQ(w.status, 0) << describe(w);
  EXPECT_EQ(w.out, "x\n");
  RunResult r = in_env("dev", {"ls", "-A", "/tmp"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "") << "/tmp is a fresh tmpfs in each run";
  EXPECT_EQ(in_env("dev", {"stat", "-c", "%a", "/tmp"}).out, "1777\n");
}

TEST_P(EnvStateTest, ResolvConfIsTheHosts) {
  auto host = read_file("/etc/resolv.conf");
  if (!host) GTEST_SKIP() << "this host has no /etc/resolv.conf";
  RunResult r = in_env("dev", {"cat", "/etc/resolv.conf"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, *host);
}

TEST_P(EnvStateTest, RunningEnvCannotBeRemovedAndASecondRunJoinsIt) {
  auto bg = start("echo joined > /tmp/mark; echo ready; exec sleep 5");
  EXPECT_EQ(state_of("dev"), "running");
  RunResult json = tg({"ls", "--json"});
  EXPECT_NE(json.out.find("\"state\":\"running\""), std::string::npos) << json.out;

  RunResult rm = tg({"rm", "dev"});
  EXPECT_EQ(rm.status, 4);
  EXPECT_TRUE(one_line_error(rm, "running"));
  EXPECT_EQ(list_dir(store() + "/envs").size(), 1u);

  // A second run joins the running env: same /tmp, same processes.
  RunResult second = in_env("dev", {"sh", "-c", "cat /tmp/mark; ps -o comm | grep -c sleep"});
  EXPECT_EQ(second.status, 0) << describe(second);
  EXPECT_EQ(second.out, "joined\n1\n");

  // SIGTERM reaches sleep, which dies of it.
  ::kill(bg->pid(), SIGTERM);
  EXPECT_EQ(bg->wait(10), std::optional<int>(128 + SIGTERM)) << bg->err();
  EXPECT_EQ(state_of("dev"), "stopped");
  RunResult rm2 = tg({"rm", "dev"});
  EXPECT_EQ(rm2.status, 0) << describe(rm2);
}

TEST_P(EnvStateTest, SigtermToTogoReachesTheCommand) {
  auto bg = start("trap 'exit 9' TERM; echo ready; sleep 30 & wait");
  double t0 = now_s();
  ASSERT_EQ(::kill(bg->pid(), SIGTERM), 0);
  auto status = bg->wait(10);
  EXPECT_EQ(status, std::optional<int>(9)) << "stderr: " << bg->err();
  EXPECT_LT(now_s() - t0, 5.0);
  EXPECT_EQ(bg->err(), "");
}

TEST_P(EnvStateTest, SighupAndSigintToTogoReachTheCommand) {
  for (int sig : {SIGHUP, SIGINT}) {
    SCOPED_TRACE(sig);
    auto bg = start(
        "trap 'exit 11' HUP; trap 'exit 12' INT; echo ready; "
        "while :; do sleep 1 & wait; done");
    ASSERT_EQ(::kill(bg->pid(), sig), 0);
    EXPECT_EQ(bg->wait(10), std::optional<int>(sig == SIGHUP ? 11 : 12)) << "stderr: " << bg->err();
  }
}

TEST_P(EnvStateTest, KillingTogoEndsTheEnv) {
  auto bg = start("echo ready; exec sleep 30");
  double t0 = now_s();
  ASSERT_EQ(::kill(bg->pid(), SIGKILL), 0);
  EXPECT_EQ(bg->wait(10), std::optional<int>(128 + SIGKILL));
  // The env's processes die with it: the env is free again.
  std::string state;
  while ((state = state_of("dev")) != "stopped" && now_s() - t0 < 5) ::usleep(20000);
  EXPECT_EQ(state, "stopped");
  RunResult r = in_env("dev", {"true"});
  EXPECT_EQ(r.status, 0) << describe(r);
}

}  // namespace
}  // namespace togo::test
