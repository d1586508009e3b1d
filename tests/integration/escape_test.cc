// The known container escapes, each reproduced from inside an env and shown
// to fail, as root and rootless. Also what the hardening leaves the env:
// capabilities, no_new_privs, seccomp, masked paths.
#include <sys/stat.h>

#include <filesystem>

#include "base/sha256.h"
#include "fixture.h"

namespace togo::test {
namespace {

class EscapeTest : public TogoTest {
 protected:
  void SetUp() override {
    TogoTest::SetUp();
    if (IsSkipped()) return;
    make_env("dev");
  }
  static std::string hash_of(const std::string& path) {
    auto text = read_file(path);
    return text ? Sha256::digest_of(*text) : "unreadable";
  }
  /// True if the probe saw a mount on `point`.
  static bool mounted(const std::map<std::string, std::vector<std::string>>& probe,
                      const std::string& point) {
    auto it = probe.find("mount");
    if (it == probe.end()) return false;
    for (const auto& m : it->second)
      if (m.starts_with(point + " ")) return true;
    return false;
  }
};

// runc CVE-2019-5736: a process in the container opened the runtime's binary
// through /proc/<pid>/exe and overwrote it. Here pid 1 and every session
// leader run togo's code: their exe, root and descriptors are closed to the
// env (as root the fd directory can be listed, but no entry followed), and
// the binary on the host is unchanged. Tried from init's own session (the
// command's parent is init) and from one beside it (its parent a leader).
TEST_P(EscapeTest, TogoBinaryCannotBeReachedThroughProcExe) {
  std::string before = hash_of(togo_bin());
  const std::string script =
      "echo parent-$PPID;"
      "for p in 1 $PPID; do"
      "  if cat /proc/$p/exe > /dev/null 2>&1; then echo read-$p; fi;"
      "  if (echo x > /proc/$p/exe) 2>/dev/null; then echo wrote-$p; fi;"
      "  if ls /proc/$p/root/ > /dev/null 2>&1; then echo root-$p; fi;"
      "  for f in /proc/$p/fd/*; do"
      "    if readlink $f > /dev/null 2>&1; then echo link-$f; fi;"
      "    if cat $f > /dev/null 2>&1 < /dev/null; then echo opened-$f; fi;"
      "  done;"
      "done; echo done";
  RunResult r = sh("dev", script);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "parent-1\ndone\n") << "reachable from the env: " << r.out;

  Background holder({togo_bin(), "--store", store(), "run", "dev", "--", "sh", "-c",
                     "echo ready; exec sleep 30"},
                    as_uid());
  ASSERT_TRUE(holder.wait_for_line("ready", 30)) << holder.err();
  r = sh("dev", script);
  EXPECT_EQ(r.status, 0) << describe(r);
  ASSERT_FALSE(r.out.starts_with("parent-1\n")) << "the second session has a leader: " << r.out;
  EXPECT_EQ(r.out.substr(r.out.find('\n') + 1), "done\n") << "reachable from the env: " << r.out;
  EXPECT_EQ(hash_of(togo_bin()), before);
}

// runc CVE-2024-21626: a directory fd of the runtime's leaked into the
// container and was used as the working directory, reaching the host's
// tree. Only stdio reaches the command, and its cwd is inside the env.
TEST_P(EscapeTest, NoDescriptorOrWorkingDirectoryLeadsOutside) {
  auto p = probe("dev");
  EXPECT_EQ(probe_value(p, "fds"), "0 1 2");
  RunResult r = sh("dev",
                   "cd /proc/self/cwd && pwd -P;"
                   "ls /proc/1/cwd/ > /dev/null 2>&1 && echo listed-init-cwd;"
                   "ls /proc/$PPID/cwd/ > /dev/null 2>&1 && echo listed-leader-cwd; echo done");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "/root\ndone\n");
}

// Mounting over /proc (or anywhere) from inside is refused: no
// CAP_SYS_ADMIN, and the seccomp filter refuses mount and its new API.
TEST_P(EscapeTest, MountingOverProcIsRefused) {
  RunResult r = sh("dev",
                   "mount -t proc proc /proc 2>/dev/null && echo mounted-proc;"
                   "mount -o bind /tmp /proc 2>/dev/null && echo bound-proc;"
                   "mount -t tmpfs none /mnt 2>/dev/null && echo mounted-tmpfs;"
                   "umount /proc 2>/dev/null && echo unmounted; echo done");
  EXPECT_EQ(r.out, "done\n");
  // /proc is still the env's own: pid 1 is the env's init.
  RunResult init = sh("dev", "cat /proc/1/comm");
  EXPECT_EQ(init.out, "togo-init\n");
}

