// Long-running environments and their sessions: `togo start`, `stop`, `exec`,
// `ps`, `logs`, and what a session's end does to the processes it left
// behind, orphans, zombies and signals sent to togo.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <sstream>

#include "fixture.h"

namespace togo::test {
namespace {

class SessionTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  }
  void TearDown() override {
    if (!IsSkipped()) tg({"stop", "dev", "--time", "1"});
  }

  void start_dev() {
    RunResult r = tg({"start", "dev"});
    ASSERT_EQ(r.status, 0) << describe(r);
    ASSERT_EQ(r.out, "dev\n");
  }

  /// togo ARGS... in the background; waits for "ready" on stdout if asked.
  std::unique_ptr<Background> bg(const std::vector<std::string>& args, bool ready = true) {
    std::vector<std::string> argv = {togo_bin(), "--store", store()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto b = std::make_unique<Background>(argv, as_uid());
    if (ready) {
      EXPECT_TRUE(b->wait_for_line("ready", 30)) << "stdout:\n"
                                                 << b->out() << "\nstderr:\n"
                                                 << b->err();
    }
    return b;
  }
  std::unique_ptr<Background> exec_sh(const std::string& script) {
    return bg({"exec", "dev", "--", "sh", "-c", script});
  }


  /// The row of `togo ps` for `env` split on blanks, or empty if none.
  std::vector<std::string> ps_row(const std::string& env) const {
    RunResult r = tg({"ps"});
    EXPECT_EQ(r.status, 0) << describe(r);
    for (const auto& l : lines_of(r.out)) {
      if (!l.starts_with(env + " ")) continue;
      std::vector<std::string> cols;
      std::istringstream in(l);
      for (std::string c; in >> c;) cols.push_back(c);
      return cols;
    }
    return {};
  }

  /// `togo ps dev` (stdout), failing the test unless it exits 0.
  std::string ps_dev() const {
    RunResult r = tg({"ps", "dev"});
    EXPECT_EQ(r.status, 0) << describe(r);
    return r.out;
  }
};
TOGO_AS_ROOT_AND_ROOTLESS(SessionTest);

TEST_P(SessionTest, StartRunsInTheBackgroundUntilStop) {
  ASSERT_NO_FATAL_FAILURE(start_dev());
  EXPECT_EQ(state_of("dev"), "running");
  auto row = ps_row("dev");
  ASSERT_GE(row.size(), 4u) << "no row for dev in `togo ps`";
  EXPECT_GT(std::stoi(row[1]), 1) << "PID is a host pid";
  EXPECT_EQ(row[2], "0") << "SESSIONS";
  EXPECT_EQ(row[3], "started") << "MODE";
  auto lines = lines_of(ps_dev());
  ASSERT_GE(lines.size(), 2u);
  EXPECT_TRUE(lines[0].starts_with("PID")) << lines[0];
  EXPECT_TRUE(contains(lines[1], " 1 ") && lines[1].ends_with("togo-init")) << lines[1];
  EXPECT_TRUE(lines[1].starts_with(row[1] + " ")) << "init's host pid is the env's PID";

  RunResult again = tg({"start", "dev"});
  EXPECT_EQ(again.status, 0) << describe(again);
  EXPECT_TRUE(contains(again.err, "already running")) << describe(again);

  RunResult stop = tg({"stop", "dev"});
  EXPECT_EQ(stop.status, 0) << describe(stop);
  EXPECT_EQ(stop.out, "dev\n");
  EXPECT_EQ(state_of("dev"), "stopped");
  EXPECT_TRUE(ps_row("dev").empty()) << tg({"ps"}).out;
}

TEST_P(SessionTest, PsOfAnEnvJustStoppedSaysItIsNotRunning) {
  // Right after `togo stop` returns, `togo ps dev` must not list what is left of
  // the dying init (exit 0, a pid with no command).
  for (int round = 0; round < 3; round++) {
    SCOPED_TRACE(round);
    ASSERT_NO_FATAL_FAILURE(start_dev());
    ASSERT_EQ(tg({"stop", "dev"}).status, 0);
    RunResult ps = tg({"ps", "dev"});
    EXPECT_EQ(ps.status, 4) << describe(ps);
    EXPECT_TRUE(one_line_error(ps, "not running"));
  }
}

TEST_P(SessionTest, ExecJoinsTheRunningEnv) {
  ASSERT_NO_FATAL_FAILURE(start_dev());
  RunResult w = tg({"exec", "dev", "--", "sh", "-c", "echo shared > /tmp/mark"});
  ASSERT_EQ(w.status, 0) << describe(w);
  EXPECT_EQ(tg({"exec", "dev", "--", "cat", "/tmp/mark"}).out, "shared\n") << "same /tmp";
  EXPECT_EQ(in_env("dev", {"cat", "/tmp/mark"}).out, "shared\n") << "run joins too";
  EXPECT_EQ(state_of("dev"), "running") << "a joined run does not stop a started env";
  RunResult st = tg({"exec", "dev", "--", "sh", "-c", "exit 3"});
  EXPECT_EQ(st.status, 3) << describe(st);

  // A session sees the processes of another one, and `togo ps dev` lists them.
  auto sleeper = exec_sh("echo ready; exec sleep 30");
  RunResult seen = tg({"exec", "dev", "--", "sh", "-c", "ps -o args | grep -c '^sleep 30'"});
  EXPECT_EQ(seen.out, "1\n") << describe(seen);
  EXPECT_TRUE(contains(ps_dev(), "sleep 30")) << ps_dev();
  auto row = ps_row("dev");
  ASSERT_GE(row.size(), 3u);
  EXPECT_EQ(row[2], "1") << "SESSIONS while one exec runs";
}

TEST_P(SessionTest, ExecIntoAStoppedEnvIsRefused) {
  RunResult r = tg({"exec", "dev", "--", "sh", "-c", "echo ran"});
  EXPECT_EQ(r.status, 125);
  EXPECT_TRUE(one_line_error(r, "not running"));
  EXPECT_EQ(lines_of(r.err).size(), 2u) << "with a hint: " << r.err;
  EXPECT_EQ(state_of("dev"), "stopped") << "exec does not start the env";
  RunResult missing = tg({"exec", "nope", "--", "true"});
  EXPECT_EQ(missing.status, 125);
  EXPECT_TRUE(one_line_error(missing, "nope"));
}

TEST_P(SessionTest, RunStartedEnvStopsWithItsLastSession) {
  auto first =
      bg({"run", "dev", "--", "sh", "-c", "echo x > /tmp/mark; echo ready; exec sleep 30"});
  auto row = ps_row("dev");
  ASSERT_GE(row.size(), 4u);
  EXPECT_EQ(row[3], "run") << "MODE";
  auto second = bg({"run", "dev", "--", "sh", "-c", "cat /tmp/mark; echo ready; exec sleep 30"});
  EXPECT_TRUE(second->wait_for_line("x", 1)) << "the second run joined: " << second->out();

  ::kill(first->pid(), SIGTERM);
  EXPECT_EQ(first->wait(10), std::optional<int>(128 + SIGTERM)) << first->err();
  EXPECT_EQ(state_of("dev"), "running") << "another session is still in it";
  EXPECT_EQ(tg({"exec", "dev", "--", "cat", "/tmp/mark"}).out, "x\n");

  ::kill(second->pid(), SIGTERM);
  EXPECT_EQ(second->wait(10), std::optional<int>(128 + SIGTERM)) << second->err();
  EXPECT_TRUE(eventually([&] { return state_of("dev") == "stopped"; }))
      << "the last session ended: " << state_of("dev");
  EXPECT_TRUE(ps_row("dev").empty());
}

TEST_P(SessionTest, RunReturnsOnlyOnceTheEnvItStartedHasStopped) {
  // `togo run dev -- x && togo rm dev` must not find the env still running.
  int running = 0;
  for (int round = 0; round < 20; round++) {
    ASSERT_EQ(in_env("dev", {"true"}).status, 0);
    if (state_of("dev") != "stopped") running++;
  }
  EXPECT_EQ(running, 0) << "of 20 runs, this many left `togo ls` saying the env still runs";
  for (int round = 0; round < 20; round++) {
    SCOPED_TRACE(round);
    ASSERT_EQ(in_env("dev", {"true"}).status, 0);
    RunResult rm = tg({"rm", "dev"});
    ASSERT_EQ(rm.status, 0) << describe(rm);
    ASSERT_NO_FATAL_FAILURE(create_env("dev", "test"));
  }
}

TEST_P(SessionTest, WhatASessionLeavesBehindIsKilled) {
  ASSERT_NO_FATAL_FAILURE(start_dev());
  auto other = exec_sh("echo ready; exec sleep 31");
  double t0 = now_s();
  // A background job, an orphan and a daemon in a POSIX session of its own.
  RunResult r = tg({"exec", "dev", "--", "sh", "-c",
                    "sleep 100 & (sleep 101 &); busybox setsid sleep 102 & echo left"},
                   {}, 20);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "left\n");
  EXPECT_LT(now_s() - t0, 10) << "togo waited for the leftovers";
  EXPECT_TRUE(eventually([&] {
    std::string ps = ps_dev();
    return !contains(ps, "sleep 100") && !contains(ps, "sleep 101") && !contains(ps, "sleep 102");
  })) << ps_dev();
  EXPECT_TRUE(contains(ps_dev(), "sleep 31")) << "other sessions are untouched";

