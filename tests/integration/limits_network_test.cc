// Limits seen from inside an env, and the network modes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"

namespace togo::test {
namespace {

class LimitsTest : public TogoTest {};

TEST_P(LimitsTest, PidsAndMemoryLimitsHoldInsideAsRoot) {
  if (rootless()) {
    // This host's cgroups are v1 (plus a v2 tree with hugetlb only): limits
    // need root, and a rootless env says so in one line.
    make_env("dev");
    ASSERT_EQ(tg({"config", "dev", "pids=20"}).status, 0);
    RunResult r = in_env("dev", {"true"});
    EXPECT_EQ(r.status, 125);
    EXPECT_TRUE(one_line_error(r, "--pids"));
    return;
  }
  make_env("dev");
  ASSERT_EQ(tg({"config", "dev", "pids=20", "memory=64m"}).status, 0);
  RunResult r = sh("dev",
                   "cg() { grep \":$1:\" /proc/self/cgroup | cut -d: -f3; };"
                   "cat /sys/fs/cgroup/pids$(cg pids)/pids.max;"
                   "cat /sys/fs/cgroup/memory$(cg memory)/memory.limit_in_bytes;"
                   "for i in $(seq 40); do sleep 5 & done; echo started");
  std::vector<std::string> l = lines_of(r.out);
  ASSERT_GE(l.size(), 2u) << describe(r);
  EXPECT_EQ(l[0], "20");
  EXPECT_EQ(l[1], std::to_string(64 << 20));
  EXPECT_NE(r.err.find("fork"), std::string::npos) << "forks beyond pids.max fail: " << r.err;
}

TEST_P(LimitsTest, BadLimitsAreRefusedBeforeAnythingChanges) {
  make_env("dev");
  for (const char* edit : {"memory=lots", "cpus=0", "pids=0"}) {
    RunResult r = tg({"config", "dev", edit});
    EXPECT_EQ(r.status, 2) << edit;
    EXPECT_TRUE(one_line_error(r)) << edit;
  }
  EXPECT_EQ(tg({"config", "dev"}).out, "");
}

TOGO_AS_ROOT_AND_ROOTLESS(LimitsTest);

class NetworkTest : public TogoTest {};

TEST_P(NetworkTest, NoneHasOnlyLoopback) {
  make_env("dev");
  ASSERT_EQ(tg({"config", "dev", "network=none"}).status, 0);
  RunResult r = sh("dev",
                   "ls /sys/class/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ';"
                   "cat /etc/resolv.conf | grep -c nameserver");
  EXPECT_EQ(r.out, "lo\nlo\n0\n") << describe(r);
}

// /proc/net/dev lists the interfaces of the reader's network namespace.
TEST_P(NetworkTest, HostIsTheDefault) {
  make_env("dev");
  const std::string list = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort";
  RunResult r = sh("dev", list);
  RunResult h = run({"sh", "-c", list});
  EXPECT_EQ(r.out, h.out);
  EXPECT_NE(r.out, "lo\n") << "the host has more than a loopback";
}

TEST_P(NetworkTest, PrivateNetworkForwardsAPort) {
  struct stat tun;
  if (rootless() && (::stat("/dev/net/tun", &tun) != 0 || (tun.st_mode & 06) != 06))
    GTEST_SKIP() << "/dev/net/tun is not open to unprivileged users on this host; the user-mode "
                    "network needs it (Debian's default mode is 0666)";
  // A free port on the host.
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe, reinterpret_cast<struct sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(probe, reinterpret_cast<struct sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(probe);

  make_env("dev");
  ASSERT_EQ(tg({"config", "dev", "network=private", "port+=127.0.0.1:" + std::to_string(port) + ":80"})
                .status,
            0);
  ASSERT_EQ(tg({"start", "dev"}).status, 0);
  RunResult addr = sh("dev", "ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; grep nameserver /etc/resolv.conf");
  EXPECT_EQ(addr.out, "inet 10.0.2.100\nnameserver 10.0.2.3\n") << describe(addr);
  Background server({togo_bin(), "--store", store(), "exec", "dev", "--", "sh", "-c",
                     "echo ready; printf 'hello from env' | busybox nc -l -p 80"},
                    as_uid());
  ASSERT_TRUE(server.wait_for_line("ready", 10));
  std::string got;
  for (int i = 0; i < 50 && got.empty(); i++) {
    ::usleep(100000);
    RunResult c = run({"python3", "-c",
                       "import socket; s = socket.create_connection(('127.0.0.1', " +
                           std::to_string(port) + "), 2); print(s.recv(100).decode(), end='')"},
                      {.timeout_s = 5});
    if (c.status == 0) got = c.out;
  }
  EXPECT_EQ(got, "hello from env");
  EXPECT_EQ(tg({"stop", "dev"}).status, 0);
}

TOGO_AS_ROOT_AND_ROOTLESS(NetworkTest);

}  // namespace
}  // namespace togo::test
