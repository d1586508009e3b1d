// `togo run` on a terminal: the command gets a pty of its own with the
// caller's window size, resizes and Ctrl-C/Ctrl-Z reach it, exit status passes
// through and the caller's terminal is left as it was. Without a terminal on
// both stdin and stdout there is no pty. Each test drives togo through a pty
// it creates itself.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <regex>

#include "fixture.h"

namespace togo::test {
namespace {

/// togo started with a terminal we own: `master` is our end, `slave` stays
/// open here so its settings can be read.
/// Which of the child's stdin and stdout are the terminal (else pipes).
struct Ends {
  bool in = true, out = true;
};

class Term {
 public:
  Term(const std::vector<std::string>& argv, std::optional<uid_t> as_uid, unsigned short rows,
       unsigned short cols, Ends ends = {}) {
    struct winsize ws {};
    ws.ws_row = rows;
    ws.ws_col = cols;
    if (::openpty(&master_, &slave_, nullptr, nullptr, &ws) < 0) {
      ADD_FAILURE() << "openpty: " << strerror(errno);
      return;
    }
    ::fcntl(master_, F_SETFD, FD_CLOEXEC);
    ::fcntl(slave_, F_SETFD, FD_CLOEXEC);
    if (as_uid && ::fchown(slave_, *as_uid, static_cast<gid_t>(-1)) < 0)
      ADD_FAILURE() << "fchown pty: " << strerror(errno);
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) < 0 || ::pipe2(out, O_CLOEXEC) < 0) {
      ADD_FAILURE() << "pipe: " << strerror(errno);
      return;
    }
    RunOptions o;
    o.as_uid = as_uid;
    if (as_uid) o.env = {"TERM=xterm"};
    std::vector<std::string> env = child_environment(o);
    std::vector<std::string> argv_s = argv;
    std::vector<char*> av, ev;
    for (auto& a : argv_s) av.push_back(a.data());
    av.push_back(nullptr);
    for (auto& e : env) ev.push_back(e.data());
    ev.push_back(nullptr);

    pid_ = ::fork();
    if (pid_ == 0) {
      ::setsid();
      ::ioctl(slave_, TIOCSCTTY, 0);
      ::dup2(ends.in ? slave_ : in[0], 0);
      ::dup2(ends.out ? slave_ : out[1], 1);
      ::dup2(slave_, 2);
      exec_child(av.data(), ev.data(), as_uid);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_ = in[1];
    out_ = out[0];
    ::close(in_);  // a piped stdin reads EOF at once
    in_ = -1;
    if (ends.out) {
      ::close(out_);
      out_ = -1;
    }
    for (int fd : {master_, out_}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }

  ~Term() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {master_, slave_, in_, out_})
      if (fd >= 0) ::close(fd);
  }

  pid_t pid() const { return pid_; }
  int slave() const { return slave_; }
  int master() const { return master_; }
  /// Everything togo wrote to the terminal / to the stdout pipe so far.
  const std::string& screen() const { return screen_; }
  const std::string& piped() const { return piped_; }

  void send(const std::string& s) {
    ASSERT_EQ(::write(master_, s.data(), s.size()), static_cast<ssize_t>(s.size()))
        << strerror(errno);
  }

  /// Waits until the terminal shows `needle` after what earlier expects
  /// matched; false on timeout.
  bool expect(const std::string& needle, double timeout_s = 15) {
    for (double end = now_s() + timeout_s;;) {
      size_t at = screen_.find(needle, mark_);
      if (at != std::string::npos) {
        mark_ = at + needle.size();
        return true;
      }
      if (now_s() >= end) return false;
      pump(0.05);
    }
  }

  /// The exit status (128+N for signal N), or nullopt on timeout.
  std::optional<int> wait(double timeout_s = 15) {
    for (double end = now_s() + timeout_s; !status_;) {
      int ws;
      if (::waitpid(pid_, &ws, WNOHANG) == pid_) {
        status_ = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        pump(0.05);
        break;
      }
      if (now_s() >= end) break;
      pump(0.02);
    }
    return status_;
  }

