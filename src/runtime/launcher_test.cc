#include "runtime/launcher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace togo::runtime {
namespace {

// Whether nothing holds the lock file any more, within `seconds`.
bool lock_freed(const std::string& path, int seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  do {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.valid() && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < until);
  return false;
}

// A togo killed between the clone and its go-ahead (while it writes id maps
// or joins a cgroup) leaves no init behind: the init reads the pipe's end
// and exits, and the env's lock, which it inherited, is free again.
TEST(Launcher, AnInitWhoseStarterDiesBeforeTheGoAheadEnds) {
  char dir_path[] = "/tmp/togo-launcher-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_path), nullptr);
  const std::string lock_path = std::string(dir_path) + "/lock";
  pid_t starter = ::fork();
  ASSERT_GE(starter, 0);
  if (starter == 0) {
    Fd dir(::open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    Fd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!dir.valid() || !lock.valid() || ::flock(lock.get(), LOCK_EX) < 0) ::_exit(2);
    Plan plan;
    plan.store = dir_path;
    plan.harden = false;
    plan.clone_flags = CLONE_NEWNS | CLONE_NEWPID;
    if (::geteuid() != 0) {
      plan.clone_flags |= CLONE_NEWUSER;
      plan.rootless = true;
      plan.uid_map = {{0, ::geteuid(), 1}};
      plan.gid_map = {{0, ::getegid(), 1}};
    }
    plan.steps.push_back({StepKind::kMakePrivate});
    StartConfig cfg;
    cfg.env_dir = dir.get();
    cfg.lock = lock.get();
    cfg.before_setup = [](pid_t) -> Result<void> { ::_exit(0); };  // the starter dies here
    (void)start_env(plan, cfg);
    ::_exit(3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(starter, &status, 0), starter);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "starter status " << status;
  EXPECT_TRUE(lock_freed(lock_path, 5)) << "an init still holds the env's lock";
  std::system(("rm -rf " + std::string(dir_path)).c_str());
}

}  // namespace
}  // namespace togo::runtime
