// Test helper, header-only (its name does not end in _test.cc, so neither the
// test glob nor the library glob picks it up): runs code in a forked child,
// which may change what the test process must not (namespaces, capabilities,
// a seccomp filter, its ids), and brings back what it wrote.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

namespace togo::runtime::testing {

struct ChildOutput {
  std::string text;  // everything written to the pipe, by the child or what it execs
  int status = -1;   // its wait status
};

/// Forks; the child calls body(fd), `fd` being the write end of a
/// close-on-exec pipe, then exits 0 if body returns. Waits for the child.
inline ChildOutput run_in_child(const std::function<void(int)>& body) {
  ChildOutput out;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) return out;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    body(p[1]);
    ::_exit(0);
  }
  ::close(p[1]);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.text.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  if (pid > 0) ::waitpid(pid, &out.status, 0);
  return out;
}

/// True if a wait status says the child exited 0.
inline bool exited_zero(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

}  // namespace togo::runtime::testing
