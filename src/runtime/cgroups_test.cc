// Detection and creation of cgroups against fixture trees: a mount table, a
// /proc/self/cgroup and stand-in cgroup directories under a temp dir.
#include "runtime/cgroups.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "runtime/cgroups_apply.h"

namespace togo::runtime {
namespace {

bool has_text(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}
bool starts_with_text(const std::string& s, const std::string& prefix) {
  return s.starts_with(prefix);
}

class Tree {
 public:
  Tree() {
    std::string tmpl = ::testing::TempDir() + "togo-cgroups-XXXXXX";
    dir_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~Tree() { (void)fs::remove_tree(AT_FDCWD, dir_); }
  const std::string& root() const { return dir_; }
  std::string path(const std::string& rel) const { return fs::join(dir_, rel); }

  void file(const std::string& rel, const std::string& text) {
    std::string p = path(rel);
    ASSERT_TRUE(fs::make_dirs(p.substr(0, p.find_last_of('/'))));
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << p;
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
  }
  void dir(const std::string& rel) { ASSERT_TRUE(fs::make_dirs(path(rel))); }
  void chown(const std::string& rel, uid_t uid) {
    ASSERT_EQ(::lchown(path(rel).c_str(), uid, uid), 0) << rel;
  }
  std::string read(const std::string& rel) const {
    return fs::read_file(AT_FDCWD, path(rel)).value_or("<missing>");
  }
  bool exists(const std::string& rel) const { return ::access(path(rel).c_str(), F_OK) == 0; }

 private:
  std::string dir_;
};

const char* kRootAndProc =
    "21 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
    "25 21 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n";

// The test runner owns every fixture file. Judging rights as the runner makes
// the tree "ours" (root's, when tests run as root); any other uid is a user
// to whom nothing was delegated.
uid_t me() { return ::geteuid(); }
uid_t stranger() { return ::geteuid() + 1; }

// --- parsers -----------------------------------------------------------------

TEST(CgroupParse, MountinfoWithOptionalFieldsAndEscapes) {
  auto m = parse_mountinfo(
      "36 25 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 master:3 - cgroup cgroup "
      "rw,cpu,cpuacct\n"
      "40 21 0:40 /sub /mnt/my\\040dir ro,relatime - cgroup2 none rw,nsdelegate\n"
      "garbage line\n");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].mount_point, "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(m[0].fstype, "cgroup");
  EXPECT_EQ(m[0].super_options, (std::vector<std::string>{"rw", "cpu", "cpuacct"}));
  EXPECT_EQ(m[1].root, "/sub");
  EXPECT_EQ(m[1].mount_point, "/mnt/my dir");
  EXPECT_EQ(m[1].options[0], "ro");
  EXPECT_EQ(m[1].source, "none");
}

TEST(CgroupParse, ProcSelfCgroup) {
  auto p = parse_proc_cgroup("4:memory:/a/b\n3:cpu,cpuacct:/\n1:name=systemd:/x\n0::/u/s\n");
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[0].controllers, std::vector<std::string>{"memory"});
  EXPECT_EQ(p[0].path, "/a/b");
  EXPECT_EQ(p[1].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_TRUE(p[3].controllers.empty());
  EXPECT_EQ(p[3].path, "/u/s");
}

// --- no cgroups --------------------------------------------------------------

TEST(CgroupDetect, NoCgroupsAtAll) {
  Tree t;
  t.file("proc/self/mountinfo", kRootAndProc);
  auto h = detect_cgroups(t.root(), me());
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->layout, CgroupLayout::kNone);
  for (Controller c : kControllers) {
    EXPECT_FALSE(h->support(c).usable);
    EXPECT_PRED2(has_text, h->support(c).missing, "no cgroup filesystem is mounted");
  }
  EXPECT_EQ(describe_layout(*h), "none: no cgroup filesystem is mounted");
  Limits l;
  l.memory = 1 << 30;
  auto cg = create_env_cgroup(*h, "dev", l);
  ASSERT_FALSE(cg);
  EXPECT_EQ(cg.error().kind, ErrorKind::kFailed);
  EXPECT_PRED2(starts_with_text, cg.error().message,
               "cannot apply --memory: no cgroup filesystem");
  EXPECT_EQ(cg.error().hint, "clear the limits with `togo config NAME memory= cpus= pids=`");
}

TEST(CgroupDetect, WithoutAMountTableItIsAnError) {
  Tree t;
  EXPECT_FALSE(detect_cgroups(t.root(), me()));
}

TEST(CgroupApply, NoLimitsMeansNoCgroup) {
  Tree t;
  t.file("proc/self/mountinfo", kRootAndProc);
  auto cg = create_env_cgroup(*detect_cgroups(t.root(), me()), "dev", Limits{});
  ASSERT_TRUE(cg);
  EXPECT_TRUE(cg->empty());
  EXPECT_EQ(cg->v2_fd(), -1);
  EXPECT_TRUE(cg->add(1));
  EXPECT_TRUE(cg->remove());
}

// --- pure v2 -----------------------------------------------------------------

void pure_v2_mounts(Tree& t, const std::string& own) {
  t.file("proc/self/mountinfo",
         std::string(kRootAndProc) +
             "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 "
             "cgroup2 rw,nsdelegate,memory_recursiveprot\n");
  t.file("proc/self/cgroup", "0::" + own + "\n");
  t.file("proc/1/comm", "systemd\n");
  t.file("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
  t.file("sys/fs/cgroup/cgroup.subtree_control", "cpu memory pids\n");
  t.file("sys/fs/cgroup/cgroup.procs", "1\n");
}

void v2_cgroup(Tree& t, const std::string& rel, const std::string& controllers,
               const std::string& enabled, const std::string& procs) {
  std::string d = "sys/fs/cgroup" + rel;
  t.file(d + "/cgroup.controllers", controllers + "\n");
  t.file(d + "/cgroup.subtree_control", enabled.empty() ? "" : enabled + "\n");
  t.file(d + "/cgroup.procs", procs);
  t.file(d + "/cgroup.type", "domain\n");
}

// A systemd host: user@1000.service is delegated (dir, cgroup.procs and
// cgroup.subtree_control chowned), the slices above it belong to root.
void delegated_user_tree(Tree& t, const std::string& offered) {
  const std::string scope = "/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope";
  pure_v2_mounts(t, scope);
  v2_cgroup(t, "/user.slice", "cpu memory pids", "cpu memory pids", "");
  v2_cgroup(t, "/user.slice/user-1000.slice", "cpu memory pids", "cpu memory pids", "");
  const std::string svc = "/user.slice/user-1000.slice/user@1000.service";
  v2_cgroup(t, svc, offered, "memory pids", "");
  v2_cgroup(t, svc + "/app.slice", "memory pids", "", "");
  v2_cgroup(t, scope, "", "", "4242\n");
  for (std::string rel : {svc, svc + "/app.slice", scope}) {
    std::string d = "sys/fs/cgroup" + rel;
    t.chown(d, 1000);
    t.chown(d + "/cgroup.procs", 1000);
    t.chown(d + "/cgroup.subtree_control", 1000);
  }
}

TEST(CgroupDetect, PureV2DelegatedToTheUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "the fixture chowns cgroups to uid 1000, which needs root";
  Tree t;
  delegated_user_tree(t, "cpu memory pids");
  auto h = detect_cgroups(t.root(), 1000);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->layout, CgroupLayout::kV2);
  EXPECT_TRUE(h->systemd);
  const std::string base = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service";
  for (Controller c : kControllers) {
    EXPECT_TRUE(h->support(c).usable) << h->support(c).missing;
    EXPECT_EQ(h->support(c).version, 2);
    EXPECT_EQ(h->support(c).base, base);
  }
  EXPECT_FALSE(h->memory.enable);
  EXPECT_TRUE(h->cpu.enable);  // offered to the service, not yet enabled below it
  EXPECT_EQ(describe_layout(*h),
            "v2: v2 at /sys/fs/cgroup (cpuset, cpu, io, memory, hugetlb, pids, rdma, misc)");
}

TEST(CgroupApply, PureV2DelegatedWritesTheLimits) {
  if (::geteuid() != 0) GTEST_SKIP() << "the fixture chowns cgroups to uid 1000, which needs root";
  Tree t;
  delegated_user_tree(t, "cpu memory pids");
  auto h = detect_cgroups(t.root(), 1000);
  ASSERT_TRUE(h);
  Limits l;
  l.memory = 512ull << 20;
  l.cpus = 1.5;
  l.pids = 100;
  auto cg = create_env_cgroup(*h, "dev", l);
  ASSERT_TRUE(cg) << cg.error().message;
  ASSERT_EQ(cg->paths().size(), 1u);
  const std::string base = "sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service";
  std::string leaf = cg->paths()[0];
  EXPECT_PRED2(starts_with_text, leaf, "/" + base + "/togo/dev-");
  EXPECT_GE(cg->v2_fd(), 0);
  leaf = leaf.substr(1);
  EXPECT_EQ(t.read(base + "/cgroup.subtree_control"), "+cpu");  // only what was missing
  EXPECT_EQ(t.read(base + "/togo/cgroup.subtree_control"), "+memory +cpu +pids");
  EXPECT_EQ(t.read(leaf + "/memory.max"), "536870912");
  EXPECT_EQ(t.read(leaf + "/cpu.max"), "150000 100000");
  EXPECT_EQ(t.read(leaf + "/pids.max"), "100");
  EXPECT_FALSE(t.exists(leaf + "/memory.swap.max"));  // optional: absent without swap accounting

  ASSERT_TRUE(cg->add(4242));
  EXPECT_EQ(t.read(leaf + "/cgroup.procs"), "4242\n");
  ASSERT_TRUE(cg->remove());
  EXPECT_TRUE(cg->empty());
  EXPECT_FALSE(t.exists(leaf));
  EXPECT_TRUE(t.exists(base + "/togo"));  // shared by every env

  // A second env gets its own directory next to nothing left of the first.
  auto again = create_env_cgroup(*h, "dev", l);
  ASSERT_TRUE(again);
  EXPECT_NE(again->paths()[0], "/" + leaf);
  EXPECT_TRUE(again->remove());
}

TEST(CgroupApply, PureV2WithoutCpuDelegatedRefusesOnlyCpus) {
  if (::geteuid() != 0) GTEST_SKIP() << "the fixture chowns cgroups to uid 1000, which needs root";
  Tree t;
  delegated_user_tree(t, "memory pids");  // systemd's default before cpu was delegated
  auto h = detect_cgroups(t.root(), 1000);
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->memory.usable);
  EXPECT_TRUE(h->pids.usable);
  ASSERT_FALSE(h->cpu.usable);
  EXPECT_PRED2(starts_with_text, h->cpu.missing,
               "cgroup v2 is mounted but cpu is not delegated to uid 1000: systemd's "
               "user@.service Delegate=yes gives it");
  Limits l;
  l.memory = 1 << 30;
  l.cpus = 2;
  auto cg = create_env_cgroup(*h, "dev", l);
  ASSERT_FALSE(cg);
  EXPECT_PRED2(starts_with_text, cg.error().message,
               "cannot apply --cpus: cgroup v2 is mounted but cpu");
  EXPECT_FALSE(t.exists("sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/togo"));
  l.cpus.reset();
  auto ok = create_env_cgroup(*h, "dev", l);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(ok->remove());
}

