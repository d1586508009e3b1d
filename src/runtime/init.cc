#include "runtime/init.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "runtime/protocol.h"
#include "runtime/session.h"

namespace togo::runtime {

namespace {

class Init {
 public:
  explicit Init(const InitConfig& c)
      : listen_(c.listen), lock_(c.lock), log_(c.log), drive_(c.drive),
        persistent_(c.persistent), linger_ms_(c.linger_ms) {
    if (c.first >= 0) pending_.emplace_back(c.first);
    started_ = ::time(nullptr);
    // The first look at the drive is one interval after the start: at the
    // start it would put a read from the drive between every `togo run` and
    // its command's end, and a drive that fails then fails the start.
    drive_checked_ = now_ms();
  }

  [[noreturn]] void run() {
    sigset_t mask;
    ::sigfillset(&mask);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    sigs_ = Fd(::signalfd(-1, &mask, SFD_CLOEXEC));
    for (;;) {
      // Idle, the env lingers a little: a `togo run` right after the last
      // one joins it instead of paying for a new one.
      int timeout = stopping_ ? 100 : drive_ >= 0 ? kDriveCheckMs : -1;
      if (idle()) {
        int64_t now = now_ms();
        if (idle_since_ < 0) idle_since_ = now;
        if (stopping_ || now - idle_since_ >= linger_ms_) finish(0);
        timeout = static_cast<int>(linger_ms_ - (now - idle_since_));
        if (drive_ >= 0) timeout = std::min(timeout, kDriveCheckMs);
      } else {
        idle_since_ = -1;
      }
      if (own_ && own_->timeout_ms() >= 0)
        timeout = timeout < 0 ? own_->timeout_ms() : std::min(timeout, own_->timeout_ms());
      std::vector<struct pollfd> pfds = {{sigs_.get(), POLLIN, 0},
                                         {listen_.valid() ? listen_.get() : -1, POLLIN, 0},
                                         {own_ ? own_->channel() : -1, POLLIN, 0}};
      for (auto& p : pending_) pfds.push_back({p.get(), POLLIN, 0});
      int n = ::poll(pfds.data(), pfds.size(), timeout);
      if (n < 0 && errno != EINTR) finish(1);
      if (pfds[0].revents & POLLIN) on_signal();
      // Only the requests polled above: one accepted now waits for the next round.
      size_t polled = pending_.size();
      if (pfds[1].revents & POLLIN) on_accept();
      if (own_ && (pfds[2].revents & (POLLIN | POLLHUP | POLLERR))) own_->on_channel();
      if (own_) own_->on_timeout();
      // Requests, oldest first; a handled one leaves the pending list (the
      // others stay in it meanwhile: see waiting_requests).
      for (size_t i = 0; i < polled; i++)
        if (pfds[3 + i].revents) {
          Fd conn = std::move(pending_[i]);
          on_request(std::move(conn));
        }
      std::erase_if(pending_, [](const Fd& f) { return !f.valid(); });
      check_drive();
      if (stopping_ && now_ms() >= kill_at_) {
        ::kill(-1, SIGKILL);
        finish(0);
      }
    }
  }

 private:
  bool idle() const { return !persistent_ && !own_ && leaders_.empty() && !waiting_requests(); }

  bool waiting_requests() const {
    return std::any_of(pending_.begin(), pending_.end(), [](const Fd& f) { return f.valid(); });
  }

  // Whether the env ends with init's own session: nothing else keeps it up.
  bool ends_with_own_session() const {
    return !persistent_ && !stopping_ && linger_ms_ == 0 && leaders_.empty() && !waiting_requests();
  }

  // The env ends now. Before the host hears its last session's status, no
  // new session can join and the env's lock is free, so that once `togo
  // run` returns the env reads as stopped and can be started, removed or
  // exported. What is left is init's own exit (the kernel's teardown of the
  // namespaces, the overlay's unmount), which a new start waits for.
  // Nothing more is logged: the sync that makes the command's writes
  // durable then waits for no line of togo's.
  void let_go() {
    listen_.reset();
    lock_.reset();
  }

  static int64_t now_ms() {
    struct timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  }

  void say(const std::string& line) {
    if (log_ < 0) return;
    char stamp[32];
    time_t now = ::time(nullptr);
    struct tm tm;
    ::gmtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::string text = std::string(stamp) + " togo-init: " + line + "\n";
    (void)!::write(log_, text.data(), text.size());
  }

  [[noreturn]] void finish(int code) {
    // No new session may slip in while the env goes away.
    listen_.reset();
    say("env stopped");
    ::_exit(code);
  }

