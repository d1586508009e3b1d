#include "runtime/overlay_probe.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace togo::runtime {

namespace {

// A process may map its own ids in a user namespace it just created.
int map_self(const char* file, const char* text) {
  int fd = ::open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = ::write(fd, text, std::strlen(text));
  ::close(fd);
  return n < 0 ? -1 : 0;
}

}  // namespace

Result<void> probe_overlay(const RunSpec& spec) {
  std::string options = overlay_options(spec);
  char uid_map[64], gid_map[64];
  std::snprintf(uid_map, sizeof uid_map, "0 %u 1\n", ::geteuid());
  std::snprintf(gid_map, sizeof gid_map, "0 %u 1\n", ::getegid());
  pid_t pid = ::fork();
  if (pid < 0) return sys_error(errno, "fork");
  if (pid == 0) {
    int flags = CLONE_NEWNS | (spec.rootless ? CLONE_NEWUSER : 0);
    if (::unshare(flags) < 0) ::_exit(errno);
    if (spec.rootless && (map_self("/proc/self/setgroups", "deny") < 0 ||
                          map_self("/proc/self/uid_map", uid_map) < 0 ||
                          map_self("/proc/self/gid_map", gid_map) < 0))
      ::_exit(errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) ::_exit(errno);
    if (::chdir(spec.store.c_str()) < 0) ::_exit(errno);
    if (::mount("overlay", spec.mount.c_str(), "overlay", 0, options.c_str()) < 0) ::_exit(errno);
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  int err = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
  return sys_error(err, spec.rootless ? "mounting overlayfs in a user namespace"
                                      : "mounting overlayfs");
}

}  // namespace togo::runtime