TEST(CgroupDetect, PureV2NotDelegatedFromALoginSession) {
  Tree t;
  pure_v2_mounts(t, "/user.slice/user-1000.slice/session-3.scope");
  v2_cgroup(t, "/user.slice", "cpu memory pids", "cpu memory pids", "");
  v2_cgroup(t, "/user.slice/user-1000.slice", "cpu memory pids", "cpu memory pids", "");
  v2_cgroup(t, "/user.slice/user-1000.slice/session-3.scope", "cpu memory pids", "", "77\n");
  auto h = detect_cgroups(t.root(), stranger());
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->layout, CgroupLayout::kV2);
  const std::string expected =
      "cgroup v2 is mounted but nothing is delegated to uid " + std::to_string(stranger()) +
      " (its cgroup /user.slice/user-1000.slice/session-3.scope belongs to uid " +
      std::to_string(me()) +
      "): systemd's user@.service Delegate=yes gives it (from a login shell, run togo under "
      "`systemd-run --user --scope`)";
  for (Controller c : kControllers) {
    EXPECT_FALSE(h->support(c).usable);
    EXPECT_EQ(h->support(c).missing, expected);
  }
  Limits l;
  l.memory = 1 << 30;
  l.cpus = 1;
  l.pids = 10;
  auto cg = create_env_cgroup(*h, "dev", l);
  ASSERT_FALSE(cg);
  EXPECT_EQ(cg.error().message, "cannot apply --memory, --cpus and --pids: " + expected);
  EXPECT_EQ(cg.error().hint, "clear the limits with `togo config NAME memory= cpus= pids=`");
}

