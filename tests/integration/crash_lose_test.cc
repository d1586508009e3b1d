// Lose what was not synced: store operations recorded through togo-crashfs,
// then every crash state the recording allows, at every cut (everything not
// yet synced dropped, the last lost write torn, lost operations reordered),
// is built and checked: the store opens, recovery leaves `togo fsck` without
// damage, every operation acknowledged before the crash is there, and what
// a crash left of one that was not acknowledged yet works.
//
// As root and rootless: the recording daemon runs as root and lets the
// unprivileged user in (allow_other), who then owns what it creates.
#include <cstdio>
#include <memory>

#include "crash_fixture.h"
#include "crash_recorder.h"
#include "fixture.h"
#include "registry_fixture.h"

namespace togo::test {
namespace {

class CrashLoseTest : public ::testing::TestWithParam<As> {};

// How many cuts get torn-write and reordered states (each cut has up to 10).
constexpr size_t kTornReorderCuts = 40;

TEST_P(CrashLoseTest, EveryCrashStateKeepsWhatWasAcknowledged) {
  TOGO_REQUIRE_CRASHFS();
  TOGO_REQUIRE_BUSYBOX();
  std::string no_registry = registry_missing_reason();
  if (!no_registry.empty()) GTEST_SKIP() << no_registry;
  std::optional<uid_t> uid;
  if (GetParam() == As::kRootless) uid = unprivileged_uid();
  TempDir dir(uid);
  RunOptions o;
  o.as_uid = uid;
  std::string store = dir.sub("store");
  auto tg = [&](const std::string& st, const std::vector<std::string>& args) { return togo(st, args, o); };

  auto tars = make_busybox_tars(dir.path(), {"mini", "made", "pulled", "old"});
  std::string mini = tars[0], made = tars[1], pulled = tars[2], old = tars[3];
  // `image create debian` runs mmdebstrap from PATH: a script prints made.tar.
  o.env.push_back(fake_mmdebstrap(dir.path(), made));
  // The image to pull, pushed by togo from a store of its own.
  LocalRegistry registry;
  ASSERT_TRUE(registry.ok()) << registry.why();
  std::string ref = registry.host() + "/crash/p:v1";
  ASSERT_EQ(push_image(dir.path(), pulled, ref, o), "");

  // Acknowledged before recording: images a and old, env e1 (which wrote
  // /root/f) and its export, and a nameless image for gc to collect.
  std::string e1_export = dir.sub("e1.togo");
  for (std::vector<std::string> step : std::vector<std::vector<std::string>>{
           {"image", "import", test_rootfs_tar(), "--name", "a"},
           {"image", "import", old, "--name", "old"},
           {"create", "e1", "--image", "a"},
           {"run", "e1", "--", "/bin/sh", "-c", "echo kept > /root/f"},
           {"export", "e1", e1_export},
           {"image", "import", made, "--name", "g"},
           {"create", "eg", "--image", "g"},
           {"image", "rm", "--force", "g"},
           {"rm", "eg"}}) {
    RunResult r = tg(store, step);
    ASSERT_EQ(r.status, 0) << step[0] << " " << describe(r);
  }
  RunResult before = tg(store, {"image", "ls"});
  ASSERT_TRUE(contains("\n" + before.out, "\n<none> ")) << "no garbage for gc: " << describe(before);

  auto rec = crashfs::CrashRecorder::start(store);
  ASSERT_TRUE(rec) << rec.error().message;
  struct Step {
    std::vector<std::string> args;
    const char* mark;
  };
  std::vector<Step> steps = {
      {{"image", "import", mini, "--name", "b"}, "imported"},
      {{"create", "e2", "--image", "b"}, "created"},
      {{"run", "e2", "--", "/bin/sh", "-c", "echo kept > /root/f"}, "written"},
      {{"config", "e2", "hostname=crashy"}, "configured"},
      {{"commit", "e2", "c"}, "committed"},
      {{"import", e1_export, "e3"}, "env-imported"},
      {{"image", "rm", "old"}, "image-removed"},
      {{"gc"}, "collected"},
      {{"image", "create", "debian", "--name", "d"}, "image-created"},
      {{"image", "pull", ref, "--name", "p"}, "pulled"},
      {{"create", "e4", "--image", "p"}, "unpacked"},
      {{"rm", "e1"}, "removed"},
  };
  std::vector<std::string> env = child_environment(o);
  for (auto& s : steps) {
    std::vector<std::string> argv = {togo_bin(), "--store", store};
    argv.insert(argv.end(), s.args.begin(), s.args.end());
    RunOptions w;
    w.env = env;
    RunResult r = run(rec->watched(argv, uid), w);
    ASSERT_EQ(r.status, 0) << s.mark << ": " << describe(r);
    ASSERT_TRUE(rec->mark(s.mark));
  }
  auto recording = rec->finish();
  ASSERT_TRUE(recording) << recording.error().message;
  const crashfs::Log& log = recording->log();
  auto acked = [&](const char* mark, size_t cut) { return cut >= *log.mark(mark); };

  // An env reads back what it wrote; an image makes an env that runs.
  auto reads = [&](const std::string& st, const std::string& env_name) {
    RunResult r = tg(st, {"run", env_name, "--", "/bin/cat", "/root/f"});
    return r.out == "kept\n" ? "" : env_name + " lost /root/f: " + describe(r);
  };
  auto runs = [&](const std::string& st, const std::string& image, const std::string& file) {
    std::string probe = "probe-" + image;
    RunResult c = tg(st, {"create", probe, "--image", image});
    if (c.status != 0) return "create from " + image + ": " + describe(c);
    RunResult r = tg(st, {"run", probe, "--", "/bin/cat", file});
    tg(st, {"rm", probe});
    return r.status == 0 ? "" : "run on " + image + ": " + describe(r);
  };

  // Every cut with unsynced work dropped; torn writes and reordered losses
  // (many states per cut) at the cuts next to barriers and marks.
  constexpr crashfs::Mode kDrop[] = {crashfs::Mode::kDropUnsynced};
  constexpr crashfs::Mode kTornReorder[] = {crashfs::Mode::kTornLastWrite, crashfs::Mode::kReorder};
  auto states = recording->states(kDrop);
  size_t every_cut = states.size();
  for (auto& s : recording->states(kTornReorder, {}, kTornReorderCuts)) states.push_back(std::move(s));
  int tried = 0, failures = 0, without_b = 0, torn = 0, reordered = 0;
  for (const auto& s : states) {
    TempDir d(uid);
    std::string st = d.sub("store");
    auto m = recording->materialize(s, st);
    ASSERT_TRUE(m) << s.describe(log) << ": " << m.error().message;
    tried++;
    torn += s.mode == crashfs::Mode::kTornLastWrite;
    reordered += s.mode == crashfs::Mode::kReorder;
    std::string where = s.describe(log);
    std::string bad;
    auto check = [&](bool cond, const std::string& what) {
      if (bad.empty() && cond) bad = what;
    };
    auto check_str = [&](const std::string& what) { check(!what.empty(), what); };
    RunResult f = tg(st, {"fsck"});
    check(f.status != 0, "fsck: " + describe(f));
    RunResult image_ls = tg(st, {"image", "ls"}), ls = tg(st, {"ls"});
    check(image_ls.status != 0, "image ls: " + describe(image_ls));
    check(ls.status != 0, "ls: " + describe(ls));
    std::string images = "\n" + image_ls.out, envs = "\n" + ls.out;
    auto has_image = [&](const std::string& n) { return contains(images, "\n" + n + " "); };
    auto has_env = [&](const std::string& n) { return contains(envs, "\n" + n + " "); };
    without_b += !has_image("b");
    // Acknowledged: there, and whole.
    check(!has_image("a"), "image a is gone");
    check(acked("imported", s.cut) && !has_image("b"), "image b is gone");
    check(acked("created", s.cut) && !has_env("e2"), "env e2 is gone");
    if (bad.empty() && acked("written", s.cut)) check_str(reads(st, "e2"));
    check(acked("configured", s.cut) && !contains(tg(st, {"config", "e2"}).out, "crashy"),
          "e2 lost its hostname");
    check(acked("committed", s.cut) && !has_image("c"), "image c is gone");
    check(acked("env-imported", s.cut) && !has_env("e3"), "env e3 is gone");
    check(acked("image-removed", s.cut) && has_image("old"), "image old is back");
    check(acked("collected", s.cut) && contains(images, "\n<none> "), "gc's garbage is back");
    check(acked("image-created", s.cut) && !has_image("d"), "image d is gone");
    check(acked("pulled", s.cut) && !has_image("p"), "image p is gone");
    check(acked("unpacked", s.cut) && !has_env("e4"), "env e4 is gone");
    check(acked("removed", s.cut) && has_env("e1"), "env e1 is back");
    // There, acknowledged or not: it works.
    if (bad.empty() && has_env("e1")) check_str(reads(st, "e1"));
    if (bad.empty() && has_env("e2")) {
      RunResult r = tg(st, {"run", "e2", "--", "/bin/true"});
      check(r.status != 0, "e2 is listed but does not run: " + describe(r));
    }
    if (bad.empty() && has_env("e3")) check_str(reads(st, "e3"));
    if (bad.empty() && has_image("c")) check_str(runs(st, "c", "/root/f"));
    if (bad.empty() && has_image("d")) check_str(runs(st, "d", "/etc/made"));
    if (bad.empty() && has_image("p")) check_str(runs(st, "p", "/etc/pulled"));
    if (bad.empty() && has_env("e4")) {
      RunResult r = tg(st, {"run", "e4", "--", "/bin/cat", "/etc/pulled"});
      check(r.out != "pulled\n", "e4 is listed but does not run: " + describe(r));
    }
    if (bad.empty()) {
      RunResult again = tg(st, {"fsck"});
      // Only a pull cut short may leave a download for the next one to resume.
      bool pulling = acked("image-created", s.cut) && !acked("pulled", s.cut);
      check(!fsck_whole(again, pulling), "not clean after recovery: " + describe(again));
    }
    EXPECT_EQ(bad, "") << where;
    failures += !bad.empty();
  }
  // The states are real crashes: some lost the import, some tore or reordered.
  EXPECT_GT(without_b, 0);
  EXPECT_GT(torn, 0);
  EXPECT_GT(reordered, 0);
  std::printf("crash states (%s): %zu operations recorded, %zu states of unsynced work dropped "
              "(every cut), %d states in all, %d failures\n",
              as_name(GetParam()).c_str(), log.ops.size(), every_cut, tried, failures);
}

INSTANTIATE_TEST_SUITE_P(, CrashLoseTest, ::testing::Values(As::kRoot, As::kRootless),
                         [](const ::testing::TestParamInfo<As>& i) { return as_name(i.param); });

}  // namespace
}  // namespace togo::test