  // The other way round: init serves one session itself, the others get a
  // leader. Here the leftovers are those of init's own session, and the
  // session beside it has a leader.
  ASSERT_EQ(tg({"stop", "dev", "--time", "1"}).status, 0);
  other.reset();
  ASSERT_NO_FATAL_FAILURE(start_dev());
  auto own = exec_sh("echo ready; exec sleep 33");
  auto beside = exec_sh("echo ready; exec sleep 31");
  ::kill(own->pid(), SIGTERM);
  EXPECT_EQ(own->wait(10), std::optional<int>(128 + SIGTERM)) << own->err();
  r = tg({"exec", "dev", "--", "sh", "-c",
          "echo $PPID; sleep 100 & (sleep 101 &); busybox setsid sleep 102 & echo left"},
         {}, 20);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "1\nleft\n") << "init's own session again, once the first one ended";
  EXPECT_TRUE(eventually([&] {
    std::string ps = ps_dev();
    return !contains(ps, "sleep 100") && !contains(ps, "sleep 101") && !contains(ps, "sleep 102");
  })) << ps_dev();
  EXPECT_TRUE(contains(ps_dev(), "sleep 31")) << "the session with a leader is untouched";

  // The same in an env that run starts.
  ASSERT_EQ(tg({"stop", "dev", "--time", "1"}).status, 0);
  t0 = now_s();
  RunResult run = sh("dev", "sleep 100 & busybox setsid sleep 102 & echo left");
  EXPECT_EQ(run.status, 0) << describe(run);
  EXPECT_LT(now_s() - t0, 10);
  EXPECT_TRUE(eventually([&] { return state_of("dev") == "stopped"; }));
}

