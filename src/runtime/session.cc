#include "runtime/session.h"

#include <fcntl.h>
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
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <tuple>

#include "base/sys.h"
#include "base/text.h"
#include "runtime/passwd.h"
#include "runtime/userdb.h"
#include "runtime/userdb_env.h"

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
  for (;;) {
    for (pid_t pid : child_pids()) ::kill(pid, SIGKILL);
    if (::waitpid(-1, nullptr, 0) < 0 && errno == ECHILD) return;
  }
}

int64_t now_ms() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

constexpr int kExecFailed = 0, kCwdFailed = 1, kUserFailed = 2;
constexpr int kHangUpGraceMs = 5000;

// Everything the command's child needs, made before it is started: the
// child shares the starter's memory until it execs (vfork), so it must not
// allocate.
struct Prepared {
  std::string path;  // set for a login shell: exec'd by path with "-name" as argv[0]
  std::vector<std::string> argv, env;
  std::string cwd;
  uint32_t uid = 0, gid = 0;
  std::vector<char*> argv_ptrs, env_ptrs;  // null-terminated, into argv and env
  std::vector<std::string> cwd_parents;    // "/a", "/a/b", ...: made if cwd is missing
  std::optional<std::string> search;       // the command's PATH, if it has one

  Prepared() = default;
  Prepared(Prepared&&) = default;  // the vectors move their elements, pointers stay good
  Prepared(const Prepared&) = delete;

  void finish(const SpawnRequest& req) {
    for (auto& a : argv) argv_ptrs.push_back(a.data());
    argv_ptrs.push_back(nullptr);
    for (auto& e : env) {
      env_ptrs.push_back(e.data());
      if (e.starts_with("PATH=")) search = e.substr(5);
    }
    env_ptrs.push_back(nullptr);
    // A working directory asked for is made, as engines do.
    if (!req.cwd.empty()) {
      std::string partial;
      for (auto& part : text::split(cwd, '/'))
        if (!part.empty()) cwd_parents.push_back(partial.append("/").append(part));
    }
  }
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
    p.argv = {std::string("-").append(shell, shell.rfind('/') + 1)};
  } else {
    p.argv = req.argv;
  }
  p.finish(req);
  return p;
}

// execve(2) of `file` as execvp(3) does, but searching the command's own
// PATH, and without allocating: a name without '/' is tried in each of its
// directories; a file without an interpreter line runs under /bin/sh.
// Returns only on failure, with errno set.
void exec_search(const Prepared& p) {
  char* const* argv = p.argv_ptrs.data();
  char* const* envp = p.env_ptrs.data();
  auto exec_one = [&](const char* file) {
    ::execve(file, argv, envp);
    if (errno != ENOEXEC) return;
    size_t n = p.argv_ptrs.size();  // with its null
    char** sh_argv = static_cast<char**>(__builtin_alloca((n + 1) * sizeof(char*)));
    sh_argv[0] = const_cast<char*>("/bin/sh");
    sh_argv[1] = const_cast<char*>(file);
    for (size_t i = 1; i < n; i++) sh_argv[i + 1] = argv[i];
    ::execve("/bin/sh", sh_argv, envp);
    errno = ENOEXEC;
  };
  if (!p.path.empty()) return exec_one(p.path.c_str());
  const char* file = argv[0];
  if (*file == '\0') {
    errno = ENOENT;
    return;
  }
  if (std::strchr(file, '/')) return exec_one(file);
  size_t flen = std::strlen(file);
  if (flen > NAME_MAX) {
    errno = ENAMETOOLONG;
    return;
  }
  const char* dirs = p.search ? p.search->c_str() : "/bin:/usr/bin";
  char buf[PATH_MAX];
  bool denied = false;
  int last = ENOENT;
  for (const char* d = dirs;; ) {
    const char* colon = std::strchr(d, ':');
    size_t dlen = colon ? static_cast<size_t>(colon - d) : std::strlen(d);
    if (dlen + 1 + flen < sizeof buf) {
      size_t at = 0;
      if (dlen == 0) {
        buf[at++] = '.';  // an empty entry is the working directory
      } else {
        std::memcpy(buf, d, dlen);
        at = dlen;
      }
      buf[at++] = '/';
      std::memcpy(buf + at, file, flen + 1);
      exec_one(buf);
      if (errno == EACCES) denied = true;
      else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV &&
               errno != ETIMEDOUT)
        return;  // found, but it would not run: that is the answer
      else last = errno;
    }
    if (!colon) break;
    d = colon + 1;
  }
  errno = denied ? EACCES : last;
}

