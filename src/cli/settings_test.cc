#include "cli/settings.h"

#include <gtest/gtest.h>

namespace togo::cli {
namespace {

TEST(Settings, EditsSetAddRemoveAndClear) {
  Settings s;
  ASSERT_TRUE(apply_edit(s, "env=A=1"));
  ASSERT_TRUE(apply_edit(s, "env+=B=2"));
  ASSERT_TRUE(apply_edit(s, "env+=A=3"));  // a variable set again replaces it
  EXPECT_EQ(s.env, (std::vector<std::string>{"B=2", "A=3"}));
  ASSERT_TRUE(apply_edit(s, "env-=B=2"));
  EXPECT_EQ(s.env, std::vector<std::string>{"A=3"});
  ASSERT_TRUE(apply_edit(s, "env="));
  EXPECT_TRUE(s.env.empty());
  ASSERT_TRUE(apply_edit(s, "workdir=/src"));
  ASSERT_TRUE(apply_edit(s, "network=private"));
  ASSERT_TRUE(apply_edit(s, "port+=8080:80"));
  ASSERT_TRUE(apply_edit(s, "user=true"));
  EXPECT_EQ(s.workdir, "/src");
  EXPECT_EQ(s.network, "private");
  EXPECT_EQ(s.ports, std::vector<std::string>{"127.0.0.1:8080:80"});
  EXPECT_TRUE(s.user);
  ASSERT_TRUE(apply_edit(s, "network="));
  EXPECT_EQ(s.network, "host");
}

TEST(Settings, BadValuesAreRefusedAndChangeNothing) {
  Settings s;
  ASSERT_TRUE(apply_edit(s, "memory=512m"));
  for (const char* edit : {"memory=lots", "cpus=0", "pids=-1", "network=bridge", "port=99999:1",
                           "share=rel:/x", "share=/h:/a/../b", "share=/h:/", "share=/h:/proc", "share=/h:/proc/sys",
                           "share=/h:/sys/x", "share=/h:/dev", "workdir=rel",
                           "hostname=-bad", "user=yes", "frobnicate=1", "novalue", "=x",
                           "memory+=1g", "env=NOEQUALS", "env+=A=1\nB=2"}) {
    Settings before = s;
    auto r = apply_edit(s, edit);
    EXPECT_FALSE(r) << edit;
    if (!r) EXPECT_EQ(r.error().kind, ErrorKind::kUsage) << edit;
    EXPECT_EQ(format_settings(s), format_settings(before)) << edit;
  }
}

TEST(Settings, PortsNeedAPrivateNetworkAndDistinctHostPorts) {
  Settings s;
  ASSERT_TRUE(apply_edit(s, "port+=8080:80"));
  auto r = check_settings(s);  // the network is still the host's
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("--network private"), std::string::npos);
  ASSERT_TRUE(apply_edit(s, "network=private"));
  EXPECT_TRUE(check_settings(s));
  ASSERT_TRUE(apply_edit(s, "port+=0.0.0.0:8080:81"));
  EXPECT_FALSE(check_settings(s));
}

TEST(Settings, SharesParse) {
  auto sh = parse_share("/home/me/src:/src:ro");
  ASSERT_TRUE(sh);
  EXPECT_EQ(sh->host, "/home/me/src");
  EXPECT_EQ(sh->path, "/src");
  EXPECT_TRUE(sh->readonly);
  EXPECT_FALSE(parse_share("/a:/b")->readonly);
  EXPECT_FALSE(parse_share("/a:/b:rw")->readonly);
  EXPECT_FALSE(parse_share("/a"));
}

TEST(Settings, TextRoundTrips) {
  Settings s;
  for (const char* e : {"env=A=1", "env+=B=x=y", "share+=/h:/w:ro", "share+=/i:/j", "pids=100",
                        "hostname=box", "privileged=true"})
    ASSERT_TRUE(apply_edit(s, e)) << e;
  std::string text = format_settings(s);
  auto back = parse_settings(text);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(format_settings(*back), text);
  EXPECT_EQ(back->shares.size(), 2u);
  EXPECT_FALSE(parse_settings("frobnicate=1\n"));
  EXPECT_TRUE(parse_settings("")->env.empty());
}

}  // namespace
}  // namespace togo::cli
