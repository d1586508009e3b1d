#include "runtime/launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "base/fs.h"
#include "base/host_check.h"
#include "base/sys.h"
#include "runtime/child.h"
#include "runtime/idmap_apply.h"

namespace togo::runtime {

namespace {

std::unexpected<LaunchFailure> failure(int code, Error e) {
  return std::unexpected(LaunchFailure{code, std::move(e)});
}

// A unix socket address for a file in a directory we hold open: through
// /proc/self/fd the path stays short however deep the store is.
struct sockaddr_un socket_address(int dir) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/%s", dir, kControlSocket);
  return addr;
}

// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks.
// With the pid it names one process, even after pids wrap around. 0 for a
// process that is gone or has exited (a zombie).
uint64_t start_time(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  auto fd = sys::open_at(AT_FDCWD, path, O_RDONLY);
  if (!fd) return 0;
  auto text = sys::read_all(fd->get(), path);
  if (!text) return 0;
  size_t paren = text->rfind(')');
  if (paren == std::string::npos || paren + 2 >= text->size()) return 0;
  if ((*text)[paren + 2] == 'Z') return 0;  // exited, not yet reaped: gone
  // After ") " come fields 3, 4, ...: field 22 is the 20th of them.
  size_t pos = paren + 2;
  for (int field = 3; field < 22 && pos < text->size(); field++) pos = text->find(' ', pos) + 1;
  return std::strtoull(text->c_str() + pos, nullptr, 10);
}

// Runtime state, rewritten at every start: no fsync needed. It is written
// over in place, not replaced: a new file at every start would free the old
// one's block (and a drive mounted with discard is told so before that
// returns). The record has one width, so a write never shortens it; a
// reader that catches it half written reads a pid and start time that name
// no live process, which is what it read just before.
Result<void> record_init(int env_dir, pid_t pid) {
  constexpr size_t kWidth = 32;  // "<pid> <start time>", spaces, "\n"
  char text[kWidth + 1];
  int n = std::snprintf(text, sizeof text, "%d %llu", static_cast<int>(pid),
                        static_cast<unsigned long long>(start_time(pid)));
  std::memset(text + n, ' ', kWidth - static_cast<size_t>(n));
  text[kWidth - 1] = '\n';
  Fd fd = TRY(sys::open_at(env_dir, kInitPid, O_WRONLY | O_CREAT | O_NOFOLLOW, 0644));
  TRY(sys::write_all(fd.get(), std::string_view(text, kWidth), kInitPid));
  struct stat st;
  if (::fstat(fd.get(), &st) == 0 && st.st_size > static_cast<off_t>(kWidth) &&
      ::ftruncate(fd.get(), static_cast<off_t>(kWidth)) < 0)
    return sys_error(errno, std::string("truncating ") + kInitPid);
  return {};
}

Result<Fd> listen_control(int env_dir) {
  ::unlinkat(env_dir, kControlSocket, 0);  // a stale socket of an env that ended
  Fd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return sys_error(errno, "creating the control socket");
  struct sockaddr_un addr = socket_address(env_dir);
  mode_t old = ::umask(077);  // only this user may talk to the env
  int rc = ::bind(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc < 0) return sys_error(errno, "binding the control socket");
  if (::listen(sock.get(), 64) < 0) return sys_error(errno, "listening on the control socket");
  return sock;
}

}  // namespace