TEST(CgroupDetect, PureV2WithoutSystemdSaysWhatRootCanDo) {
  Tree t;
  pure_v2_mounts(t, "/");
  t.file("proc/1/comm", "init\n");
  auto h = detect_cgroups(t.root(), stranger());
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->systemd);
  EXPECT_PRED2(has_text, h->memory.missing, "without systemd, root can create a cgroup, chown it");
}

TEST(CgroupDetect, PureV2AsTheOwnerOfTheWholeTree) {
  Tree t;
  pure_v2_mounts(t, "/user.slice/user-0.slice/session-1.scope");
  v2_cgroup(t, "/user.slice", "cpu memory pids", "cpu memory pids", "");
  v2_cgroup(t, "/user.slice/user-0.slice", "cpu memory pids", "cpu memory pids", "");
  v2_cgroup(t, "/user.slice/user-0.slice/session-1.scope", "cpu memory pids", "", "55\n");
  auto h = detect_cgroups(t.root(), me());
  ASSERT_TRUE(h);
  for (Controller c : kControllers) {
    EXPECT_TRUE(h->support(c).usable) << h->support(c).missing;
    EXPECT_EQ(h->support(c).base, "/sys/fs/cgroup");  // the top, not the session
    EXPECT_FALSE(h->support(c).enable);
  }
}

