// UserNet against the real helpers and real namespaces. The tests of the
// NetLive suite (Helpers/NetLive.*/pasta and .../slirp4netns) start the
// helpers; they skip, saying why, when one is not installed, /dev/net/tun
// cannot be opened, or this user cannot create namespaces. Leave them out
// with --gtest_filter=-*NetLive* . They pass as root and as an unprivileged
// user. Traffic stays on the host's loopback and in namespaces made here.
#include "net/usernet.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include "base/fd.h"
#include "base/sys.h"
#include "net/loopback.h"

namespace togo::net {
namespace {

constexpr uint16_t kEnvPort = 80;  // privileged inside: the env is root there

bool rootless() { return ::geteuid() != 0; }

// A TCP port on 127.0.0.1 that nothing listens on right now.
uint16_t free_port() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) < 0)
    return 0;
  return ntohs(a.sin_port);
}

bool readable(int fd, int timeout_ms) {
  pollfd p = {fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// A process in its own network namespace (and, rootless, its own user
// namespace with this user mapped to root, as the launcher does) that
// listens on kEnvPort and answers "hello" to each connection.
class EnvProcess {
 public:
  // Empty when namespaces cannot be created here; `why` says why.
  static std::optional<EnvProcess> start(std::string& why) {
    int up[2], go[2];
    if (::pipe2(up, O_CLOEXEC) < 0 || ::pipe2(go, O_CLOEXEC) < 0) {
      why = "pipe failed";
      return std::nullopt;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(up[0]);
      ::close(go[1]);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::alarm(60);
      int flags = CLONE_NEWNET | (rootless() ? CLONE_NEWUSER : 0);
      char c = ::unshare(flags) == 0 ? 'u' : 'E';
      (void)!::write(up[1], &c, 1);
      if (c == 'E' || ::read(go[0], &c, 1) != 1) ::_exit(2);
      if (loopback_up() != 0) ::_exit(3);
      int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a = {};
      a.sin_family = AF_INET;
      a.sin_port = htons(kEnvPort);
      if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || ::listen(s, 8) < 0)
        ::_exit(4);
      c = 'r';
      (void)!::write(up[1], &c, 1);
      for (;;) {
        int conn = ::accept(s, nullptr, nullptr);
        if (conn < 0) ::_exit(5);
        (void)!::write(conn, "hello", 5);
        ::close(conn);
      }
    }
    ::close(up[1]);
    ::close(go[0]);
    Fd up_r(up[0]), go_w(go[1]);
    EnvProcess env;
    env.pid_ = pid;
    char c = 0;
    if (::read(up_r.get(), &c, 1) != 1 || c != 'u') {
      why = "this user cannot create a network namespace here";
      return std::nullopt;
    }
    if (rootless()) {
      std::string dir = "/proc/" + std::to_string(pid) + "/";
      auto put = [&](const char* f, const std::string& text) {
        auto fd = sys::open_at(AT_FDCWD, dir + f, O_WRONLY);
        return fd && sys::write_all(fd->get(), text, f);
      };
      if (!put("setgroups", "deny") ||
          !put("uid_map", "0 " + std::to_string(::geteuid()) + " 1\n") ||
          !put("gid_map", "0 " + std::to_string(::getegid()) + " 1\n")) {
        why = "writing the id maps failed";
        return std::nullopt;
      }
    }
    (void)!::write(go_w.get(), "g", 1);
    if (::read(up_r.get(), &c, 1) != 1 || c != 'r') {
      why = "the env process could not listen";
      return std::nullopt;
    }
    return env;
  }
  EnvProcess() = default;
  EnvProcess(EnvProcess&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}
  EnvProcess& operator=(EnvProcess&& o) noexcept {
    if (this != &o) {
      end();
      pid_ = std::exchange(o.pid_, -1);
    }
    return *this;
  }
  ~EnvProcess() { end(); }
  pid_t pid() const { return pid_; }

 private:
  void end() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }
  pid_t pid_ = -1;
};

