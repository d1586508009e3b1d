// togo-kill-at: runs a command and kills it (and everything it started)
// with SIGKILL on entry to its Nth mutating system call, before the call
// runs; with N = 0 it only counts. It is how the crash tests stop togo "at
// every step": counting is global across the command's threads and
// children, in the order the kernel ran the calls.
//
//   togo-kill-at [--only CALL] N COMMAND [ARGS...]
//
// With --only, only the calls named CALL (as below: "syncfs", "renameat2")
// count.
// Exits with 137 if it killed the command, else with the command's status;
// on stderr it says where it killed ("togo-kill-at: killed before #N
// renameat2") or how many mutating calls the command made
// ("togo-kill-at: 123 mutating calls").
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

namespace {

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452  // the same number on every architecture
#endif

// Calls that change files: what a crash can interrupt. Writes to the
// standard streams are left out.
const char* mutating_name(const __ptrace_syscall_info& si) {
  const auto& a = si.entry.args;
  switch (si.entry.nr) {
    case SYS_write: case SYS_writev: case SYS_pwrite64: case SYS_pwritev: case SYS_pwritev2:
      return a[0] <= 2 ? nullptr : "write";
    case SYS_open: return (a[1] & (O_CREAT | O_TRUNC)) ? "open" : nullptr;
    case SYS_openat: return (a[2] & (O_CREAT | O_TRUNC)) ? "openat" : nullptr;
    case SYS_creat: return "creat";
    case SYS_rename: return "rename";
    case SYS_renameat: return "renameat";
    case SYS_renameat2: return "renameat2";
    case SYS_unlink: return "unlink";
    case SYS_unlinkat: return "unlinkat";
    case SYS_rmdir: return "rmdir";
    case SYS_mkdir: return "mkdir";
    case SYS_mkdirat: return "mkdirat";
    case SYS_link: return "link";
    case SYS_linkat: return "linkat";
    case SYS_symlink: return "symlink";
    case SYS_symlinkat: return "symlinkat";
    case SYS_mknod: return "mknod";
    case SYS_mknodat: return "mknodat";
    case SYS_fsync: return "fsync";
    case SYS_fdatasync: return "fdatasync";
    case SYS_syncfs: return "syncfs";
    case SYS_sync: return "sync";
    case SYS_sync_file_range: return "sync_file_range";
    case SYS_truncate: return "truncate";
    case SYS_ftruncate: return "ftruncate";
    case SYS_fallocate: return "fallocate";
    case SYS_chmod: return "chmod";
    case SYS_fchmod: return "fchmod";
    case SYS_fchmodat: return "fchmodat";
    case SYS_fchmodat2: return "fchmodat2";  // what image unpacking uses
    case SYS_chown: return "chown";
    case SYS_lchown: return "lchown";
    case SYS_fchown: return "fchown";
    case SYS_fchownat: return "fchownat";
    case SYS_setxattr: case SYS_lsetxattr: case SYS_fsetxattr: return "setxattr";
    case SYS_removexattr: case SYS_lremovexattr: case SYS_fremovexattr: return "removexattr";
    case SYS_utimensat: return "utimensat";
    case SYS_copy_file_range: return "copy_file_range";
    default: return nullptr;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* only = nullptr;
  if (argc > 2 && std::strcmp(argv[1], "--only") == 0) {
    only = argv[2];
    argv += 2;
    argc -= 2;
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: togo-kill-at [--only CALL] N COMMAND [ARGS...]\n");
    return 2;
  }
  long target = std::strtol(argv[1], nullptr, 10);
  pid_t child = ::fork();
  if (child < 0) return std::perror("fork"), 2;
  if (child == 0) {
    ::setpgid(0, 0);
    ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    ::raise(SIGSTOP);
    ::execvp(argv[2], argv + 2);
    std::perror(argv[2]);
    _exit(127);
  }
  int status;
  if (::waitpid(child, &status, 0) < 0 || !WIFSTOPPED(status)) return std::perror("waitpid"), 2;
  long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
              PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
  ::ptrace(PTRACE_SETOPTIONS, child, nullptr, opts);
  ::ptrace(PTRACE_SYSCALL, child, nullptr, nullptr);
  std::set<pid_t> tracees = {child};
  long count = 0;
  int result = 0;
  bool killed = false;
  while (!tracees.empty()) {
    pid_t pid = ::waitpid(-1, &status, __WALL);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      tracees.erase(pid);
      if (pid == child) result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      continue;
    }
    if (!WIFSTOPPED(status)) continue;
    int sig = WSTOPSIG(status), deliver = 0;
    if (sig == (SIGTRAP | 0x80)) {
      __ptrace_syscall_info si{};
      if (::ptrace(PTRACE_GET_SYSCALL_INFO, pid, sizeof si, &si) > 0 &&
          si.op == PTRACE_SYSCALL_INFO_ENTRY && !killed)
        if (const char* name = mutating_name(si);
            name && (!only || std::strcmp(name, only) == 0) && ++count == target) {
          std::fprintf(stderr, "togo-kill-at: killed before #%ld %s\n", count, name);
          killed = true;
          // Every tracee, whatever process group or session it made.
          for (pid_t t : tracees) ::kill(t, SIGKILL);
          ::kill(pid, SIGKILL);
        }
    } else if (status >> 16 != 0) {
      // clone/fork/exec events: new tracees start traced (TRACECLONE).
      unsigned long msg = 0;
      ::ptrace(PTRACE_GETEVENTMSG, pid, nullptr, &msg);
      int event = status >> 16;
      if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK)
        tracees.insert(static_cast<pid_t>(msg));
    } else if (sig != SIGSTOP && sig != SIGTRAP) {
      deliver = sig;
    }
    tracees.insert(pid);  // also a new tracee's first stop, seen before its parent's event
    ::ptrace(PTRACE_SYSCALL, pid, nullptr, deliver);
  }
  if (killed) return 137;
  std::fprintf(stderr, "togo-kill-at: %ld %s calls\n", count, only ? only : "mutating");
  return result;
}