TEST(CgroupDetect, V2RootWithProcessesCannotEnableControllers) {
  // Inside a container with its own cgroup namespace: the top is not the
  // real root (it has cgroup.type) and the container's processes live there.
  Tree t;
  pure_v2_mounts(t, "/");
  t.file("sys/fs/cgroup/cgroup.subtree_control", "");
  t.file("sys/fs/cgroup/cgroup.type", "domain\n");
  auto h = detect_cgroups(t.root(), me());
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->memory.usable);
  EXPECT_PRED2(starts_with_text, h->memory.missing,
               "cgroup v2 controllers cannot be enabled below /sys/fs/cgroup because "
               "processes live in it");
  // The real root is exempt from that rule.
  ::unlink(t.path("sys/fs/cgroup/cgroup.type").c_str());
  h = detect_cgroups(t.root(), me());
  EXPECT_TRUE(h->memory.usable) << h->memory.missing;
  EXPECT_TRUE(h->memory.enable);
}

TEST(CgroupDetect, ReadOnlyCgroupMount) {
  Tree t;
  pure_v2_mounts(t, "/");
  t.file("proc/self/mountinfo",
         std::string(kRootAndProc) +
             "30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n");
  auto h = detect_cgroups(t.root(), me());
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->pids.usable);
  EXPECT_PRED2(has_text, h->pids.missing, "is mounted read-only");
}