 private:
  void pump(double timeout_s) {
    struct pollfd p[2] = {{master_, POLLIN, 0}, {out_, POLLIN, 0}};
    if (::poll(p, 2, static_cast<int>(timeout_s * 1000)) <= 0) return;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(master_, buf, sizeof buf)) > 0) screen_.append(buf, static_cast<size_t>(n));
    while (out_ >= 0 && (n = ::read(out_, buf, sizeof buf)) > 0)
      piped_.append(buf, static_cast<size_t>(n));
    if (out_ >= 0 && n == 0) {
      ::close(out_);
      out_ = -1;
    }
  }

  int master_ = -1, slave_ = -1, in_ = -1, out_ = -1;
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string screen_, piped_;
  size_t mark_ = 0;
};

bool same_termios(const struct termios& a, const struct termios& b) {
  return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag &&
         a.c_lflag == b.c_lflag && std::memcmp(a.c_cc, b.c_cc, sizeof a.c_cc) == 0;
}

class PtyTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_NO_FATAL_FAILURE(make_env("dev"));
  }

  std::unique_ptr<Term> term(const std::vector<std::string>& cmd, unsigned short rows = 24,
                             unsigned short cols = 80, Ends ends = {}) {
    std::vector<std::string> argv = {togo_bin(), "--store", store(), "run", "dev", "--"};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return std::make_unique<Term>(argv, as_uid(), rows, cols, ends);
  }

  /// Waits until `togo ps dev` lists a process whose command is `command`.
  bool wait_for_process(const std::string& command, double timeout_s = 10) {
    for (double end = now_s() + timeout_s; now_s() < end; ::usleep(20000)) {
      RunResult ps = tg({"ps", "dev"});
      for (const auto& l : lines_of(ps.out))
        if (l.ends_with(" " + command)) return true;
    }
    return false;
  }

  /// Waits until our terminal is in raw mode (togo took it over).
  static bool wait_for_raw(int slave, double timeout_s = 10) {
    for (double end = now_s() + timeout_s; now_s() < end; ::usleep(10000)) {
      struct termios t;
      if (::tcgetattr(slave, &t) == 0 && !(t.c_lflag & ICANON)) return true;
    }
    return false;
  }
};
TOGO_AS_ROOT_AND_ROOTLESS(PtyTest);

TEST_P(PtyTest, CommandGetsAPtyWithTheCallersWindowSize) {
  auto t =
      term({"sh", "-c", "tty; stty size; test -t 0 && test -t 1 && echo both-$((6*7))"}, 37, 101);
  EXPECT_EQ(t->wait(), std::optional<int>(0)) << t->screen();
  EXPECT_TRUE(std::regex_search(t->screen(), std::regex("(^|\n)/dev/pts/[0-9]+\r?\n")))
      << t->screen();
  EXPECT_TRUE(t->expect("37 101")) << t->screen();
  EXPECT_TRUE(t->expect("both-42")) << t->screen();
}

TEST_P(PtyTest, ResizeReachesTheCommand) {
  auto t = term({"sh", "-c",
                 "trap 'echo winch; stty size' WINCH; echo ready; "
                 "while :; do sleep 0.05; done"},
                24, 80);
  ASSERT_TRUE(t->expect("ready")) << t->screen();
  struct winsize ws {};
  ws.ws_row = 50;
  ws.ws_col = 132;
  ASSERT_EQ(::ioctl(t->master(), TIOCSWINSZ, &ws), 0) << strerror(errno);
  EXPECT_TRUE(t->expect("winch")) << "no SIGWINCH reached the command:\n" << t->screen();
  EXPECT_TRUE(t->expect("50 132")) << "the new size did not reach the pty:\n" << t->screen();
  ::kill(t->pid(), SIGTERM);
  EXPECT_EQ(t->wait(), std::optional<int>(128 + SIGTERM)) << t->screen();
}

TEST_P(PtyTest, CtrlCInterruptsTheForegroundJobNotTheShell) {
  auto t = term({"sh"});
  t->send("echo up-$((40+2))\n");
  ASSERT_TRUE(t->expect("up-42")) << t->screen();
  t->send("sleep 100\n");
  ASSERT_TRUE(wait_for_process("sleep 100")) << t->screen();
  t->send("\x03");
  t->send("echo rc=$((0+$?))\n");
  EXPECT_TRUE(t->expect("rc=130")) << t->screen();
  t->send("exit 5\n");
  EXPECT_EQ(t->wait(), std::optional<int>(5)) << t->screen();
}

