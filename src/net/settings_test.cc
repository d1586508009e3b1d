#include "net/settings.h"

#include <gtest/gtest.h>

namespace togo::net {
namespace {

TEST(NetworkMode, ParsesTheThreeModes) {
  EXPECT_EQ(*parse_network("host"), NetworkMode::kHost);
  EXPECT_EQ(*parse_network("none"), NetworkMode::kNone);
  EXPECT_EQ(*parse_network("private"), NetworkMode::kPrivate);
  for (auto m : {NetworkMode::kHost, NetworkMode::kNone, NetworkMode::kPrivate})
    EXPECT_EQ(*parse_network(to_string(m)), m);
}

TEST(NetworkMode, RejectsOtherWordsWithAUsageError) {
  for (const char* bad : {"", "Host", "bridge", "slirp4netns", "private "}) {
    auto r = parse_network(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
    EXPECT_NE(r.error().message.find("--network"), std::string::npos);
    EXPECT_NE(r.error().hint.find("private"), std::string::npos);
  }
}

TEST(PortForward, ParsesHostAndEnvPorts) {
  auto p = parse_port("8080:80");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->host_address, "127.0.0.1");
  EXPECT_EQ(p->host_port, 8080);
  EXPECT_EQ(p->env_port, 80);
  EXPECT_EQ(p->proto, Protocol::kTcp);
}

TEST(PortForward, ParsesAnAddressAndAProtocol) {
  auto p = parse_port("0.0.0.0:8080:80");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_address, "0.0.0.0");
  p = parse_port("192.168.1.5:1:65535/udp");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_address, "192.168.1.5");
  EXPECT_EQ(p->host_port, 1);
  EXPECT_EQ(p->env_port, 65535);
  EXPECT_EQ(p->proto, Protocol::kUdp);
  EXPECT_EQ(parse_port("53:53/tcp")->proto, Protocol::kTcp);
}

TEST(PortForward, RejectsBadInputWithAUsageError) {
  for (const char* bad : {"",
                          "80",
                          "8080:",
                          ":80",
                          "0:80",
                          "8080:0",
                          "65536:80",
                          "8080:65536",
                          "99999:80",
                          "abc:80",
                          "-1:80",
                          "+80:80",
                          " 8080:80",
                          "8080:80 ",
                          "8080:80/",
                          "8080:80/sctp",
                          "8080:80/TCP",
                          ":8080:80",
                          "300.1.1.1:8080:80",
                          "localhost:8080:80",
                          "[::1]:8080:80",
                          "::1:8080:80",
                          "1.2.3.4:5:6:7",
                          "1.2.3:8080:80",
                          "0x50:80",
                          "000008080:80"}) {
    auto r = parse_port(bad);
    ASSERT_FALSE(r) << "accepted \"" << bad << "\"";
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage) << bad;
    EXPECT_TRUE(r.error().message.starts_with("--port ")) << r.error().message;
    EXPECT_FALSE(r.error().hint.empty());
  }
}

TEST(PortForward, ErrorsSayWhatIsWrong) {
  EXPECT_NE(parse_port("70000:80").error().message.find("host port \"70000\""), std::string::npos);
  EXPECT_NE(parse_port("8080:0").error().message.find("env port \"0\""), std::string::npos);
  EXPECT_NE(parse_port("8080:80/sctp").error().message.find("protocol"), std::string::npos);
  EXPECT_NE(parse_port("1.2.3:8080:80").error().message.find("IPv4"), std::string::npos);
  EXPECT_NE(parse_port("[::1]:8080:80").error().message.find("IPv6"), std::string::npos);
}

TEST(PortForward, FormatIsCanonicalAndParsesBack) {
  for (const char* text : {"8080:80", "0.0.0.0:1:2/udp", "10.1.2.3:443:8443", "5353:53/udp"}) {
    auto p = parse_port(text);
    ASSERT_TRUE(p) << text;
    auto again = parse_port(format_port(*p));
    ASSERT_TRUE(again) << format_port(*p);
    EXPECT_EQ(*again, *p);
  }
  EXPECT_EQ(format_port(*parse_port("8080:80")), "127.0.0.1:8080:80");
  EXPECT_EQ(format_port(*parse_port("8080:80/udp")), "127.0.0.1:8080:80/udp");
}

TEST(PortForward, NeedsPrivateNetworking) {
  std::vector<PortForward> ports = {*parse_port("8080:80")};
  EXPECT_TRUE(check_ports(NetworkMode::kPrivate, ports));
  EXPECT_TRUE(check_ports(NetworkMode::kHost, {}));
  for (auto m : {NetworkMode::kHost, NetworkMode::kNone}) {
    auto r = check_ports(m, ports);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
    EXPECT_NE(r.error().message.find("--network private"), std::string::npos);
  }
}

TEST(PortForward, AHostPortIsForwardedOnce) {
  auto check = [](std::vector<const char*> texts) {
    std::vector<PortForward> v;
    for (auto t : texts) v.push_back(*parse_port(t));
    return check_ports(NetworkMode::kPrivate, v);
  };
  EXPECT_TRUE(check({"8080:80", "8081:80", "8080:80/udp", "10.0.0.1:8080:80"}));
  EXPECT_FALSE(check({"8080:80", "8080:81"}));
  EXPECT_FALSE(check({"8080:80", "0.0.0.0:8080:81"}));
  EXPECT_FALSE(check({"0.0.0.0:8080:80", "10.0.0.1:8080:81"}));
  auto r = check({"8080:80", "8080:81"});
  EXPECT_NE(r.error().message.find("already forwarded by 127.0.0.1:8080:80"), std::string::npos)
      << r.error().message;
}

TEST(PortForward, LowHostPortsNeedRoot) {
  std::vector<PortForward> low = {*parse_port("80:80")}, high = {*parse_port("8080:80")};
  EXPECT_TRUE(check_bindable(low, 1024, /*root=*/true));
  EXPECT_TRUE(check_bindable(high, 1024, false));
  EXPECT_TRUE(check_bindable(low, 0, false));
  auto r = check_bindable(low, 1024, false);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
  EXPECT_NE(r.error().message.find("below 1024"), std::string::npos);
  EXPECT_NE(r.error().hint.find("8080:80"), std::string::npos) << r.error().hint;
}

}  // namespace
}  // namespace togo::net