TEST_P(SessionTest, OrphanZombiesAreReaped) {
  RunResult r = sh("dev",
                   "(sleep 0.1 &); for i in 1 2 3 4 5 6 7 8; do (true &); done; sleep 1; "
                   "ps -o stat,comm");
  EXPECT_EQ(r.status, 0) << describe(r);
  for (const auto& l : lines_of(r.out)) EXPECT_FALSE(l.starts_with("Z")) << r.out;
  EXPECT_TRUE(contains(r.out, "ps")) << r.out;

  // In a started env too, seen from another session.
  ASSERT_NO_FATAL_FAILURE(start_dev());
  // "ready" comes once the orphaned sleep 0.1 has ended.
  auto holder = exec_sh("(sleep 0.1 &); (true &); sleep 0.5; echo ready; exec sleep 30");
  RunResult z = tg({"exec", "dev", "--", "ps", "-o", "stat,comm"});
  EXPECT_EQ(z.status, 0) << describe(z);
  for (const auto& l : lines_of(z.out)) EXPECT_FALSE(l.starts_with("Z")) << z.out;
}

TEST_P(SessionTest, SignalsToExecReachTheCommand) {
  ASSERT_NO_FATAL_FAILURE(start_dev());
  const std::pair<int, int> cases[] = {{SIGTERM, 13}, {SIGHUP, 11}, {SIGINT, 12}, {SIGUSR1, 10}};
  for (auto [sig, code] : cases) {
    SCOPED_TRACE(strsignal(sig));
    auto b = exec_sh(
        "trap 'exit 10' USR1; trap 'exit 11' HUP; trap 'exit 12' INT; trap 'exit 13' TERM; "
        "echo ready; while :; do sleep 1 & wait; done");
    ASSERT_EQ(::kill(b->pid(), sig), 0);
    EXPECT_EQ(b->wait(10), std::optional<int>(code)) << "stderr: " << b->err();
  }
  EXPECT_EQ(state_of("dev"), "running") << "signals to a session do not stop the env";
}

