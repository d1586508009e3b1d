#include "runtime/session.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <tuple>

#include "base/sys.h"
#include "base/text.h"
#include "runtime/passwd.h"
#include "runtime/userdb.h"
#include "runtime/userdb_env.h"

extern char** environ;

namespace togo::runtime {

namespace {

// The pty pair for a session, from the env's own devpts instance.
Result<std::pair<Fd, Fd>> open_pty(uint16_t rows, uint16_t cols) {
  Fd master(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master.valid()) return sys_error(errno, "opening /dev/ptmx");
  int unlock = 0;
  if (::ioctl(master.get(), TIOCSPTLCK, &unlock) < 0) return sys_error(errno, "unlocking the pty");
  Fd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave.valid()) return sys_error(errno, "opening the pty's terminal side");
  if (rows && cols) {
    struct winsize ws = {rows, cols, 0, 0};
    ::ioctl(master.get(), TIOCSWINSZ, &ws);
  }
  return std::pair{std::move(master), std::move(slave)};
}

// Kills and reaps everything the command left behind: as a subreaper the
// leader inherits every orphan of the session. Each round kills the current
// children, then waits for one to go; it ends when none is left.
void end_leftovers() {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/children", static_cast<int>(::gettid()));
  for (;;) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      auto text = sys::read_all(fd, path);
      ::close(fd);
      if (text)
        for (auto& word : text::split(*text, ' '))
          if (pid_t pid = static_cast<pid_t>(std::atoi(word.c_str())); pid > 0) ::kill(pid, SIGKILL);
    }
    if (::waitpid(-1, nullptr, 0) < 0 && errno == ECHILD) return;
  }
}

constexpr int kExecFailed = 0, kCwdFailed = 1, kUserFailed = 2;

struct Prepared {
  std::string path;  // set for a login shell: exec'd by path with "-name" as argv[0]
  std::vector<std::string> argv, env;
  std::string cwd;
  uint32_t uid = 0, gid = 0;
};

Result<Prepared> prepare(const SpawnRequest& req) {
  Prepared p;
  p.uid = req.uid;
  p.gid = req.gid;
  // The env's own files, read as any file of the image is (bounded, no FIFO
  // or device); one that cannot be read counts as empty.
  Fd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return sys_error(errno, "opening the env's root");
  auto env_file = [&](const char* path) { return read_env_file(root.get(), path).value_or(""); };
  std::string passwd = env_file("etc/passwd");
  if (!req.user.empty()) {
    std::string group = req.user.find(':') == std::string::npos ? "" : env_file("etc/group");
    std::tie(p.uid, p.gid) = TRY(resolve_image_user(req.user, passwd, group));
  }
  PasswdEntry user;
  find_passwd_uid(passwd.data(), passwd.size(), p.uid, &user);
  // A login shell the env has: passwd may name one it lacks (--user writes
  // the host's), and the merged root is only seen from inside.
  std::string shell = pick_shell(
      user.shell, [&](const std::string& path) { return env_has_program(root.get(), path); });
  char host[65] = {};
  ::gethostname(host, sizeof host - 1);
  p.env = command_environment(req, host, user.name, user.home, shell);
  p.cwd = req.cwd.empty() ? user.home : req.cwd;
  if (req.argv.empty()) {
    p.path = shell;
    p.argv = {"-" + shell.substr(shell.rfind('/') + 1)};
  } else {
    p.argv = req.argv;
  }
  return p;
}

// In the command's child: never returns. Reports exec failure on `report`.
[[noreturn]] void exec_command(const Prepared& p, const SpawnRequest& req, int in, int out,
                               int err, bool pty, int report) {
  sigset_t none;
  ::sigemptyset(&none);
  for (int sig = 1; sig < NSIG; sig++) ::signal(sig, SIG_DFL);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::setsid();
  if (pty) ::ioctl(in, TIOCSCTTY, 0);
  ::dup2(in, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  auto die = [&](int e, int what = kExecFailed) {
    int msg[2] = {e, what};
    (void)!::write(report, msg, sizeof msg);
    ::_exit(e == ENOENT ? 127 : 126);
  };
  if (p.uid != 0 || p.gid != 0) {
    gid_t g = p.gid;
    if (::setgroups(1, &g) < 0 && errno != EPERM) die(errno, kUserFailed);
    if (::setresgid(p.gid, p.gid, p.gid) < 0 || ::setresuid(p.uid, p.uid, p.uid) < 0)
      die(errno, kUserFailed);
  }
  if (::chdir(p.cwd.c_str()) < 0) {
    // A working directory asked for is made, as engines do; a missing home
    // falls back to "/".
    if (!req.cwd.empty()) {
      std::string partial;
      for (auto& part : text::split(p.cwd, '/'))
        if (!part.empty()) ::mkdir((partial += "/" + part).c_str(), 0755);
      if (::chdir(p.cwd.c_str()) < 0) die(errno, kCwdFailed);
    } else if (::chdir("/") < 0) {
      die(errno, kCwdFailed);
    }
  }
  // SECURITY: no descriptor of togo's reaches the command.
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  std::vector<char*> argv, envp;
  for (auto& a : p.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : p.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  environ = envp.data();
  if (!p.path.empty())
    ::execve(p.path.c_str(), argv.data(), envp.data());
  else
    ::execvp(argv[0], argv.data());
  die(errno);
  ::_exit(127);
}

}  // namespace

std::vector<std::string> command_environment(const SpawnRequest& req, const std::string& hostname,
                                             const std::string& user, const std::string& home,
                                             const std::string& shell) {
  std::vector<std::string> env = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "container=togo",
      "HOSTNAME=" + hostname,
      "HOME=" + home,
      "USER=" + user,
      "LOGNAME=" + user,
      "SHELL=" + shell,
  };
  for (auto& kv : req.env) {
    std::string key = kv.substr(0, kv.find('=') + 1);
    std::erase_if(env, [&](const std::string& e) { return e.compare(0, key.size(), key) == 0; });
    env.push_back(kv);
  }
  return env;
}

