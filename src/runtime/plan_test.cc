#include "runtime/plan.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/sysmacros.h>

#include "runtime/masks.h"

namespace togo::runtime {
namespace {

RunSpec spec(bool rootless) {
  RunSpec s;
  s.store = "/media/stick/togo-store";
  s.hostname = "dev";
  s.layers = {"layers/aa/root", "layers/bb/root"};
  s.upper = "envs/x/upper";
  s.work = "envs/x/work";
  s.mount = "envs/x/mount";
  s.rootless = rootless;
  s.resolv_conf = "envs/x/run/resolv.conf";
  return s;
}

const Step* find(const Plan& p, StepKind kind, const std::string& a) {
  for (auto& s : p.steps)
    if (s.kind == kind && s.a == a) return &s;
  return nullptr;
}

// user.* xattrs as root too, so a store reads the same for root and users.
TEST(Plan, OverlayListsTheTopLayerFirstAndAlwaysUsesUserXattrs) {
  for (bool rootless : {false, true})
    EXPECT_EQ(overlay_options(spec(rootless)),
              "lowerdir=layers/bb/root:layers/aa/root,upperdir=envs/x/upper,workdir=envs/x/work"
              ",userxattr");
}

TEST(Plan, RootlessAddsAUserNamespace) {
  EXPECT_TRUE(build_plan(spec(true)).clone_flags & CLONE_NEWUSER);
  Plan root = build_plan(spec(false));
  EXPECT_FALSE(root.clone_flags & CLONE_NEWUSER);
  for (int ns : {CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, CLONE_NEWIPC})
    EXPECT_TRUE(root.clone_flags & ns);
}

TEST(Plan, MountsTheRootThenTheKernelFilesystemsThenPivots) {
  Plan p = build_plan(spec(false));
  ASSERT_GE(p.steps.size(), 5u);
  EXPECT_EQ(p.steps[0].kind, StepKind::kMakePrivate);
  EXPECT_EQ(p.steps[1].kind, StepKind::kHostname);
  EXPECT_EQ(p.steps[1].a, "dev");
  EXPECT_EQ(p.steps[2].kind, StepKind::kMountOverlay);
  EXPECT_EQ(p.steps.back().kind, StepKind::kPivotRoot);
  ASSERT_TRUE(find(p, StepKind::kMountFs, "proc"));
  ASSERT_TRUE(find(p, StepKind::kMountFs, "tmp"));
  // Root makes the device nodes; rootless binds the host's.
  Plan rootless = build_plan(spec(true));
  for (const char* dev : {"dev/null", "dev/zero", "dev/full", "dev/random", "dev/urandom", "dev/tty"}) {
    EXPECT_TRUE(find(p, StepKind::kDevice, dev)) << dev;
    EXPECT_TRUE(find(rootless, StepKind::kBind, dev)) << dev;
  }
  EXPECT_EQ(find(p, StepKind::kDevice, "dev/null")->dev, makedev(1, 3));
  EXPECT_EQ(find(p, StepKind::kDevice, "dev/tty")->dev, makedev(5, 0));
  EXPECT_TRUE(find(p, StepKind::kMountFs, "dev/pts"));
  EXPECT_TRUE(find(p, StepKind::kMountFs, "dev/shm"));
  EXPECT_TRUE(find(p, StepKind::kSymlink, "dev/ptmx"));
  const Step* sys = find(p, StepKind::kBind, "sys");
  ASSERT_TRUE(sys);
  EXPECT_TRUE(sys->readonly && sys->recursive);
  const Step* resolv = find(p, StepKind::kBind, "etc/resolv.conf");
  ASSERT_TRUE(resolv);
  EXPECT_TRUE(resolv->readonly);
  EXPECT_EQ(resolv->parent, "etc");
  EXPECT_EQ(resolv->base, "resolv.conf");
}

TEST(Plan, MaskedDirectoriesShareOneReadOnlyTmpfs) {
  Plan p = build_plan(spec(false));
  const Step* fw = find(p, StepKind::kMaskDir, "sys/firmware");
  ASSERT_TRUE(fw);
  EXPECT_TRUE(fw->optional) << "a directory this kernel lacks is skipped";
  EXPECT_TRUE(fw->flags & MS_RDONLY);
  EXPECT_EQ(fw->c, kMaskTmpfsData);
  EXPECT_TRUE(find(p, StepKind::kMaskDir, "proc/acpi"));
  EXPECT_EQ(describe(*fw), "masking /sys/firmware");
  RunSpec priv = spec(false);
  priv.privileged = true;
  EXPECT_FALSE(find(build_plan(priv), StepKind::kMaskDir, "sys/firmware"));
}

TEST(Plan, DevptsHasNoGidRootless) {
  EXPECT_EQ(find(build_plan(spec(true)), StepKind::kMountFs, "dev/pts")->c.find("gid="),
            std::string::npos);
  EXPECT_NE(find(build_plan(spec(false)), StepKind::kMountFs, "dev/pts")->c.find("gid=5"),
            std::string::npos);
}

TEST(Plan, ACopyIsBoundInsteadOfOverlay) {
  RunSpec s = spec(false);
  s.rootfs = "envs/x/rootfs";
  Plan p = build_plan(s);
  EXPECT_FALSE(find(p, StepKind::kMountOverlay, "envs/x/mount"));
  EXPECT_TRUE(find(p, StepKind::kBindSelf, "envs/x/rootfs"));
  EXPECT_TRUE(find(p, StepKind::kOpenRoot, "envs/x/rootfs"));
}

TEST(Plan, SharesAreRecursiveBindsResolvedInTheRoot) {
  RunSpec s = spec(true);
  s.shares = {{"/home/me/src", "/src/app", true, true}, {"/etc/hosts", "/opt/hosts", false, false}};
  Plan p = build_plan(s);
  const Step* src = find(p, StepKind::kBind, "src/app");
  ASSERT_TRUE(src);
  EXPECT_EQ(src->b, "/home/me/src");
  EXPECT_TRUE(src->readonly && src->recursive);
  EXPECT_EQ(src->create, Create::kDir);
  EXPECT_EQ(src->parent, "src");
  const Step* file = find(p, StepKind::kBind, "opt/hosts");
  ASSERT_TRUE(file);
  EXPECT_FALSE(file->readonly);
  EXPECT_EQ(file->create, Create::kFile);
  // Before the root changes.
  EXPECT_LT(src - p.steps.data(), static_cast<long>(p.steps.size()) - 1);
}

TEST(Plan, StepsDescribeThemselves) {
  Plan p = build_plan(spec(false));
  EXPECT_EQ(describe(*find(p, StepKind::kMountFs, "proc")), "mounting proc on /proc");
  EXPECT_EQ(describe(*find(p, StepKind::kDevice, "dev/null")), "making device /dev/null");
  EXPECT_EQ(describe(*find(build_plan(spec(true)), StepKind::kBind, "dev/null")),
            "bind-mounting /dev/null on /dev/null");
}

}  // namespace
}  // namespace togo::runtime