TEST_P(SessionTest, Sigusr1ToRunReachesTheCommand) {
  auto b = bg({"run", "dev", "--", "sh", "-c",
               "trap 'exit 10' USR1; echo ready; while :; do sleep 1 & wait; done"});
  ASSERT_EQ(::kill(b->pid(), SIGUSR1), 0);
  EXPECT_EQ(b->wait(10), std::optional<int>(10)) << "stderr: " << b->err();
  // Unhandled, it kills the command, and togo reports 128+N.
  auto plain = bg({"run", "dev", "--", "sh", "-c", "echo ready; exec sleep 30"});
  ASSERT_EQ(::kill(plain->pid(), SIGUSR1), 0);
  EXPECT_EQ(plain->wait(10), std::optional<int>(128 + SIGUSR1)) << plain->err();
}

// A togo that dies hangs up on its command, as a closed terminal would;
// a command that ignores SIGHUP is killed a few seconds later. Both for the
// session init serves itself and for one beside it, with a leader.
TEST_P(SessionTest, ACommandWhoseTogoDiedEnds) {
  ASSERT_NO_FATAL_FAILURE(start_dev());
  auto own = exec_sh("trap '' HUP; echo ready; exec sleep 41");
  auto beside = exec_sh("trap '' HUP; echo ready; sleep 42");
  ASSERT_TRUE(contains(ps_dev(), "sleep 41") && contains(ps_dev(), "sleep 42")) << ps_dev();
  ::kill(own->pid(), SIGKILL);
  ::kill(beside->pid(), SIGKILL);
  double t0 = now_s();
  EXPECT_TRUE(eventually([&] {
    std::string ps = ps_dev();
    return !contains(ps, "sleep 41") && !contains(ps, "sleep 42");
  }, 15)) << ps_dev();
  EXPECT_GT(now_s() - t0, 3) << "SIGHUP was ignored: the kill comes after a grace period";
  EXPECT_EQ(state_of("dev"), "running") << "the env itself stays up";
}

TEST_P(SessionTest, StopTermsThenKillsAfterTheGracePeriod) {
  ASSERT_NO_FATAL_FAILURE(start_dev());
  auto polite = exec_sh("echo ready; exec sleep 30");
  auto stubborn = exec_sh("trap '' TERM; echo ready; while :; do sleep 0.2; done");
  double t0 = now_s();
  RunResult stop = tg({"stop", "dev", "--time", "1"}, {}, 30);
  double took = now_s() - t0;
  EXPECT_EQ(stop.status, 0) << describe(stop);
  EXPECT_EQ(stop.out, "dev\n");
  EXPECT_GE(took, 0.95) << "the grace period was cut short";
  EXPECT_LT(took, 8) << "SIGKILL did not follow the grace period";
  EXPECT_EQ(polite->wait(5), std::optional<int>(128 + SIGTERM)) << polite->err();
  EXPECT_EQ(stubborn->wait(5), std::optional<int>(128 + SIGKILL)) << stubborn->err();
  EXPECT_EQ(state_of("dev"), "stopped");
  RunResult again = tg({"stop", "dev"});
  EXPECT_EQ(again.status, 0) << describe(again);
  EXPECT_TRUE(contains(again.err, "not running")) << describe(again);
  RunResult bad = tg({"stop", "dev", "--time", "soon"});
  EXPECT_EQ(bad.status, 2) << describe(bad);
}

