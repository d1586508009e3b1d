#include "sync_watch.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "log_format.h"

namespace togo::crashfs {
namespace {

#if defined(__x86_64__)
constexpr unsigned kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned kArch = AUDIT_ARCH_AARCH64;
#else
#error "add this architecture's AUDIT_ARCH"
#endif

int seccomp(unsigned op, unsigned flags, void* arg) {
  return static_cast<int>(::syscall(SYS_seccomp, op, flags, arg));
}

// Stops syncfs and sync for the watcher; everything else runs unhindered.
int install_filter() {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_syncfs, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sync, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
  };
  struct sock_fprog prog = {static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
  return seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

// A one-byte message with room for one descriptor (SCM_RIGHTS).
struct FdMessage {
  char byte = 0;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg = {};
  FdMessage() {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
  }
  FdMessage(const FdMessage&) = delete;
  FdMessage& operator=(const FdMessage&) = delete;
};

bool send_fd(int sock, int fd) {
  FdMessage m;
  struct cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return ::sendmsg(sock, &m.msg, 0) == 1;
}

int recv_fd(int sock) {
  FdMessage m;
  if (::recvmsg(sock, &m.msg, MSG_CMSG_CLOEXEC) != 1) return -1;
  struct cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

// In the forked child: install the filter, hand its listener to the parent,
// wait until the parent holds it, become `uid` if asked, exec.
[[noreturn]] void run_child(int sock, char** argv, int uid) {
  // Root may install the filter without no_new_privs, so setuid helpers
  // (newuidmap) still work in the command; anyone else needs it.
  if (::geteuid() != 0) ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  int listener = install_filter();
  if (listener < 0) {
    std::fprintf(stderr, "togo-crashfs watch: seccomp: %s\n", std::strerror(errno));
    ::_exit(125);
  }
  char ack;
  if (!send_fd(sock, listener) || ::read(sock, &ack, 1) != 1) ::_exit(125);
  ::close(listener);
  ::close(sock);
  if (uid >= 0) {
    auto id = static_cast<uid_t>(uid);
    if (::setgroups(0, nullptr) < 0 || ::setresgid(id, id, id) < 0 || ::setresuid(id, id, id) < 0) {
      std::fprintf(stderr, "togo-crashfs watch: becoming uid %d: %s\n", uid, std::strerror(errno));
      ::_exit(125);
    }
  }
  ::execvp(argv[0], argv);
  std::fprintf(stderr, "togo-crashfs watch: exec %s: %s\n", argv[0], std::strerror(errno));
  ::_exit(errno == ENOENT ? 127 : 126);
}

class Watcher {
 public:
  Watcher(std::string mountpoint, int listener, dev_t dev)
      : mountpoint_(std::move(mountpoint)), listener_(listener), dev_(dev) {
    struct seccomp_notif_sizes sizes = {};
    seccomp(SECCOMP_GET_NOTIF_SIZES, 0, &sizes);
    req_.resize(std::max<size_t>(sizes.seccomp_notif, sizeof(seccomp_notif)));
    resp_.resize(std::max<size_t>(sizes.seccomp_notif_resp, sizeof(seccomp_notif_resp)));
  }

  /// Handles one pending notification.
  void serve_one() {
    auto* req = reinterpret_cast<seccomp_notif*>(req_.data());
    std::memset(req_.data(), 0, req_.size());
    if (::ioctl(listener_, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) return;  // the caller died
    if (req->data.nr == __NR_syncfs) {
      std::string fd_link = "/proc/" + std::to_string(req->pid) + "/fd/" +
                            std::to_string(static_cast<int>(req->data.args[0]));
      struct stat st;
      if (::stat(fd_link.c_str(), &st) == 0 && st.st_dev == dev_) signal(kSignalSyncfs);
    } else if (req->data.nr == __NR_sync) {
      signal(kSignalSync);
    }
    auto* resp = reinterpret_cast<seccomp_notif_resp*>(resp_.data());
    std::memset(resp_.data(), 0, resp_.size());
    resp->id = req->id;
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    ::ioctl(listener_, SECCOMP_IOCTL_NOTIF_SEND, resp);
  }

  /// Serves until no process uses the filter any more.
  void serve_until_hangup() {
    for (;;) {
      struct pollfd p = {listener_, POLLIN, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) return;
      if (p.revents & POLLIN)
        serve_one();
      else if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return;
    }
  }

  bool hung_up() {
    struct pollfd p = {listener_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && !(p.revents & POLLIN) && (p.revents & POLLHUP);
  }

 private:
  void signal(std::string_view name) {
    std::string n(name);
    if (::lgetxattr(mountpoint_.c_str(), n.c_str(), nullptr, 0) < 0 && errno != ENODATA)
      std::fprintf(stderr, "togo-crashfs watch: signalling %s on %s: %s\n", n.c_str(),
                   mountpoint_.c_str(), std::strerror(errno));
  }

  std::string mountpoint_;
  int listener_;
  dev_t dev_;
  std::vector<char> req_, resp_;
};

int exit_status(int ws) {
  if (WIFEXITED(ws)) return WEXITSTATUS(ws);
  if (WIFSIGNALED(ws)) return 128 + WTERMSIG(ws);
  return 125;
}

}  // namespace

int watch_main(const std::string& mountpoint, char** argv, int uid) {
  struct stat mst;
  if (::stat(mountpoint.c_str(), &mst) < 0) {
    std::fprintf(stderr, "togo-crashfs watch: %s: %s\n", mountpoint.c_str(), std::strerror(errno));
    return 125;
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return 125;
  pid_t pid = ::fork();
  if (pid < 0) return 125;
  if (pid == 0) {
    ::close(sv[0]);
    run_child(sv[1], argv, uid);
  }
  ::close(sv[1]);
  int listener = recv_fd(sv[0]);
  if (listener >= 0) ::write(sv[0], "k", 1);
  ::close(sv[0]);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (listener < 0 || pidfd < 0) {
    int ws;
    ::waitpid(pid, &ws, 0);
    return listener < 0 ? exit_status(ws) : 125;
  }
  Watcher w(mountpoint, listener, mst.st_dev);
  for (;;) {
    struct pollfd p[2] = {{listener, POLLIN, 0}, {pidfd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents & POLLIN) {
      w.serve_one();
      continue;
    }
    if (p[1].revents & POLLIN) break;
  }
  int ws = 0;
  while (::waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  if (w.hung_up()) return exit_status(ws);
  // Descendants still hold the filter: serve them from the background so
  // their syncfs calls neither hang nor fail, and let our caller go on.
  if (::fork() == 0) {
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) ::dup2(null, fd);
    w.serve_until_hangup();
    ::_exit(0);
  }
  return exit_status(ws);
}

}  // namespace togo::crashfs
