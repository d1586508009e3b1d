// Limits on this very host: needs root and a cgroup setup that lets root use
// the memory and pids controllers.
#include "runtime/cgroups_apply.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "base/fs.h"

namespace togo::runtime {
namespace {

/// Forks `tries` children that wait for a pipe to close; returns how many
/// forks failed with EAGAIN (the pids limit), or 100+errno on other errors.
int fork_until_refused(int tries) {
  int hold[2];
  if (::pipe(hold) < 0) return 100 + errno;
  int refused = 0;
  pid_t kids[64];
  int n = 0;
  for (int i = 0; i < tries; i++) {
    pid_t pid = ::fork();
    if (pid == 0) {
      char c;
      ::close(hold[1]);
      (void)!::read(hold[0], &c, 1);
      ::_exit(0);
    }
    if (pid > 0) kids[n++] = pid;
    else if (errno == EAGAIN) refused++;
    else return 100 + errno;
  }
  ::close(hold[1]);
  for (int i = 0; i < n; i++) ::waitpid(kids[i], nullptr, 0);
  return refused;
}

TEST(CgroupHost, PidsAndMemoryLimitsHoldOnThisHost) {
  if (::geteuid() != 0) GTEST_SKIP() << "creating cgroups on this host needs root";
  auto host = detect_cgroups();
  ASSERT_TRUE(host) << host.error().message;
  if (!host->pids.usable || !host->memory.usable)
    GTEST_SKIP() << "this host cannot apply limits: " << describe_layout(*host) << "; "
                 << (host->pids.usable ? host->memory.missing : host->pids.missing);

  Limits l;
  l.pids = 5;
  l.memory = 64ull << 20;
  auto cg = create_env_cgroup(*host, "unit-test", l);
  ASSERT_TRUE(cg) << cg.error().message;
  ASSERT_FALSE(cg->empty());

  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Waits until the parent has moved it, then forks ten times: itself plus
    // four children fill pids.max = 5, so six forks fail.
    char c;
    ::close(go[1]);
    if (::read(go[0], &c, 1) != 0) ::_exit(99);
    ::_exit(fork_until_refused(10));
  }
  ::close(go[0]);
  auto added = cg->add(child);
  ::close(go[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(added) << added.error().message;
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 6) << "forks refused by pids.max=5 (100+ means errno)";

  // The memory limit is in place where the kernel reads it.
  bool found = false;
  for (auto& p : cg->paths()) {
    for (const char* f : {"memory.max", "memory.limit_in_bytes"}) {
      auto v = fs::read_file(AT_FDCWD, fs::join(p, f));
      if (!v) continue;
      EXPECT_EQ(*v, "67108864\n") << p << "/" << f;
      found = true;
    }
  }
  EXPECT_TRUE(found) << "no memory limit file among the cgroup's directories";

  auto paths = cg->paths();
  auto removed = cg->remove();
  ASSERT_TRUE(removed) << removed.error().message;
  for (auto& p : paths) {
    EXPECT_NE(::access(p.c_str(), F_OK), 0) << p << " is still there";
    // Leave the host as it was: the shared togo/ directory goes too if empty.
    ::rmdir(p.substr(0, p.find_last_of('/')).c_str());
  }
}

}  // namespace
}  // namespace togo::runtime