TEST_P(SessionTest, StopWithoutStubbornProcessesIsQuick) {
  ASSERT_NO_FATAL_FAILURE(start_dev());
  auto polite = exec_sh("echo ready; exec sleep 30");
  double t0 = now_s();
  RunResult stop = tg({"stop", "dev"});  // default grace: 10 s
  EXPECT_EQ(stop.status, 0) << describe(stop);
  EXPECT_LT(now_s() - t0, 5) << "stop waited although everything had ended";
}

TEST_P(SessionTest, LogsTellSessionsAndStop) {
  ASSERT_NO_FATAL_FAILURE(start_dev());
  ASSERT_EQ(tg({"exec", "dev", "--", "true"}).status, 0);
  ASSERT_EQ(tg({"stop", "dev"}).status, 0);
  RunResult logs = tg({"logs", "dev"});
  EXPECT_EQ(logs.status, 0) << describe(logs);
  bool session = false, stopped = false;
  for (const auto& l : lines_of(logs.out)) {
    if (contains(l, "session") && l.ends_with(": true")) session = true;
    if (contains(l, "stop")) stopped = true;
  }
  EXPECT_TRUE(session) << "no line for the session of `true`:\n" << logs.out;
  EXPECT_TRUE(stopped) << "no line for the stop:\n" << logs.out;
  RunResult missing = tg({"logs", "nope"});
  EXPECT_EQ(missing.status, 3) << describe(missing);
  EXPECT_TRUE(one_line_error(missing, "nope"));
}

TEST_P(SessionTest, LogsFollowPrintsNewLinesAndEndsWithTheEnv) {
  ASSERT_NO_FATAL_FAILURE(start_dev());
  auto follow = bg({"logs", "dev", "--follow"}, false);
  ASSERT_EQ(tg({"exec", "dev", "--", "togo-probe", "exit", "0"}).status, 0);
  auto seen = [&](const std::string& what) {
    return eventually([&] {
      follow->wait_for_line("\x01", 0.02);  // reads what is there
      return contains(follow->out(), what);
    });
  };
  EXPECT_TRUE(seen("togo-probe")) << "follow did not print the new session:\n" << follow->out();
  ASSERT_EQ(tg({"stop", "dev"}).status, 0);
  EXPECT_EQ(follow->wait(10), std::optional<int>(0)) << "follow did not end with the env:\n"
                                                     << follow->out() << follow->err();
}

TEST_P(SessionTest, PsJsonDescribesEnvsAndProcesses) {
  RunResult empty = tg({"ps", "--json"});
  EXPECT_EQ(empty.status, 0) << describe(empty);
  EXPECT_EQ(empty.out, "[]\n");
  ASSERT_NO_FATAL_FAILURE(start_dev());
  auto sleeper = exec_sh("echo ready; exec sleep 30");
  RunResult all = tg({"ps", "--json"});
  EXPECT_EQ(all.status, 0) << describe(all);
  EXPECT_TRUE(contains(all.out, "\"name\":\"dev\"")) << all.out;
  EXPECT_TRUE(contains(all.out, "\"sessions\":1")) << all.out;
  EXPECT_TRUE(contains(all.out, "\"mode\":\"started\"")) << all.out;
  RunResult one = tg({"ps", "dev", "--json"});
  EXPECT_EQ(one.status, 0) << describe(one);
  EXPECT_TRUE(contains(one.out, "\"command\":\"togo-init\"")) << one.out;
  EXPECT_TRUE(contains(one.out, "\"command\":\"sleep 30\"")) << one.out;
  // Pids are numbers, the env's as well as the host's.
  EXPECT_TRUE(contains(one.out, "\"env_pid\":1,")) << one.out;
  EXPECT_FALSE(contains(one.out, "\"env_pid\":\"")) << one.out;
}

}  // namespace
}  // namespace togo::test