  // A drive pulled out, or failing, answers reads with errors: the env's
  // processes would only pile up in uninterruptible waits, so they end now
  // and `togo run` says why.
  void check_drive() {
    if (drive_ < 0 || now_ms() - drive_checked_ < kDriveCheckMs) return;
    drive_checked_ = now_ms();
    alignas(4096) static unsigned char buf[4096];
    if (::pread(drive_, buf, sizeof buf, 0) >= 0 || errno == EINTR) return;
    if (errno == EINVAL) {  // O_DIRECT refused after all: nothing to watch
      drive_ = -1;
      return;
    }
    say("the store's drive returns errors (" + std::string(std::strerror(errno)) + "): stopping");
    ::kill(-1, SIGKILL);
    finish(1);
  }

  void on_signal() {
    struct signalfd_siginfo si;
    while (::read(sigs_.get(), &si, sizeof si) == sizeof si) {
      if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) stop(10);
      if (si.ssi_signo != SIGCHLD) continue;
      int status;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        leaders_.erase(pid);
        if (own_ && pid == own_->command()) own_->command_ended(status);
      }
      // No child at all: nothing of the command is left to look for.
      bool none_left = pid < 0 && errno == ECHILD;
      if (own_ && own_->ended()) end_own_session(none_left);
      break;
    }
  }

  // The session init serves itself ended: what its command left behind is
  // every child of init that is not a leader (orphans come to pid 1; those
  // of other sessions go to their leaders). They are killed, and again at
  // each child's end, as their own children come to init; once none is
  // left the host is told the status. `none_left`: init has no child at
  // all, which waitpid told, and /proc need not be read.
  void end_own_session(bool none_left) {
    bool left = false;
    for (pid_t pid : none_left ? std::vector<pid_t>() : child_pids())
      if (!leaders_.contains(pid)) {
        ::kill(pid, SIGKILL);
        left = true;
      }
    if (left) return;
    bool last = ends_with_own_session();
    if (last) let_go();
    own_->report();
    own_.reset();
    if (last) ::_exit(0);
  }

  void on_accept() {
    int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) pending_.emplace_back(fd);
  }

  void on_request(Fd conn) {
    auto m = recv_message(conn.get());
    if (!m) return;
    switch (m->type) {
      case MsgType::kSpawn: {
        auto req = decode_spawn(m->body);
        if (!req || stopping_) return;
        // One session at a time is init's own: no leader process to start.
        // Its line is logged before the host hears the command runs (a run
        // that started the env syncs the store then).
        if (!own_) {
          own_.emplace();
          auto announce = [&](pid_t pid) {
            say("session " + std::to_string(pid) + ": " +
                (req->argv.empty() ? std::string("login shell") : req->argv[0]));
          };
          // A command that cannot start ends the env as its end would.
          bool last = false;
          auto failing = [&] {
            if ((last = ends_with_own_session())) let_go();
          };
          if (!own_->start(std::move(conn), *req, std::move(m->fds), announce, failing)) {
            own_.reset();
            if (last) ::_exit(0);
          }
          return;
        }
        pid_t pid = ::fork();
        if (pid == 0) {
          sigs_.reset();
          listen_.reset();
          pending_.clear();
          own_.reset();  // its channel is init's to watch
          sigset_t none;
          ::sigemptyset(&none);
          ::sigprocmask(SIG_SETMASK, &none, nullptr);
          leader_main(std::move(conn), *req, std::move(m->fds));
        }
        if (pid > 0) {
          leaders_.insert(pid);
          say("session " + std::to_string(pid) + ": " +
              (req->argv.empty() ? std::string("login shell") : req->argv[0]));
        }
        return;
      }
      case MsgType::kStop: {
        auto v = decode_u32s(m->body, 1);
        stop(v ? (*v)[0] : 10);
        stoppers_.push_back(std::move(conn));  // closed when init exits
        return;
      }
      case MsgType::kStatus:
        (void)send_message(conn.get(), MsgType::kStatus,
                           encode_u32s({static_cast<uint32_t>(leaders_.size() + (own_ ? 1 : 0)),
                                        static_cast<uint32_t>(started_),
                                        persistent_ ? 1u : 0u}));
        return;
      default:
        return;
    }
  }

  // SIGTERM to every process in the env, SIGKILL after the grace period.
  void stop(uint32_t grace) {
    if (stopping_) return;
    stopping_ = true;
    persistent_ = false;
    listen_.reset();
    say("stopping (grace " + std::to_string(grace) + "s)");
    ::kill(-1, SIGTERM);
    kill_at_ = now_ms() + static_cast<int64_t>(grace) * 1000;
  }

  Fd listen_, lock_;
  int log_;
  int drive_;
  int64_t drive_checked_ = 0;
  static constexpr int kDriveCheckMs = 2000;
  bool persistent_;
  int64_t linger_ms_;
  int64_t idle_since_ = -1;
  bool stopping_ = false;
  time_t started_ = 0;
  int64_t kill_at_ = 0;
  Fd sigs_;
  std::vector<Fd> pending_, stoppers_;
  std::set<pid_t> leaders_;
  std::optional<Session> own_;  // the session init serves itself
};

}  // namespace

void init_main(const InitConfig& config) {
  Init init(config);
  init.run();
}

}  // namespace togo::runtime