// In the command's child, before it execs: never returns. Reports a failure
// on `report`. Shares the starter's memory (vfork): system calls only.
[[noreturn]] void exec_command(const Prepared& p, int in, int out, int err, bool pty,
                               int report) {
  sigset_t none;
  ::sigemptyset(&none);
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) ::sigaction(sig, &dfl, nullptr);
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
  // Raw calls: they change this process's ids alone, which is all the
  // child is (glibc's wrappers would look for threads to change too).
  if (p.uid != 0 || p.gid != 0) {
    gid_t g = p.gid;
    if (::syscall(SYS_setgroups, 1, &g) < 0 && errno != EPERM) die(errno, kUserFailed);
    if (::syscall(SYS_setresgid, p.gid, p.gid, p.gid) < 0 ||
        ::syscall(SYS_setresuid, p.uid, p.uid, p.uid) < 0)
      die(errno, kUserFailed);
  }
  if (::chdir(p.cwd.c_str()) < 0) {
    // A working directory asked for is made; a missing home falls back to "/".
    if (!p.cwd_parents.empty()) {
      for (auto& dir : p.cwd_parents) ::mkdir(dir.c_str(), 0755);
      if (::chdir(p.cwd.c_str()) < 0) die(errno, kCwdFailed);
    } else if (::chdir("/") < 0) {
      die(errno, kCwdFailed);
    }
  }
  // SECURITY: no descriptor of togo's reaches the command.
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  exec_search(p);
  die(errno);
  ::_exit(127);
}

// A command that keeps its ids gets vfork: no copy of this process's
// memory for a child that only execs. This process waits until it has,
// as it would anyway for the child's report. A child that switches user
// gets a fork: it would rewrite the shared memory's dumpable flag, which
// keeps /proc/<init or leader>/exe closed to the env. Kept apart so that
// nothing of a larger frame lives across the vfork.
__attribute__((noinline)) pid_t spawn_command(const Prepared& p, int in, int out, int err,
                                              bool pty, int report) {
  pid_t pid = p.uid == 0 && p.gid == 0 ? ::vfork() : ::fork();
  if (pid == 0) exec_command(p, in, out, err, pty, report);
  return pid;
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

std::vector<pid_t> child_pids() {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/children", static_cast<int>(::gettid()));
  std::vector<pid_t> pids;
  Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return pids;
  auto text = sys::read_all(fd.get(), path);
  if (!text) return pids;
  for (auto& word : text::split(*text, ' '))
    if (pid_t pid = static_cast<pid_t>(std::atoi(word.c_str())); pid > 0) pids.push_back(pid);
  return pids;
}

bool Session::start(Fd channel, const SpawnRequest& req, std::vector<Fd> stdio,
                    const std::function<void(pid_t)>& announce,
                    const std::function<void()>& failing) {
  channel_ = std::move(channel);
  // Tells the host the command did not start. Only an exec that failed is
  // the command's (126/127 there, by its errno); anything before it is
  // togo's (125), sent as a negative errno.
  auto fail = [&](const Error& e, bool exec_failed = false) {
    int32_t code = exec_failed ? e.err : -(e.err > 0 ? e.err : EINVAL);
    if (failing) failing();
    (void)send_message(channel_.get(), MsgType::kFailed,
                       encode_u32s({static_cast<uint32_t>(code)}) + e.message);
    return false;
  };

  auto prepared = prepare(req);
  if (!prepared) return fail(prepared.error());
  const Prepared& p = *prepared;
  Fd master, slave;
  int in, out, err;
  if (req.pty) {
    auto pair = open_pty(req.rows, req.cols);
    if (!pair) return fail(pair.error());
    master = std::move(pair->first);
    slave = std::move(pair->second);
    in = out = err = slave.get();
  } else {
    if (stdio.size() != 3)
      return fail(Error{EINVAL, ErrorKind::kBadInput, "spawn without stdio", "", 0});
    in = stdio[0].get();
    out = stdio[1].get();
    err = stdio[2].get();
  }
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) < 0) return fail(sys_error(errno, "pipe").error());
  Fd report_r(pipefd[0]), report_w(pipefd[1]);

  pid_t cmd = spawn_command(p, in, out, err, req.pty, report_w.get());
  if (cmd < 0) return fail(sys_error(errno, "fork").error());
  // SECURITY: still closed to the env (see spawn_command).
  ::prctl(PR_SET_DUMPABLE, 0);
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
    return fail(e, exec_err[1] == kExecFailed);
  }
  cmd_ = cmd;
  if (announce) announce(cmd);
  std::vector<int> fds;
  if (master.valid()) fds.push_back(master.get());
  (void)send_message(channel_.get(), MsgType::kStarted, encode_u32s({static_cast<uint32_t>(cmd)}),
                     fds);
  return true;
}