TEST_P(PtyTest, CtrlZStopsTheForegroundJob) {
  auto t = term({"sh"});
  t->send("echo up-$((40+2))\n");
  ASSERT_TRUE(t->expect("up-42")) << t->screen();
  t->send("sleep 100\n");
  ASSERT_TRUE(wait_for_process("sleep 100")) << t->screen();
  t->send("\x1a");
  t->send("echo back-$((1+1))\n");
  EXPECT_TRUE(t->expect("back-2")) << "the shell did not get the terminal back:\n" << t->screen();
  t->send("ps -o stat,args | grep -c '^T *sleep 100'\n");
  EXPECT_TRUE(t->expect("\n1\r\n")) << "sleep is not stopped:\n" << t->screen();
  // ash refuses the first exit while it has stopped jobs, not the second.
  t->send("kill -9 %1; exit 0\n");
  t->send("exit 0\n");
  EXPECT_EQ(t->wait(), std::optional<int>(0)) << t->screen();
}

TEST_P(PtyTest, ExitStatusPassesAndTheTerminalIsRestored) {
  struct termios before {
  }, after{};
  auto t = term({"sh"});
  ASSERT_EQ(::tcgetattr(t->slave(), &before), 0);
  ASSERT_TRUE(before.c_lflag & ICANON);
  ASSERT_TRUE(wait_for_raw(t->slave())) << "togo did not put the terminal in raw mode:\n"
                                        << t->screen();
  t->send("exit 7\n");
  EXPECT_EQ(t->wait(), std::optional<int>(7)) << t->screen();
  ASSERT_EQ(::tcgetattr(t->slave(), &after), 0);
  EXPECT_TRUE(same_termios(before, after))
      << "lflag " << std::oct << before.c_lflag << " -> " << after.c_lflag;
}

TEST_P(PtyTest, TerminalIsRestoredWhenTheCommandDiesOfASignal) {
  struct termios before {
  }, after{};
  {
    auto t = term({"sh"});
    ASSERT_EQ(::tcgetattr(t->slave(), &before), 0);
    t->send("echo up-$((40+2))\n");
    ASSERT_TRUE(t->expect("up-42")) << t->screen();
    t->send("kill -9 $$\n");
    EXPECT_EQ(t->wait(), std::optional<int>(128 + SIGKILL)) << t->screen();
    ASSERT_EQ(::tcgetattr(t->slave(), &after), 0);
    EXPECT_TRUE(same_termios(before, after)) << "after the shell was killed";
  }
  {
    // SIGTERM to togo reaches the command; togo still restores the terminal.
    auto t = term({"sh", "-c", "echo ready; exec sleep 100"});
    ASSERT_TRUE(t->expect("ready")) << t->screen();
    ASSERT_TRUE(wait_for_raw(t->slave()));
    ::kill(t->pid(), SIGTERM);
    EXPECT_EQ(t->wait(), std::optional<int>(128 + SIGTERM)) << t->screen();
    ASSERT_EQ(::tcgetattr(t->slave(), &after), 0);
    EXPECT_TRUE(same_termios(before, after)) << "after SIGTERM to togo";
  }
}

TEST_P(PtyTest, NoPtyUnlessBothStdinAndStdoutAreATerminal) {
  // stdout is a pipe: the command writes to it directly, byte for byte.
  auto t = term({"sh", "-c", "test -t 1 || echo out-is-no-tty; printf 'a\\nb\\0c'"}, 24, 80,
                {.in = true, .out = false});
  EXPECT_EQ(t->wait(), std::optional<int>(0)) << t->screen();
  EXPECT_EQ(t->piped(), std::string("out-is-no-tty\na\nb\0c", 19));

  // stdin is not a terminal: no pty either.
  auto u = term({"sh", "-c", "test -t 0 || echo in-is-no-tty-$((1+1)); tty"}, 24, 80,
                {.in = false, .out = true});
  EXPECT_EQ(u->wait(), std::optional<int>(1)) << "tty: not a tty\n" << u->screen();
  EXPECT_TRUE(u->expect("in-is-no-tty-2")) << u->screen();
  EXPECT_FALSE(std::regex_search(u->screen(), std::regex("/dev/pts/[0-9]"))) << u->screen();
}

}  // namespace
}  // namespace togo::test
