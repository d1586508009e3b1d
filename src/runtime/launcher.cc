#include "runtime/launcher.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/sys.h"
#include "runtime/child.h"

namespace togo::runtime {

namespace {

std::unexpected<LaunchFailure> failure(int code, Error e) {
  return std::unexpected(LaunchFailure{code, std::move(e)});
}

// SECURITY: rootless, the user's own uid and gid become 0 inside and nothing
// else is mapped; setgroups is denied as the kernel requires for that.
Result<void> write_id_maps(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/";
  auto put = [&](const char* file, const std::string& text) -> Result<void> {
    Fd fd = TRY(sys::open_at(AT_FDCWD, dir + file, O_WRONLY));
    return sys::write_all(fd.get(), text, dir + file);
  };
  TRY(put("setgroups", "deny"));
  TRY(put("uid_map", "0 " + std::to_string(::geteuid()) + " 1\n"));
  TRY(put("gid_map", "0 " + std::to_string(::getegid()) + " 1\n"));
  return {};
}

int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

// Waits for the child, forwarding signals sent to togo by other processes;
// the terminal's own signals already reach the command's process group.
int wait_forwarding(pid_t child, const sigset_t& mask) {
  for (;;) {
    siginfo_t info;
    int sig = ::sigwaitinfo(&mask, &info);
    if (sig < 0) continue;
    if (sig == SIGCHLD) {
      int status;
      pid_t pid = ::waitpid(child, &status, WNOHANG);
      if (pid == child) return exit_status(status);
      continue;
    }
    if (info.si_code != SI_KERNEL) ::kill(child, sig);
  }
}

}  // namespace

std::expected<int, LaunchFailure> launch(const Plan& plan) {
  // Everything the child touches is prepared here, before clone.
  std::vector<const char*> argv, envp;
  for (auto& a : plan.argv) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  for (auto& e : plan.env) envp.push_back(e.c_str());
  envp.push_back(nullptr);

  int sync[2], report[2];
  if (auto r = sys::pipe(sync); !r) return failure(125, r.error());
  Fd sync_r(sync[0]), sync_w(sync[1]);
  if (auto r = sys::pipe(report); !r) return failure(125, r.error());
  Fd report_r(report[0]), report_w(report[1]);

  sigset_t mask, old_mask;
  ::sigemptyset(&mask);
  for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH})
    ::sigaddset(&mask, sig);
  ::sigprocmask(SIG_BLOCK, &mask, &old_mask);

  long pid = ::syscall(SYS_clone, plan.clone_flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) {
    ChildFds fds{sync_r.get(), report_w.get(), &old_mask};
    child_main(plan, fds, argv.data(), envp.data());
  }
  int clone_err = errno;
  sync_r.reset();
  report_w.reset();
  auto restore = [&] { ::sigprocmask(SIG_SETMASK, &old_mask, nullptr); };
  if (pid < 0) {
    restore();
    Error e = sys_error(clone_err, "creating namespaces (clone)").error();
    if (clone_err == EPERM || clone_err == ENOSPC)
      e.hint = "this host does not let this user create namespaces; see `togo doctor`";
    return failure(125, std::move(e));
  }
  auto child = static_cast<pid_t>(pid);
  if (plan.rootless) {
    if (auto r = write_id_maps(child); !r) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
      restore();
      return failure(125, std::move(r.error()).context("mapping user ids"));
    }
  }
  (void)!::write(sync_w.get(), "g", 1);
  sync_w.reset();

  // EOF: every step succeeded and the command was exec'd.
  ChildReport rep{};
  ssize_t n;
  do n = ::read(report_r.get(), &rep, sizeof rep);
  while (n < 0 && errno == EINTR);
  int status = wait_forwarding(child, mask);
  restore();
  if (n != static_cast<ssize_t>(sizeof rep)) return status;

  std::string what;
  if (rep.step == kExecStep)
    what = "running " + (plan.argv.empty() ? std::string("the login shell") : plan.argv[0]);
  else if (rep.step == kStoreStep)
    what = "entering the store " + plan.store;
  else if (rep.step == kCwdStep)
    what = "changing to the working directory";
  else if (rep.step >= 0 && static_cast<size_t>(rep.step) < plan.steps.size())
    what = describe(plan.steps[static_cast<size_t>(rep.step)]);
  else
    what = "setting up";
  Error e = sys_error(rep.err, what).error();
  int code = 125;
  if (rep.step == kExecStep) code = rep.err == ENOENT ? 127 : 126;
  if (rep.step >= 0 && plan.steps[static_cast<size_t>(rep.step)].kind == StepKind::kMountOverlay)
    e.hint = "overlayfs does not work on this store's filesystem here; recreate the env "
             "with `togo create NAME --image IMAGE --rootfs copy`";
  return failure(code, std::move(e));
}

}  // namespace togo::runtime