void leader_main(Fd channel, const SpawnRequest& req, std::vector<Fd> stdio) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  int ch = channel.get();
  // Tells the host the command did not start. Only an exec that failed is
  // the command's (126/127 there, by its errno); anything before it is
  // togo's (125), sent as a negative errno.
  auto fail = [&](const Error& e, bool exec_failed = false) {
    int32_t code = exec_failed ? e.err : -(e.err > 0 ? e.err : EINVAL);
    (void)send_message(ch, MsgType::kFailed,
                       encode_u32s({static_cast<uint32_t>(code)}) + e.message);
    ::_exit(0);
  };

  auto prepared = prepare(req);
  if (!prepared) fail(prepared.error());
  Prepared p = std::move(*prepared);
  Fd master, slave;
  int in, out, err;
  if (req.pty) {
    auto pair = open_pty(req.rows, req.cols);
    if (!pair) fail(pair.error());
    master = std::move(pair->first);
    slave = std::move(pair->second);
    in = out = err = slave.get();
  } else {
    if (stdio.size() != 3) fail(Error{EINVAL, ErrorKind::kBadInput, "spawn without stdio", "", 0});
    in = stdio[0].get();
    out = stdio[1].get();
    err = stdio[2].get();
  }
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) < 0) fail(sys_error(errno, "pipe").error());
  Fd report_r(pipefd[0]), report_w(pipefd[1]);

  // The leader outlives `togo stop`'s SIGTERM to report the command's end;
  // its SIGKILL ends it.
  sigset_t mask;
  ::sigemptyset(&mask);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT}) ::sigaddset(&mask, sig);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  pid_t cmd = ::fork();
  if (cmd < 0) fail(sys_error(errno, "fork").error());
  if (cmd == 0) exec_command(p, req, in, out, err, req.pty, report_w.get());
  report_w.reset();
  slave.reset();
  stdio.clear();

  int exec_err[2] = {0, 0};
  if (::read(report_r.get(), exec_err, sizeof exec_err) == sizeof exec_err) {
    ::waitpid(cmd, nullptr, 0);
    std::string what =
        exec_err[1] == kCwdFailed    ? "working directory " + p.cwd
        : exec_err[1] == kUserFailed ? "switching to user " + std::to_string(p.uid) + ":" +
                                           std::to_string(p.gid) +
                                           (req.user.empty() ? "" : " (the image's User " +
                                                                        req.user + ")")
                                     : "running " + (p.path.empty() ? p.argv[0] : p.path);
    Error e = sys_error(exec_err[0], what).error();
    if (exec_err[1] == kUserFailed && exec_err[0] == EINVAL)
      e.message += " (that id is not mapped into the env: without subordinate ids only your "
                   "own id exists inside)";
    fail(e, exec_err[1] == kExecFailed);
  }
  report_r.reset();
  std::vector<int> fds;
  if (master.valid()) fds.push_back(master.get());
  (void)send_message(ch, MsgType::kStarted, encode_u32s({static_cast<uint32_t>(cmd)}), fds);
  master.reset();

  sigset_t chld;
  ::sigemptyset(&chld);
  ::sigaddset(&chld, SIGCHLD);
  Fd sigs(::signalfd(-1, &chld, SFD_CLOEXEC));
  bool hung_up = false;
  int status = 0;
  for (;;) {
    struct pollfd pfd[2] = {{sigs.get(), POLLIN, 0}, {hung_up ? -1 : ch, POLLIN, 0}};
    if (::poll(pfd, 2, hung_up ? 5000 : -1) == 0) ::kill(-cmd, SIGKILL), ::kill(cmd, SIGKILL);
    if (pfd[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      (void)!::read(sigs.get(), &si, sizeof si);
      int st;
      pid_t pid;
      bool done = false;
      while ((pid = ::waitpid(-1, &st, WNOHANG)) > 0)
        if (pid == cmd) {
          status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
          done = true;
        }
      if (done) break;
    }
    if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      auto m = recv_message(ch);
      if (!m) {
        // The togo on the host is gone: hang up on the command like a
        // closed terminal would, and make sure it ends.
        hung_up = true;
        ::kill(-cmd, SIGHUP);
        ::kill(cmd, SIGHUP);
        ::kill(cmd, SIGCONT);
      } else if (m->type == MsgType::kSignal) {
        auto v = decode_u32s(m->body, 1);
        if (v && (*v)[0] > 0 && (*v)[0] < NSIG) ::kill(cmd, static_cast<int>((*v)[0]));
      }
    }
  }
  end_leftovers();
  if (!hung_up)
    (void)send_message(ch, MsgType::kExit, encode_u32s({static_cast<uint32_t>(status)}));
  ::_exit(0);
}

}  // namespace togo::runtime