void Session::on_channel() {
  auto m = recv_message(channel_.get());
  // Once the command is reaped its pid may name another process.
  if (ended_) {
    if (!m) hung_up_ = true;
    return;
  }
  if (!m) {
    // The togo on the host is gone: hang up on the command like a closed
    // terminal would, and make sure it ends.
    hung_up_ = true;
    kill_at_ = now_ms() + kHangUpGraceMs;
    ::kill(-cmd_, SIGHUP);
    ::kill(cmd_, SIGHUP);
    ::kill(cmd_, SIGCONT);
  } else if (m->type == MsgType::kSignal) {
    auto v = decode_u32s(m->body, 1);
    if (v && (*v)[0] > 0 && (*v)[0] < NSIG) ::kill(cmd_, static_cast<int>((*v)[0]));
  }
}

int Session::timeout_ms() const {
  if (kill_at_ < 0 || ended_) return -1;
  int64_t left = kill_at_ - now_ms();
  return left > 0 ? static_cast<int>(left) : 0;
}

void Session::on_timeout() {
  if (kill_at_ < 0 || ended_ || now_ms() < kill_at_) return;
  ::kill(-cmd_, SIGKILL);
  ::kill(cmd_, SIGKILL);
  kill_at_ = now_ms() + kHangUpGraceMs;
}

void Session::command_ended(int st) {
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  ended_ = true;
}

void Session::report() {
  if (!hung_up_)
    (void)send_message(channel_.get(), MsgType::kExit,
                       encode_u32s({static_cast<uint32_t>(status_)}));
  channel_.reset();
}

void leader_main(Fd channel, const SpawnRequest& req, std::vector<Fd> stdio) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // The leader outlives `togo stop`'s SIGTERM to report the command's end;
  // its SIGKILL ends it.
  sigset_t mask;
  ::sigemptyset(&mask);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT}) ::sigaddset(&mask, sig);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  Session s;
  if (!s.start(std::move(channel), req, std::move(stdio))) ::_exit(0);

  sigset_t chld;
  ::sigemptyset(&chld);
  ::sigaddset(&chld, SIGCHLD);
  Fd sigs(::signalfd(-1, &chld, SFD_CLOEXEC));
  while (!s.ended()) {
    struct pollfd pfd[2] = {{sigs.get(), POLLIN, 0}, {s.channel(), POLLIN, 0}};
    if (::poll(pfd, 2, s.timeout_ms()) == 0) s.on_timeout();
    if (pfd[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      (void)!::read(sigs.get(), &si, sizeof si);
      int st;
      pid_t pid;
      while ((pid = ::waitpid(-1, &st, WNOHANG)) > 0)
        if (pid == s.command()) s.command_ended(st);
    }
    if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) s.on_channel();
  }
  end_leftovers();
  s.report();
  ::_exit(0);
}

}  // namespace togo::runtime