std::expected<StartedEnv, LaunchFailure> start_env(const Plan& plan, const StartConfig& cfg) {
  auto fail125 = [](Error e) { return failure(125, std::move(e)); };
  auto listen = listen_control(cfg.env_dir);
  if (!listen) return fail125(listen.error());
  auto log = sys::open_at(cfg.env_dir, kLog, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (!log) return fail125(log.error());
  struct stat st;
  if (::fstat(log->get(), &st) == 0 && st.st_size > (1 << 20)) (void)!::ftruncate(log->get(), 0);

  int sync[2], report[2];
  if (auto r = sys::pipe(sync); !r) return fail125(r.error());
  Fd sync_r(sync[0]), sync_w(sync[1]);
  if (auto r = sys::pipe(report); !r) return fail125(r.error());
  Fd report_r(report[0]), report_w(report[1]);

  // With nothing to do between clone and setup (no id maps to write, no
  // cgroup or network to join), the go-ahead is there before the child
  // looks: it does not sleep, to be woken a moment later.
  auto go_ahead = [&] {
    (void)!::write(sync_w.get(), "g", 1);
    sync_w.reset();
  };
  bool wait_for_parent = plan.rootless || cfg.before_setup;
  if (!wait_for_parent) go_ahead();
  long pid = ::syscall(SYS_clone, plan.clone_flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) {
    ChildFds fds{sync_r.get(), sync_w.get(),   report_w.get(), listen->get(),
                 cfg.first,    log->get(),     cfg.lock,       cfg.hold,
                 cfg.drive,    cfg.persistent, cfg.linger_ms};
    child_main(plan, fds);
  }
  int clone_err = errno;
  sync_r.reset();
  report_w.reset();
  if (pid < 0) {
    Error e = sys_error(clone_err, "creating namespaces (clone)").error();
    // Only a refusal is the host's doing; ENOMEM or EAGAIN are not.
    if (clone_err != EPERM && clone_err != ENOSPC) return fail125(std::move(e));
    e.hint = "this host does not let this user create namespaces (see sysctl "
             "user.max_user_namespaces and kernel.unprivileged_userns_clone)";
    return fail125(host_check::point_at(
        std::move(e), plan.rootless ? host_check::kUserns : host_check::kNamespaces));
  }
  auto child = static_cast<pid_t>(pid);
  if (plan.rootless) {
    // SECURITY: only the ids the plan names (the caller's own, and its
    // subordinate ranges through the setuid helpers) exist inside.
    if (auto r = write_id_maps(child, plan.uid_map, plan.gid_map); !r) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
      // More than the caller's own id goes through newuidmap/newgidmap.
      bool helpers = plan.uid_map.size() > 1 || plan.gid_map.size() > 1;
      return fail125(host_check::point_at(
          std::move(r.error()), helpers ? host_check::kSubids : host_check::kUserns));
    }
  }
  if (cfg.before_setup) {
    if (auto r = cfg.before_setup(child); !r) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
      return fail125(std::move(r.error()));
    }
  }
  if (wait_for_parent) go_ahead();

  // kReady (or EOF): every step succeeded and init serves the control socket.
  ChildReport rep{};
  ssize_t n;
  do n = ::read(report_r.get(), &rep, sizeof rep);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof rep) && rep.step != kReady) {
    ::waitpid(child, nullptr, 0);
    std::string what = "setting up";
    if (rep.step == kStoreStep)
      what = "entering the store " + plan.store;
    else if (rep.step <= kHardenStep && rep.step >= kHardenStep - 2)
      what = rep.step == kHardenStep       ? "setting no_new_privs"
             : rep.step == kHardenStep - 1 ? "dropping capabilities"
                                           : "installing the seccomp filter";
    else if (rep.step >= 0 && static_cast<size_t>(rep.step) < plan.steps.size())
      what = describe(plan.steps[static_cast<size_t>(rep.step)]);
    Error e = sys_error(rep.err, what).error();
    const Step* step = rep.step >= 0 && static_cast<size_t>(rep.step) < plan.steps.size()
                           ? &plan.steps[static_cast<size_t>(rep.step)]
                           : nullptr;
    if (step && step->kind == StepKind::kMountOverlay) {
      e.hint = "overlayfs does not work on this store's filesystem here; recreate the env "
               "with `togo create NAME --image IMAGE --rootfs copy`";
      e = host_check::point_at(std::move(e), host_check::kOverlay);
    } else if (step && step->kind == StepKind::kMakePrivate && plan.rootless) {
      // A user namespace that grants no mounts (Ubuntu's AppArmor restriction).
      e = host_check::point_at(std::move(e), host_check::kUserns);
    } else if (rep.step == kHardenStep || rep.step == kHardenStep - 2) {
      e = host_check::point_at(std::move(e), host_check::kSeccomp);
    }
    return fail125(std::move(e));
  }
  if (auto r = record_init(cfg.env_dir, child); !r) return fail125(r.error());
  StartedEnv started;
  started.init = child;
  return started;
}

Result<std::optional<Fd>> connect_env(int env_dir) {
  Fd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return sys_error(errno, "creating a socket");
  struct sockaddr_un addr = socket_address(env_dir);
  if (::connect(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) < 0) {
    if (errno == ECONNREFUSED || errno == ENOENT) return std::nullopt;
    return sys_error(errno, "connecting to the env's control socket");
  }
  return std::optional<Fd>(std::move(sock));
}

std::optional<pid_t> live_init(int env_dir) {
  auto text = fs::read_file(env_dir, kInitPid);
  if (!text) return std::nullopt;
  unsigned long long pid = 0, start = 0;
  // A start time of 0: the record was written after that init had gone.
  if (std::sscanf(text->c_str(), "%llu %llu", &pid, &start) != 2 || pid == 0 || start == 0)
    return std::nullopt;
  if (start_time(static_cast<pid_t>(pid)) != start) return std::nullopt;
  return static_cast<pid_t>(pid);
}

void wait_init_gone(int env_dir, int timeout_ms) {
  auto pid = live_init(env_dir);
  if (!pid) return;
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0)));
  // Still the same process: readable once it has exited and its
  // namespaces (and so its mounts) are gone.
  if (!pidfd.valid() || !live_init(env_dir)) return;
  struct pollfd p = {pidfd.get(), POLLIN, 0};
  ::poll(&p, 1, timeout_ms);
}

Result<EnvStatus> query_status(int channel) {
  TRY(send_message(channel, MsgType::kStatus, ""));
  auto m = TRY(recv_message(channel));
  auto v = TRY(decode_u32s(m.body, 3));
  return EnvStatus{v[0], static_cast<int64_t>(v[1]), v[2] != 0};
}

Result<void> stop_env(int channel, int env_dir, uint32_t grace) {
  TRY(send_message(channel, MsgType::kStop, encode_u32s({grace})));
  // init closes the connection when it exits.
  while (recv_message(channel)) {
  }
  wait_init_gone(env_dir, 5000);
  return {};
}

}  // namespace togo::runtime
