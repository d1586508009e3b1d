#include "net/helper_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/fd.h"
#include "base/sys.h"

extern char** environ;

namespace togo::net {

namespace {

// What the child reports when a step before exec fails.
struct SpawnReport {
  int32_t step;
  int32_t err;
};
enum SpawnStep : int32_t { kParent, kDescriptors, kMountNamespace, kBind, kExec };

constexpr int kFirstFree = 10;  // descriptors are moved above the helper's numbers

[[noreturn]] void fail(int report, SpawnStep step) {
  SpawnReport r{step, errno};
  (void)!::write(report, &r, sizeof r);
  ::_exit(127);
}

// Runs in the child after fork: nothing here allocates.
[[noreturn]] void child(const SpawnSpec& spec, char* const* argv, pid_t parent, int devnull,
                        int output, const std::vector<std::pair<int, int>>& fds, int report) {
  // SECURITY: the helper must not outlive togo; a parent that died before
  // prctl would leave it orphaned, so check after.
  if (spec.die_with_togo && ::prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(report, kParent);
  if (spec.die_with_togo && ::getppid() != parent) {
    errno = ESRCH;  // togo is already gone
    fail(report, kParent);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  // Its own session: a terminal's Ctrl-C is for the env's command, and togo
  // stops the helper itself.
  ::setsid();
  // Not holding the directory togo runs in (perhaps on the removable drive).
  (void)!::chdir("/");

  if (::dup2(devnull, 0) < 0 || ::dup2(output, 1) < 0 || ::dup2(output, 2) < 0)
    fail(report, kDescriptors);
  for (auto [from, to] : fds)
    if (::dup2(from, to) < 0) fail(report, kDescriptors);
  // SECURITY: nothing else of togo's reaches the helper.
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  for (auto [from, to] : fds)
    if (::fcntl(to, F_SETFD, 0) < 0) fail(report, kDescriptors);

  if (!spec.bind_from.empty()) {
    if (::unshare(CLONE_NEWNS) < 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) < 0)
      fail(report, kMountNamespace);
    if (::mount(spec.bind_from.c_str(), spec.bind_onto.c_str(), nullptr, MS_BIND, nullptr) < 0)
      fail(report, kBind);
  }
  ::execve(argv[0], argv, environ);
  fail(report, kExec);
}

// A descriptor duplicated at kFirstFree or above, so no dup2 in the child
// overwrites a source before it is used.
Result<Fd> high(int fd) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, kFirstFree);
  if (d < 0) return sys_error(errno, "duplicating a descriptor");
  return Fd(d);
}

}  // namespace

std::string describe_status(int status) {
  if (status < 0) return "exited";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

HelperProcess& HelperProcess::operator=(HelperProcess&& o) noexcept {
  if (this != &o) {
    stop(0, std::chrono::milliseconds(0));
    pid_ = std::exchange(o.pid_, -1);
  }
  return *this;
}

Result<HelperProcess> HelperProcess::spawn(const SpawnSpec& spec) {
  if (spec.argv.empty()) return error("starting a helper: no program given");
  std::vector<char*> argv;
  for (auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  Fd devnull = TRY(sys::open_at(AT_FDCWD, "/dev/null", O_RDWR));
  devnull = TRY(high(devnull.get()));
  Fd output = spec.output_fd >= 0 ? TRY(high(spec.output_fd)) : TRY(high(devnull.get()));
  std::vector<Fd> held;
  std::vector<std::pair<int, int>> fds;
  for (auto [from, to] : spec.fds) {
    if (to < 3 || to >= kFirstFree)
      return error("starting a helper: descriptor number out of range");
    held.push_back(TRY(high(from)));
    fds.push_back({held.back().get(), to});
  }
  int report_fds[2];
  TRY(sys::pipe(report_fds));
  Fd report_r(report_fds[0]), report_w(report_fds[1]);
  if (report_w.get() < kFirstFree) report_w = TRY(high(report_w.get()));

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return sys_error(errno, "starting " + spec.argv[0] + " (fork)");
  if (pid == 0) child(spec, argv.data(), parent, devnull.get(), output.get(), fds, report_w.get());
  report_w.reset();

  HelperProcess p;
  p.pid_ = pid;
  // EOF: exec succeeded (the pipe is close-on-exec).
  SpawnReport r{};
  ssize_t n;
  do n = ::read(report_r.get(), &r, sizeof r);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof r)) return p;
  p.stop(0, std::chrono::milliseconds(0));
  std::string what = "starting " + spec.argv[0];
  switch (r.step) {
    case kParent:
      what += " (togo was exiting)";
      break;
    case kDescriptors:
      what += ": passing descriptors";
      break;
    case kMountNamespace:
      what += ": creating a mount namespace";
      break;
    case kBind:
      what += ": binding " + spec.bind_from + " on " + spec.bind_onto;
      break;
    default:
      break;
  }
  return sys_error(r.err, what);
}

bool HelperProcess::exited(int* status) {
  if (pid_ <= 0) {
    if (status) *status = -1;
    return true;
  }
  int st = -1;
  pid_t r;
  do r = ::waitpid(pid_, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  // r < 0 (ECHILD): someone else reaped it, or SIGCHLD is ignored.
  pid_ = -1;
  if (status) *status = r < 0 ? -1 : st;
  return true;
}

void HelperProcess::stop(int sig, std::chrono::milliseconds grace) {
  if (exited()) return;
  if (sig) ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (exited()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (exited()) return;
  // Still a child, not yet reaped: the pid cannot have been reused.
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace togo::net
