#include "net/helper_argv.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace togo::net {
namespace {

using Argv = std::vector<std::string>;

HelperArgs with_ports() {
  HelperArgs a;
  a.ports = {*parse_port("8080:80"), *parse_port("0.0.0.0:2222:22"), *parse_port("5353:53/udp")};
  return a;
}

TEST(PastaArgv, ForwardsOnlyTheGivenPortsIntoAProcessNamespace) {
  HelperArgs a = with_ports();
  a.target.pid = 4242;
  a.pid_file = "/run/user/1000/togo-net-x/ready";
  // clang-format off
  EXPECT_EQ(pasta_argv("/usr/bin/pasta", a),
            (Argv{"/usr/bin/pasta", "--foreground", "--quiet", "--config-net",
                  "--ns-ifname", "eth0", "--address", "10.0.2.100", "--netmask", "24",
                  "--gateway", "10.0.2.2", "--dns-forward", "10.0.2.3", "--mtu", "65520",
                  "--no-map-gw",
                  "--tcp-ports", "127.0.0.1/8080:80", "--tcp-ports", "0.0.0.0/2222:22",
                  "--udp-ports", "127.0.0.1/5353:53",
                  "--tcp-ns", "none", "--udp-ns", "none",
                  "--pid", "/run/user/1000/togo-net-x/ready", "4242"}));
  // clang-format on
}

TEST(PastaArgv, NoPortsMeansNoneNotAuto) {
  HelperArgs a;
  a.target.pid = 7;
  Argv v = pasta_argv("pasta", a);
  auto after = [&](const std::string& flag) {
    for (size_t i = 0; i + 1 < v.size(); ++i)
      if (v[i] == flag) return v[i + 1];
    return std::string("<missing>");
  };
  // pasta's default for each is "auto": every port bound on either side.
  for (const char* flag : {"--tcp-ports", "--udp-ports", "--tcp-ns", "--udp-ns"})
    EXPECT_EQ(after(flag), "none") << flag;
  EXPECT_EQ(v.back(), "7");
}

TEST(PastaArgv, AsRootByNamespacePath) {
  HelperArgs a;
  a.target.netns_path = "/tmp/togo-net-x/netns";
  a.runas = "0:0";
  a.mtu = 1500;
  a.host_loopback = true;
  Argv v = pasta_argv("pasta", a);
  EXPECT_EQ(Argv(v.end() - 5, v.end()),
            (Argv{"--runas", "0:0", "--no-netns-quit", "--netns", "/tmp/togo-net-x/netns"}));
  EXPECT_EQ(std::count(v.begin(), v.end(), "--no-map-gw"), 0);
  EXPECT_NE(std::find(v.begin(), v.end(), "1500"), v.end());
  a.target.userns_path = "/proc/9/ns/user";
  v = pasta_argv("pasta", a);
  EXPECT_EQ(Argv(v.end() - 5, v.end()), (Argv{"--userns", "/proc/9/ns/user", "--no-netns-quit",
                                              "--netns", "/tmp/togo-net-x/netns"}));
}

TEST(Slirp4netnsArgv, ConfiguresAProcessNamespace) {
  HelperArgs a = with_ports();
  a.target.pid = 4242;
  a.ready_fd = 3;
  a.exit_fd = 4;
  a.api_socket = "/tmp/togo-net-x/api.sock";
  EXPECT_EQ(slirp4netns_argv("/usr/bin/slirp4netns", a),
            (Argv{"/usr/bin/slirp4netns", "--configure", "--mtu=65520", "--cidr=10.0.2.0/24",
                  "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp", "--ready-fd=3",
                  "--exit-fd=4", "--api-socket=/tmp/togo-net-x/api.sock", "4242", "eth0"}));
}

TEST(Slirp4netnsArgv, ByPathWithAUserNamespace) {
  HelperArgs a;
  a.target.netns_path = "/run/netns/x";
  a.target.userns_path = "/proc/9/ns/user";
  a.sandbox = false;
  a.host_loopback = true;
  EXPECT_EQ(slirp4netns_argv("slirp4netns", a),
            (Argv{"slirp4netns", "--configure", "--mtu=65520", "--cidr=10.0.2.0/24",
                  "--netns-type=path", "--userns-path=/proc/9/ns/user", "/run/netns/x", "eth0"}));
}

TEST(Slirp4netnsApi, AddHostfwdRequest) {
  EXPECT_EQ(slirp_add_hostfwd(*parse_port("8080:80")),
            R"({"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "127.0.0.1", )"
            R"("host_port": 8080, "guest_addr": "10.0.2.100", "guest_port": 80}})");
  EXPECT_NE(slirp_add_hostfwd(*parse_port("0.0.0.0:5353:53/udp")).find(R"("proto": "udp")"),
            std::string::npos);
}

TEST(Slirp4netnsApi, Replies) {
  EXPECT_TRUE(parse_slirp_reply(R"({"return":{"id":1}})"));
  EXPECT_TRUE(parse_slirp_reply(R"({"return": {}})"));
  auto r = parse_slirp_reply(
      R"({"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "slirp4netns refused: bad request: add_hostfwd: slirp_add_hostfwd failed");
  r = parse_slirp_reply(R"({"error": {"desc": "a \"quoted\"\nword"}})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "slirp4netns refused: a \"quoted\" word");
  for (const char* junk : {"", "{", "null", R"({"error": 5})", "\x01\x02"})
    EXPECT_FALSE(parse_slirp_reply(junk)) << junk;
}

TEST(Helpers, NamesAndPackages) {
  EXPECT_EQ(helper_name(HelperKind::kPasta), "pasta");
  EXPECT_EQ(helper_package(HelperKind::kPasta), "passt");
  EXPECT_EQ(helper_name(HelperKind::kSlirp4netns), "slirp4netns");
  EXPECT_EQ(helper_package(HelperKind::kSlirp4netns), "slirp4netns");
}

}  // namespace
}  // namespace togo::net