TEST_P(EscapeTest, HardeningIsOnByDefault) {
  auto p = probe("dev");
  EXPECT_EQ(probe_value(p, "no_new_privs"), "1");
  EXPECT_EQ(probe_value(p, "seccomp"), "2");
  // chown dac_override fowner fsetid kill setgid setuid setpcap
  // net_bind_service sys_chroot setfcap: what podman grants.
  EXPECT_EQ(probe_value(p, "cap_eff"), "00000000800405fb");
  // Masked and read-only /proc paths are mounts over the env's own.
  EXPECT_TRUE(mounted(p, "/proc/keys")) << testing::PrintToString(p["mount"]);
  EXPECT_TRUE(mounted(p, "/proc/sys")) << testing::PrintToString(p["mount"]);
  RunResult r = sh("dev",
                   "unshare -U true 2>/dev/null && echo unshared;"
                   "hostname evil 2>/dev/null && echo renamed;"
                   "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo wrote-sysctl;"
                   "echo x > /proc/sysrq-trigger 2>/dev/null && echo sysrq;"
                   "cat /proc/keys 2>/dev/null | wc -c; echo done");
  EXPECT_EQ(r.out, "0\ndone\n") << describe(r);

  // Masked directories (those this host has, and not empty here) show
  // nothing and take nothing, each an empty read-only tmpfs.
  std::string script;
  int masked = 0;
  for (const char* dir : {"/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware",
                          "/sys/dev/block", "/sys/devices/virtual/powercap", "/sys/fs/selinux"}) {
    std::error_code ec;
    if (std::filesystem::is_empty(dir, ec) || ec) continue;
    masked++;
    EXPECT_TRUE(mounted(p, dir)) << dir << " in " << testing::PrintToString(p["mount"]);
    script += std::string("ls -A ") + dir + "; touch " + dir + "/x 2>/dev/null && echo wrote-" +
              dir + ";";
  }
  if (masked > 0) {
    RunResult m = sh("dev", script + "echo done");
    EXPECT_EQ(m.out, "done\n") << masked << " masked directories: " << describe(m);
  }
}

// A device node an image brings opens nothing: the env's root is nodev (as
// root there is no device cgroup, and /dev/mem or a node of the host's
// disk would otherwise open). Rootless imports make no device nodes at all.
TEST_P(EscapeTest, DeviceNodesFromAnImageDoNotOpen) {
  std::string tar = sub("nodes.tar");
  make_tar(tar, "base()\ndir('opt')\ndev('opt/mem', 1, 1)\ndev('opt/zero', 1, 5)\n");
  import_image(tar, "nodes");
  create_env("box", "nodes");
  RunResult r = sh("box",
                   "head -c1 /opt/mem > /dev/null 2>&1 && echo read-mem;"
                   "head -c1 /opt/zero > /dev/null 2>&1 && echo read-zero;"
                   "head -c1 /dev/zero | wc -c");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "1\n") << "only the env's own /dev opens: " << r.out;
}

TEST_P(EscapeTest, PrivilegedTurnsHardeningOff) {
  ASSERT_EQ(tg({"config", "dev", "privileged=true"}).status, 0);
  auto p = probe("dev");
  EXPECT_EQ(probe_value(p, "seccomp"), "0");
  EXPECT_EQ(probe_value(p, "no_new_privs"), "0");
  EXPECT_NE(probe_value(p, "cap_eff"), "00000000800405fb") << "capabilities are not dropped";
  EXPECT_NE(probe_value(p, "cap_eff"), "");
  EXPECT_FALSE(mounted(p, "/proc/keys")) << "no masked paths";
  EXPECT_FALSE(mounted(p, "/proc/sys"));
}

// A share whose target in the image is a symlink pointing out of the env
// lands inside the env; the host's tree is never mounted over.
TEST_P(EscapeTest, SymlinkedShareTargetStaysInsideTheEnv) {
  std::string tar = sub("evil.tar");
  make_tar(tar, "base()\nsym('mnt', '/etc')\nsym('opt', '../../../../../../etc')\n");
  import_image(tar, "evil");
  std::string host_dir = sub("shared");
  ASSERT_EQ(::mkdir(host_dir.c_str(), 0755), 0);
  write_file(host_dir + "/marker", "from-host");
  if (rootless()) {
    ASSERT_EQ(::chown(host_dir.c_str(), host_uid(), host_uid()), 0);
  }
  std::string etc_before = hash_of("/etc/hostname");
  create_env("box", "evil", {"--share", host_dir + ":/mnt/x", "--share", host_dir + ":/opt/y"});
  RunResult r = sh("box", "cat /etc/x/marker; cat /etc/y/marker");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "from-hostfrom-host");
  EXPECT_FALSE(exists("/etc/x"));
  EXPECT_FALSE(exists("/etc/y"));
  EXPECT_EQ(hash_of("/etc/hostname"), etc_before);
}

TEST_P(EscapeTest, DotDotInSharePathsIsRefused) {
  for (const char* share : {"/tmp:/a/../../etc", "/tmp:../etc", "/tmp/../etc:/x"}) {
    RunResult r = tg({"config", "dev", std::string("share+=") + share});
    EXPECT_EQ(r.status, 2) << share << ": " << describe(r);
    EXPECT_TRUE(one_line_error(r, "share")) << share;
  }
  RunResult c = tg({"config", "dev"});
  EXPECT_EQ(c.out, "");
}

TOGO_AS_ROOT_AND_ROOTLESS(EscapeTest);

}  // namespace
}  // namespace togo::test