// Connects to 127.0.0.1:port and reads what the other side says.
std::string fetch(uint16_t port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0)
    return std::string("connect: ") + std::strerror(errno);
  std::string got;
  char buf[64];
  while (readable(s.get(), 5000)) {
    ssize_t n = ::read(s.get(), buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// True once `pid` is gone or a zombie, waiting up to about 2 s.
bool gone(pid_t pid, int tries = 400) {
  for (int i = 0; i <= tries; ++i) {
    auto fd = sys::open_at(AT_FDCWD, "/proc/" + std::to_string(pid) + "/stat", O_RDONLY);
    if (!fd) return true;
    auto text = sys::read_all(fd->get(), "stat");
    size_t paren = text ? text->rfind(')') : std::string::npos;
    if (paren != std::string::npos && paren + 2 < text->size() && (*text)[paren + 2] == 'Z')
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

class NetLive : public ::testing::TestWithParam<HelperKind> {
 protected:
  void SetUp() override {
    if (!find_helper(GetParam()))
      GTEST_SKIP() << helper_name(GetParam()) << " is not installed (Debian package "
                   << helper_package(GetParam()) << ")";
    if (auto tun = check_tun_device(); !tun)
      GTEST_SKIP() << tun.error().message << " (" << tun.error().hint << ")";
    std::string why;
    env_ = EnvProcess::start(why);
    if (!env_) GTEST_SKIP() << why;
  }
  UserNetOptions options(std::vector<PortForward> ports) {
    UserNetOptions o;
    o.ports = std::move(ports);
    o.helpers = {GetParam()};
    return o;
  }
  std::optional<EnvProcess> env_;
};

TEST_P(NetLive, ForwardsAHostPortIntoTheEnv) {
  uint16_t port = free_port();
  ASSERT_NE(port, 0);
  PortForward fwd;
  fwd.host_port = port;
  fwd.env_port = kEnvPort;
  auto net = UserNet::start(env_->pid(), options({fwd}));
  ASSERT_TRUE(net) << net.error().message;
  EXPECT_EQ(net->helper(), GetParam());
  EXPECT_EQ(fetch(port), "hello");
  EXPECT_EQ(fetch(port), "hello");
  pid_t helper = net->pid();
  net->stop();
  EXPECT_FALSE(net->running());
  EXPECT_TRUE(gone(helper));
  EXPECT_NE(fetch(port), "hello");
}

TEST_P(NetLive, AHostPortInUseIsAClearError) {
  Fd taken(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(taken.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(taken.get(), 1), 0);
  ::getsockname(taken.get(), reinterpret_cast<sockaddr*>(&a), &len);
  PortForward fwd;
  fwd.host_port = ntohs(a.sin_port);
  fwd.env_port = kEnvPort;
  auto net = UserNet::start(env_->pid(), options({fwd}));
  ASSERT_FALSE(net);
  EXPECT_NE(net.error().message.find(std::string(helper_name(GetParam()))), std::string::npos)
      << net.error().message;
  EXPECT_NE(net.error().message.find(std::to_string(fwd.host_port)), std::string::npos)
      << net.error().message;
}

// SIGKILL the process that started the helper: the helper must not stay.
TEST_P(NetLive, TheHelperDiesWithTogo) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // The orphaned helper comes to this process, which reaps it.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  pid_t owner = ::fork();
  if (owner == 0) {
    ::close(fds[0]);
    auto net = UserNet::start(env_->pid(), options({}));
    pid_t helper = net ? net->pid() : -1;
    (void)!::write(fds[1], &helper, sizeof helper);
    ::pause();
    ::_exit(0);
  }
  ::close(fds[1]);
  pid_t helper = -1;
  ssize_t n = ::read(fds[0], &helper, sizeof helper);
  ::close(fds[0]);
  bool alive = n == static_cast<ssize_t>(sizeof helper) && helper > 0 && !gone(helper, 0);
  ::kill(owner, SIGKILL);
  ::waitpid(owner, nullptr, 0);
  EXPECT_TRUE(!alive || gone(helper));
  if (alive) ::waitpid(helper, nullptr, 0);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  ASSERT_TRUE(alive) << "the helper did not start";
}

INSTANTIATE_TEST_SUITE_P(Helpers, NetLive,
                         ::testing::Values(HelperKind::kPasta, HelperKind::kSlirp4netns),
                         [](const auto& info) { return std::string(helper_name(info.param)); });

TEST(UserNet, NoHelperInstalledNamesBothPackages) {
  UserNetOptions o;
  o.search_path = "/nonexistent-dir";
  auto net = UserNet::start(::getpid(), o);
  ASSERT_FALSE(net);
  EXPECT_NE(net.error().message.find("pasta or slirp4netns"), std::string::npos);
  EXPECT_NE(net.error().hint.find("passt"), std::string::npos);
  EXPECT_NE(net.error().hint.find("slirp4netns"), std::string::npos);
}

TEST(UserNet, LowHostPortsAreRefusedBeforeStartingAnything) {
  if (!rootless()) GTEST_SKIP() << "root may bind any port";
  UserNetOptions o;
  o.ports = {*parse_port("80:80")};
  auto net = UserNet::start(::getpid(), o);
  ASSERT_FALSE(net);
  EXPECT_EQ(net.error().kind, ErrorKind::kUsage);
}

TEST(UserNet, FindsHelpersOnlyByAbsoluteDirectories) {
  EXPECT_FALSE(find_helper(HelperKind::kPasta, "relative/bin:."));
  EXPECT_FALSE(find_helper(HelperKind::kSlirp4netns, "/nonexistent"));
}

TEST(Loopback, ComesUpInANewNetworkNamespace) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET | (rootless() ? CLONE_NEWUSER : 0)) < 0) ::_exit(77);
    if (loopback_up() != 0) ::_exit(1);
    if (loopback_up() != 0) ::_exit(2);  // twice is fine
    int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    ifreq ifr = {};
    std::strcpy(ifr.ifr_name, "lo");
    if (::ioctl(s, SIOCGIFFLAGS, &ifr) < 0 || !(ifr.ifr_flags & IFF_UP)) ::_exit(3);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot create a network namespace here";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace togo::net
