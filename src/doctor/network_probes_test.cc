// The network helpers, DNS and proxy settings.
#include <cerrno>

#include "doctor/doctor_test_util.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

using testing::Fixture;
using testing::has;

TEST(DoctorNetHelpersProbe, EachOutcome) {
  Fixture fx;
  HostView v = fx.view(1000);
  Finding f = probe_net_helpers(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_EQ(f.found, "pasta is not installed; slirp4netns is not installed; /dev/net/tun opens");
  EXPECT_EQ(f.fix, "sudo apt install passt (it has pasta), or slirp4netns");

  fx.program("pasta");
  f = probe_net_helpers(v);
  EXPECT_EQ(f.status, Status::kOk) << "pasta alone is enough";

  fx.program("slirp4netns");
  f = probe_net_helpers(v);
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_EQ(f.found, "pasta at " + fx.path("usr/bin/pasta") + "; slirp4netns version 1.0 at " +
                         fx.path("usr/bin/slirp4netns") + "; /dev/net/tun opens");

  v.live.open_rw = [](const std::string&) { return EACCES; };
  f = probe_net_helpers(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "/dev/net/tun: Permission denied")) << f.found;
  EXPECT_EQ(f.fix, "sudo chmod 0666 /dev/net/tun (its usual mode)");
  v.live.open_rw = [](const std::string&) { return ENOENT; };
  EXPECT_EQ(probe_net_helpers(v).fix, "sudo modprobe tun");
}

TEST(DoctorDnsProbe, PlainNameServers) {
  Fixture fx;
  fx.file("etc/resolv.conf", "# hi\nsearch lan\nnameserver 192.168.1.1\nnameserver 1.1.1.1\n");
  Finding f = probe_dns(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_TRUE(
      f.found.starts_with("nameserver 192.168.1.1, 1.1.1.1 in /etc/resolv.conf; envs use "
                          "it"))
      << f.found;
}

TEST(DoctorDnsProbe, SystemdResolvedStub) {
  Fixture fx;
  fx.file("run/systemd/resolve/stub-resolv.conf", "nameserver 127.0.0.53\noptions edns0\n");
  fx.symlink("etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf");
  Finding f = probe_dns(fx.view());
  EXPECT_EQ(f.status, Status::kOk);
  EXPECT_TRUE(
      f.found.starts_with("nameserver 127.0.0.53 (systemd-resolved's stub) in "
                          "/etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf"))
      << f.found;
  EXPECT_TRUE(has(f.found, "cannot reach the host's loopback, ask 10.0.2.3")) << f.found;
}

TEST(DoctorDnsProbe, NoNameServerOrNoFile) {
  Fixture fx;
  fx.file("etc/resolv.conf", "search lan\n");
  EXPECT_EQ(probe_dns(fx.view()).status, Status::kDegraded);
  Fixture empty;
  Finding f = probe_dns(empty.view());
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.found, "cannot be read")) << f.found;
}

TEST(DoctorProxyProbe, NoneSet) {
  Fixture fx;
  EXPECT_EQ(probe_proxy(fx.view()).status, Status::kOk);
}

TEST(DoctorProxyProbe, SetVariablesAreShownWithoutPasswords) {
  Fixture fx;
  HostView v = fx.view();
  v.env = {{"https_proxy", "http://me:secret@proxy.corp:3128/"}, {"no_proxy", "localhost,.corp"}};
  Finding f = probe_proxy(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_EQ(f.found,
            "https_proxy=http://***@proxy.corp:3128/, no_proxy=localhost,.corp in "
            "togo's environment");
  EXPECT_FALSE(has(f.found, "secret"));
  EXPECT_FALSE(has(f.why, "loopback")) << f.why;
}

TEST(DoctorProxyProbe, LoopbackProxyIsUnreachableFromPrivateEnvs) {
  Fixture fx;
  HostView v = fx.view();
  v.env = {{"HTTP_PROXY", "127.0.0.1:8080"}};
  Finding f = probe_proxy(v);
  EXPECT_EQ(f.status, Status::kDegraded);
  EXPECT_TRUE(has(f.why, "loopback cannot be reached")) << f.why;
}

}  // namespace
}  // namespace togo::doctor