TEST(CgroupDetect, RootlessWithoutAKnownCgroup) {
  Tree t;
  pure_v2_mounts(t, "/");
  t.file("proc/self/cgroup", "");
  auto h = detect_cgroups(t.root(), stranger());
  ASSERT_TRUE(h);
  EXPECT_EQ(h->memory.missing,
            "/proc/self/cgroup does not say where this process is in the hierarchy mounted at "
            "/sys/fs/cgroup");
  // Root does not need to know: it uses the top.
  h = detect_cgroups(t.root(), me());
  EXPECT_TRUE(h->memory.usable) << h->memory.missing;
}

TEST(CgroupDetect, OwnCgroupOutsideTheMountedPart) {
  // A bind mount of a sub-tree that does not contain this process.
  Tree t;
  pure_v2_mounts(t, "/elsewhere");
  t.file("proc/self/mountinfo",
         std::string(kRootAndProc) +
             "30 25 0:26 /box /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n");
  auto h = detect_cgroups(t.root(), stranger());
  ASSERT_TRUE(h);
  EXPECT_EQ(h->pids.missing,
            "this process's cgroup (/elsewhere) lies outside the hierarchy mounted at "
            "/sys/fs/cgroup");
}

// --- v1 only -----------------------------------------------------------------

void v1_tree(Tree& t, const std::string& memory_cgroup) {
  t.file("proc/self/mountinfo",
         std::string(kRootAndProc) +
             "31 25 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
             "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
             "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
             "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
             "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n");
  t.file("proc/self/cgroup", "9:name=systemd:/\n8:pids:/\n4:memory:" + memory_cgroup +
                                 "\n2:cpu,cpuacct:/\n");
  t.file("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  t.file("sys/fs/cgroup/cpu,cpuacct/cgroup.procs", "1\n");
  t.file("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  t.file("sys/fs/cgroup/memory/cgroup.procs", "1\n");
  t.file("sys/fs/cgroup/pids/cgroup.procs", "1\n");
  t.dir("sys/fs/cgroup/systemd");
  t.dir("sys/fs/cgroup/memory" + memory_cgroup);
}

TEST(CgroupDetect, V1AsRootUsesTheTopOfEachHierarchy) {
  Tree t;
  v1_tree(t, "/jobs/abc");
  auto h = detect_cgroups(t.root(), me());
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->layout, CgroupLayout::kV1);
  ASSERT_EQ(h->hierarchies.size(), 4u);
  EXPECT_EQ(h->hierarchies[0].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ(h->hierarchies[1].own_cgroup, "/jobs/abc");
  EXPECT_EQ(h->hierarchies[3].controllers, std::vector<std::string>{"name=systemd"});
  EXPECT_FALSE(h->systemd);
  EXPECT_EQ(h->memory.base, "/sys/fs/cgroup/memory");
  EXPECT_EQ(h->cpu.base, "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(h->pids.base, "/sys/fs/cgroup/pids");
  for (Controller c : kControllers) {
    EXPECT_TRUE(h->support(c).usable) << h->support(c).missing;
    EXPECT_EQ(h->support(c).version, 1);
  }
  EXPECT_EQ(describe_layout(*h),
            "v1: v1 (cpu, cpuacct, memory, pids, name=systemd) at /sys/fs/cgroup");
}

TEST(CgroupApply, V1WritesEachControllerInItsHierarchy) {
  Tree t;
  v1_tree(t, "/");
  auto h = detect_cgroups(t.root(), me());
  ASSERT_TRUE(h);
  Limits l;
  l.memory = 256ull << 20;
  l.cpus = 0.5;
  l.pids = 5;
  auto cg = create_env_cgroup(*h, "web", l);
  ASSERT_TRUE(cg) << cg.error().message;
  auto paths = cg->paths();
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(cg->v2_fd(), -1);
  std::string leaf = paths[0].substr(paths[0].find_last_of('/') + 1);
  EXPECT_PRED2(starts_with_text, leaf, "web-");
  const std::string mem = "sys/fs/cgroup/memory/togo/" + leaf;
  const std::string cpu = "sys/fs/cgroup/cpu,cpuacct/togo/" + leaf;
  const std::string pids = "sys/fs/cgroup/pids/togo/" + leaf;
  EXPECT_EQ(paths[0], "/" + mem);
  EXPECT_EQ(paths[1], "/" + cpu);
  EXPECT_EQ(paths[2], "/" + pids);
  EXPECT_EQ(t.read(mem + "/memory.limit_in_bytes"), "268435456");
  EXPECT_EQ(t.read(cpu + "/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(t.read(cpu + "/cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(t.read(pids + "/pids.max"), "5");
  EXPECT_FALSE(t.exists("sys/fs/cgroup/memory/togo/cgroup.subtree_control"));  // v2 only
  ASSERT_TRUE(cg->add(321));
  for (auto& d : {mem, cpu, pids}) EXPECT_EQ(t.read(d + "/cgroup.procs"), "321\n") << d;
  ASSERT_TRUE(cg->remove());
  for (auto& d : {mem, cpu, pids}) EXPECT_FALSE(t.exists(d)) << d;
}

TEST(CgroupApply, OnlyTheHierarchiesThatAreNeeded) {
  Tree t;
  v1_tree(t, "/");
  Limits l;
  l.pids = 50;
  auto cg = create_env_cgroup(*detect_cgroups(t.root(), me()), "x", l);
  ASSERT_TRUE(cg);
  ASSERT_EQ(cg->paths().size(), 1u);
  EXPECT_PRED2(has_text, cg->paths()[0], "/sys/fs/cgroup/pids/togo/x-");
  EXPECT_FALSE(t.exists("sys/fs/cgroup/memory/togo"));
  EXPECT_TRUE(cg->remove());
}

TEST(CgroupApply, BadNamesAreRefused) {
  Tree t;
  v1_tree(t, "/");
  auto h = detect_cgroups(t.root(), me());
  Limits l;
  l.pids = 50;
  for (const char* bad : {"", "../x", "a/b", ".hidden", "a b"}) {
    auto cg = create_env_cgroup(*h, bad, l);
    ASSERT_FALSE(cg) << bad;
    EXPECT_EQ(cg.error().kind, ErrorKind::kUsage);
  }
}

TEST(CgroupDetect, V1RootlessNeedsRoot) {
  Tree t;
  v1_tree(t, "/");
  auto h = detect_cgroups(t.root(), stranger());
  ASSERT_TRUE(h);
  const std::string expected = "cgroup v1 controllers need root: uid " +
                               std::to_string(stranger()) +
                               " cannot write the v1 hierarchies under /sys/fs/cgroup (cgroup v2 "
                               "with systemd's user@.service Delegate=yes gives rootless limits)";
  for (Controller c : kControllers) EXPECT_EQ(h->support(c).missing, expected);
  Limits l;
  l.memory = 1 << 30;
  l.pids = 10;
  auto cg = create_env_cgroup(*h, "dev", l);
  ASSERT_FALSE(cg);
  EXPECT_EQ(cg.error().message, "cannot apply --memory and --pids: " + expected);
}

TEST(CgroupDetect, V1WithoutCfsBandwidth) {
  Tree t;
  v1_tree(t, "/");
  ::unlink(t.path("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us").c_str());
  auto h = detect_cgroups(t.root(), me());
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->cpu.usable);
  EXPECT_PRED2(has_text, h->cpu.missing, "--cpus cannot be enforced (CONFIG_CFS_BANDWIDTH)");
  EXPECT_TRUE(h->memory.usable);
}

// --- hybrid, as on a host with v1 controllers and a hugetlb-only v2 tree ------

void hybrid_tree(Tree& t) {
  t.file("proc/self/mountinfo",
         std::string(kRootAndProc) +
             "31 25 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
             "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
             "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
             "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
             "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
             "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
             "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
  t.file("proc/self/cgroup",
         "9:name=systemd:/\n8:pids:/\n4:memory:/jobs/0123\n2:cpuacct:/\n1:cpu:/\n0::/\n");
  t.file("proc/1/comm", "sh\n");
  t.file("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
  t.file("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  t.dir("sys/fs/cgroup/memory/jobs/0123");
  t.dir("sys/fs/cgroup/pids");
  t.dir("sys/fs/cgroup/cpuacct");
  t.file("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
  t.file("sys/fs/cgroup/unified/cgroup.subtree_control", "");
  t.file("sys/fs/cgroup/unified/cgroup.procs", "1\n2\n");
}

TEST(CgroupDetect, HybridAsRootUsesV1) {
  Tree t;
  hybrid_tree(t);
  auto h = detect_cgroups(t.root(), me());
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->layout, CgroupLayout::kHybrid);
  ASSERT_TRUE(h->v2());
  EXPECT_EQ(h->v2()->controllers, std::vector<std::string>{"hugetlb"});
  EXPECT_EQ(h->v2()->own_cgroup, "/");
  for (Controller c : kControllers) {
    EXPECT_TRUE(h->support(c).usable) << h->support(c).missing;
    EXPECT_EQ(h->support(c).version, 1);
  }
  EXPECT_EQ(h->memory.base, "/sys/fs/cgroup/memory");
  EXPECT_EQ(describe_layout(*h),
            "hybrid: v1 (cpu, cpuacct, memory, pids, name=systemd) at /sys/fs/cgroup, v2 at "
            "/sys/fs/cgroup/unified (hugetlb)");

  Limits l;
  l.memory = 64ull << 20;
  l.pids = 5;
  auto cg = create_env_cgroup(*h, "dev", l);
  ASSERT_TRUE(cg) << cg.error().message;
  ASSERT_EQ(cg->paths().size(), 2u);
  EXPECT_PRED2(has_text, cg->paths()[0], "/sys/fs/cgroup/memory/togo/dev-");
  EXPECT_PRED2(has_text, cg->paths()[1], "/sys/fs/cgroup/pids/togo/dev-");
  EXPECT_FALSE(t.exists("sys/fs/cgroup/unified/togo"));
  EXPECT_TRUE(cg->remove());
}

TEST(CgroupDetect, HybridRootlessExplainsWhy) {
  Tree t;
  hybrid_tree(t);
  auto h = detect_cgroups(t.root(), stranger());
  ASSERT_TRUE(h);
  for (Controller c : kControllers) {
    EXPECT_FALSE(h->support(c).usable);
    EXPECT_PRED2(starts_with_text, h->support(c).missing, "cgroup v1 controllers need root");
  }
  Limits l;
  l.cpus = 1;
  auto cg = create_env_cgroup(*h, "dev", l);
  ASSERT_FALSE(cg);
  EXPECT_PRED2(starts_with_text, cg.error().message,
               "cannot apply --cpus: cgroup v1 controllers need root");
}

TEST(CgroupDetect, HybridWithAControllerNowhere) {
  Tree t;
  hybrid_tree(t);
  std::string mi = t.read("proc/self/mountinfo");
  mi.erase(mi.find("39 31"), mi.find("40 31") - mi.find("39 31"));  // no pids hierarchy
  t.file("proc/self/mountinfo", mi);
  auto h = detect_cgroups(t.root(), me());
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->pids.usable);
  EXPECT_EQ(h->pids.missing,
            "cgroup v2 at /sys/fs/cgroup/unified offers no pids controller and no v1 hierarchy "
            "has it (the kernel lacks it or it is disabled)");
}

}  // namespace
}  // namespace togo::runtime
