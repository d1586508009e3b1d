// The host side of one session: send the request, relay a pty if there is
// one, forward signals, and bring back the exit status.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/launcher.h"

namespace togo::runtime {

namespace {

std::unexpected<LaunchFailure> failure(int code, Error e) {
  return std::unexpected(LaunchFailure{code, std::move(e)});
}

// Puts the terminal in raw mode and restores it however the session ends.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (::tcgetattr(fd, &saved_) < 0) return;
    struct termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
  }

 private:
  int fd_;
  struct termios saved_ {};
  bool active_ = false;
};

// Copies what is readable from `from` to `to`; false at end of input.
bool pump(int from, int to) {
  char buf[16384];
  ssize_t n = ::read(from, buf, sizeof buf);
  if (n <= 0) return n < 0 && (errno == EAGAIN || errno == EINTR);
  for (ssize_t off = 0; off < n;) {
    ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {to, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      return false;
    }
    off += w;
  }
  return true;
}

void copy_window_size(int from, int to) {
  struct winsize ws;
  if (::ioctl(from, TIOCGWINSZ, &ws) == 0) ::ioctl(to, TIOCSWINSZ, &ws);
}

}  // namespace

Result<void> send_spawn(int channel, const SpawnRequest& req) {
  std::vector<int> stdio;
  if (!req.pty) stdio = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
  return send_message(channel, MsgType::kSpawn, encode(req), stdio);
}

HeldSignals::HeldSignals() {
  sigset_t mask = forwarded();
  ::sigprocmask(SIG_BLOCK, &mask, &old_);
}

HeldSignals::~HeldSignals() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }

sigset_t HeldSignals::forwarded() {
  sigset_t mask;
  ::sigemptyset(&mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGPIPE})
    ::sigaddset(&mask, sig);
  return mask;
}

std::expected<int, LaunchFailure> run_session(int channel, const SpawnRequest& req, bool sent,
                                              const std::function<void()>& on_started) {
  auto fail125 = [](Error e) { return failure(125, std::move(e)); };
  // Signals to togo are for the command: they are read here and sent on
  // (with those that came while they were held before).
  HeldSignals held;
  sigset_t mask = HeldSignals::forwarded();
  Fd sigs(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));

  if (!sent)
    if (auto r = send_spawn(channel, req); !r) return fail125(r.error());

  auto first = recv_message(channel);
  if (!first) return fail125(first.error());
  if (first->type == MsgType::kFailed) {
    auto err = decode_u32s(first->body.substr(0, 4), 1);
    int e = err ? static_cast<int>((*err)[0]) : 0;
    std::string what = first->body.size() > 4 ? first->body.substr(4) : "the session failed";
    // A negative errno: the session failed before the command (125).
    if (e <= 0) return failure(125, Error{-e, ErrorKind::kFailed, std::move(what), "", 0});
    return failure(e == ENOENT ? 127 : 126, Error{e, ErrorKind::kFailed, std::move(what), "", 0});
  }
  if (first->type != MsgType::kStarted)
    return fail125(Error{0, ErrorKind::kFailed, "unexpected control message", "", 0});
  if (on_started) on_started();

  Fd master;
  std::optional<RawTerminal> raw;
  if (req.pty && !first->fds.empty()) {
    master = std::move(first->fds[0]);
    ::fcntl(master.get(), F_SETFL, O_NONBLOCK);
    raw.emplace(STDIN_FILENO);
  }
  bool input_open = master.valid();
  for (;;) {
    struct pollfd p[4] = {{channel, POLLIN, 0},
                          {sigs.get(), POLLIN, 0},
                          {master.valid() ? master.get() : -1, POLLIN, 0},
                          {input_open ? STDIN_FILENO : -1, POLLIN, 0}};
    if (::poll(p, 4, -1) < 0 && errno != EINTR)
      return fail125(sys_error(errno, "waiting for the session").error());
    if (p[2].revents & POLLIN) pump(master.get(), STDOUT_FILENO);
    if (p[3].revents & (POLLIN | POLLHUP)) input_open = pump(STDIN_FILENO, master.get());
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (::read(sigs.get(), &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGWINCH) {
          if (master.valid()) copy_window_size(STDIN_FILENO, master.get());
        } else if (si.ssi_signo != SIGPIPE) {
          (void)send_message(channel, MsgType::kSignal, encode_u32s({si.ssi_signo}));
        }
      }
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      auto m = recv_message(channel);
      if (!m)
        return failure(137, Error{0, ErrorKind::kFailed,
                                  "the environment stopped before the command ended", "", 0});
      if (m->type != MsgType::kExit) continue;
      // What the command wrote last is still in the pty: bring it out.
      if (master.valid())
        while (pump(master.get(), STDOUT_FILENO)) {
          struct pollfd q = {master.get(), POLLIN, 0};
          if (::poll(&q, 1, 0) <= 0) break;
        }
      auto v = decode_u32s(m->body, 1);
      return v ? static_cast<int>((*v)[0]) : 125;
    }
  }
}

}  // namespace togo::runtime
