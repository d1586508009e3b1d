// Kill at every step: each operation that changes the store is killed with
// SIGKILL before each of its file-changing system calls in turn (by
// togo-kill-at), every one of them, and then the store must open, the
// automatic recovery must leave `togo fsck` clean, everything acknowledged
// before must be intact, and the operation must be either complete or
// absent. Calls are counted across all of an operation's processes: its
// threads, `image create`'s mmdebstrap, the env's init and command.
#include <algorithm>
#include <cstdio>
#include <tuple>
#include <functional>

#include "crash_fixture.h"
#include "fixture.h"
#include "registry_fixture.h"

#ifndef TOGO_KILL_AT
#error "TOGO_KILL_AT must be defined to the path of togo-kill-at"
#endif

namespace togo::test {
namespace {

struct Op {
  const char* name;
  std::vector<std::string> args;  // "{mini2}", "{export}", "{out}", "{ref}" are replaced
  // True if the op's effect is there (then it must be whole).
  std::function<bool(const std::function<RunResult(std::vector<std::string>)>&)> complete;
  // Checks that a complete op's result works; returns what is wrong, or "".
  std::function<std::string(const std::function<RunResult(std::vector<std::string>)>&)> usable;
  bool removes_e1 = false;
  bool writes_out = false;  // absent must mean no output file at all
  bool registry = false;    // needs the local registry holding {ref}
};

bool listed(const RunResult& r, const std::string& name) {
  return r.status == 0 && contains("\n" + r.out, "\n" + name + " ");
}

// Listed without `name`: a listing that fails is not "gone".
bool unlisted(const RunResult& r, const std::string& name) {
  return r.status == 0 && !listed(r, name);
}

std::string reads_kept(const std::function<RunResult(std::vector<std::string>)>& tg,
                       const std::string& env) {
  RunResult r = tg({"run", env, "--", "/bin/cat", "/root/f"});
  return r.status == 0 && r.out == "kept\n" ? "" : env + " lost /root/f: " + describe(r);
}

std::string runs(const std::function<RunResult(std::vector<std::string>)>& tg,
                 const std::string& image) {
  RunResult c = tg({"create", "probe-" + std::to_string(::getpid()), "--image", image});
  if (c.status != 0) return "create from " + image + ": " + describe(c);
  RunResult r = tg({"run", "probe-" + std::to_string(::getpid()), "--", "/bin/cat", "/etc/passwd"});
  return r.status == 0 && contains(r.out, "root:") ? "" : "run on " + image + ": " + describe(r);
}

const std::vector<Op>& ops() {
  using Tg = std::function<RunResult(std::vector<std::string>)>;
  static const std::vector<Op> table = {
      {"ImageImport", {"image", "import", "{mini2}", "--name", "b"},
       [](const Tg& tg) { return listed(tg({"image", "ls"}), "b"); },
       [](const Tg& tg) { return runs(tg, "b"); }},
      {"Create", {"create", "e2", "--image", "a"},
       [](const Tg& tg) { return listed(tg({"ls"}), "e2"); },
       [](const Tg& tg) {
         RunResult r = tg({"run", "e2", "--", "/bin/true"});
         return r.status == 0 ? "" : "run e2: " + describe(r);
       }},
      {"Remove", {"rm", "e1"},
       [](const Tg& tg) { return unlisted(tg({"ls"}), "e1"); },
       [](const Tg&) { return std::string(); }, true},
      {"Config", {"config", "e1", "hostname=crashy"},
       [](const Tg& tg) { return contains(tg({"config", "e1"}).out, "crashy"); },
       [](const Tg& tg) {
         RunResult r = tg({"run", "e1", "--", "/bin/cat", "/proc/sys/kernel/hostname"});
         return r.out == "crashy\n" ? "" : "hostname: " + describe(r);
       }},
      {"ImageRemove", {"image", "rm", "old"},
       [](const Tg& tg) { return unlisted(tg({"image", "ls"}), "old"); },
       [](const Tg&) { return std::string(); }},
      {"Commit", {"commit", "e1", "c"},
       [](const Tg& tg) { return listed(tg({"image", "ls"}), "c"); },
       [](const Tg& tg) {
         RunResult c = tg({"create", "fromc", "--image", "c"});
         return c.status != 0 ? "create from c: " + describe(c) : reads_kept(tg, "fromc");
       }},
      {"EnvImport", {"import", "{export}", "e3"},
       [](const Tg& tg) { return listed(tg({"ls"}), "e3"); },
       [](const Tg& tg) { return reads_kept(tg, "e3"); }},
      {"Export", {"export", "e1", "{out}"},
       [](const Tg& tg) { return tg({"import", "{out}", "probe-import"}).status == 0; },
       [](const Tg& tg) {
         RunResult r = tg({"import", "{out}", "probe-usable"});
         return r.status != 0 ? "import: " + describe(r) : reads_kept(tg, "probe-usable");
       },
       false, true},
      {"ImagePull", {"image", "pull", "{ref}", "--name", "b"},
       [](const Tg& tg) { return listed(tg({"image", "ls"}), "b"); },
       [](const Tg& tg) { return runs(tg, "b"); },
       false, false, true},
      // The first create from a pulled image unpacks its layers.
      {"CreatePulled", {"create", "e2", "--image", "p"},
       [](const Tg& tg) { return listed(tg({"ls"}), "e2"); },
       [](const Tg& tg) {
         RunResult r = tg({"run", "e2", "--", "/bin/cat", "/etc/pulled"});
         return r.status == 0 ? "" : "run e2: " + describe(r);
       },
       false, false, true},
      // mmdebstrap is played by a script that prints mini2.tar.
      {"ImageCreate", {"image", "create", "debian", "--name", "b"},
       [](const Tg& tg) { return listed(tg({"image", "ls"}), "b"); },
       [](const Tg& tg) { return runs(tg, "b"); }},
      // What the env writes is acknowledged when `togo run` exits; a run
      // killed earlier may have written it or not, and the env must work.
      {"Run", {"run", "e1", "--", "/bin/sh", "-c", "echo ran > /root/g.tmp && mv /root/g.tmp /root/g"},
       [](const Tg& tg) { return tg({"run", "e1", "--", "/bin/cat", "/root/g"}).out == "ran\n"; },
       [](const Tg& tg) {
         RunResult r = tg({"ps"});
         return r.status == 0 && !contains(r.out, "e1") ? "" : "e1 still running: " + describe(r);
       }},
      {"Gc", {"gc"},
       // The nameless image the template left is what gc removes.
       [](const Tg& tg) { return unlisted(tg({"image", "ls"}), "<none>"); },
       [](const Tg&) { return std::string(); }},
  };
  return table;
}

class CrashKillTest : public ::testing::TestWithParam<std::tuple<As, int>> {};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

TEST_P(CrashKillTest, EveryStepLeavesTheStoreWholeAndTheOpCompleteOrAbsent) {
  As as = std::get<0>(GetParam());
  const Op& op = ops()[static_cast<size_t>(std::get<1>(GetParam()))];
  if (as == As::kRoot && !running_as_root()) GTEST_SKIP() << "needs root";
  TOGO_REQUIRE_BUSYBOX();
  std::optional<uid_t> uid;
  if (as == As::kRootless && running_as_root()) uid = unprivileged_uid();
  TempDir dir(uid);
  RunOptions o;
  o.as_uid = uid;
  std::string tmpl = dir.sub("template"), work = dir.sub("work");
  auto tg_at = [&](const std::string& store) {
    return [&, store](std::vector<std::string> args) { return togo(store, args, o); };
  };

  // The acknowledged state: images a (used by e1, which wrote /root/f) and
  // old; a nameless image gc can collect; an export of e1.
  auto tars = make_busybox_tars(dir.path(), {"mini", "two", "three", "pulled"});
  std::string mini = tars[0], mini2 = tars[1], mini3 = tars[2], pulled = tars[3];
  auto t = tg_at(tmpl);
  for (std::vector<std::string> step : std::vector<std::vector<std::string>>{
           {"image", "import", mini, "--name", "a"},
           {"image", "import", mini3, "--name", "old"},
           {"create", "e1", "--image", "a"},
           {"run", "e1", "--", "/bin/sh", "-c", "echo kept > /root/f"},
           {"image", "import", mini2, "--name", "g"},
           {"create", "eg", "--image", "g"},
           {"image", "rm", "--force", "g"},
           {"rm", "eg"},
           {"export", "e1", dir.sub("e1.togo")}}) {
    RunResult r = t(step);
    ASSERT_EQ(r.status, 0) << step[0] << " " << describe(r);
  }
  // The image to pull, with layers the store does not have, pushed by togo
  // from a store of its own; CreatePulled starts with it pulled (packed).
  std::unique_ptr<LocalRegistry> registry;
  std::string ref;
  if (op.registry) {
    std::string why = registry_missing_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    registry = std::make_unique<LocalRegistry>();
    ASSERT_TRUE(registry->ok()) << registry->why();
    ref = registry->host() + "/crash/pulled:v1";
    ASSERT_EQ(push_image(dir.path(), pulled, ref, o), "");
    if (std::string(op.name) == "CreatePulled") {
      RunResult r = t({"image", "pull", ref, "--name", "p"});
      ASSERT_EQ(r.status, 0) << describe(r);
    }
  }
  // `image create debian` runs mmdebstrap from PATH: here a script that
  // prints mini2.tar.
  o.env.push_back(fake_mmdebstrap(dir.path(), mini2));

  std::vector<std::string> args;
  auto expand = [&](const std::string& a) {
    return replace_all(replace_all(replace_all(replace_all(a, "{mini2}", mini2), "{export}", dir.sub("e1.togo")),
                                   "{out}", dir.sub("out.togo")),
                       "{ref}", ref);
  };
  for (auto& a : op.args) args.push_back(expand(a));

  auto fresh = [&] {
    run({"rm", "-f", dir.sub("out.togo")});
    RunResult rm = run({"rm", "-rf", work});
    RunResult cp = run({"cp", "-a", tmpl, work});
    return rm.status == 0 && cp.status == 0;
  };
  auto killed_at = [&](int n) {
    std::vector<std::string> argv = {TOGO_KILL_AT, std::to_string(n), togo_bin(), "--store", work};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, o);
  };
  // The work store, with the same placeholders as the op's arguments.
  std::function<RunResult(std::vector<std::string>)> tg = [&](std::vector<std::string> a) {
    for (auto& x : a) x = expand(x);
    return togo(work, a, o);
  };
  // The op's checks can tell: not complete before it, complete and usable
  // after it ran uninterrupted (else every point would pass as one or the other).
  ASSERT_TRUE(fresh());
  ASSERT_FALSE(op.complete(tg)) << op.name << " is complete before it ran";
  ASSERT_TRUE(fresh());
  RunResult count = killed_at(0);
  ASSERT_EQ(count.status, 0) << describe(count);
  int total = 0;
  ASSERT_EQ(std::sscanf(count.err.substr(count.err.rfind("togo-kill-at: ")).c_str(),
                        "togo-kill-at: %d mutating calls", &total), 1) << count.err;
  ASSERT_GT(total, 0) << count.err;
  ASSERT_TRUE(op.complete(tg)) << op.name << " is not complete after it ran";
  ASSERT_EQ(op.usable(tg), "") << op.name << " after it ran";

  int tried = 0, failures = 0, complete = 0;
  bool ran_through = false;
  // Until the op runs to its end before the point: threads and the env's
  // processes can make the count differ a little from run to run.
  for (int n = 1; n <= 2 * total + 10; n++) {
    ASSERT_TRUE(fresh());
    RunResult k = killed_at(n);
    if (k.status == 0 && n > total / 2) {
      ran_through = true;
      break;
    }
    ASSERT_EQ(k.status, 137) << "point " << n << " of " << total << ": " << describe(k);
    tried++;
    size_t before = k.err.find("before");
    ASSERT_NE(before, std::string::npos) << describe(k);
    std::string where = std::string(op.name) + " killed " + k.err.substr(before);
    while (!where.empty() && where.back() == '\n') where.pop_back();
    // The store opens and is whole once a writer has recovered it. A pull's
    // partial download stays, for the next pull to resume.
    RunResult f = tg({"fsck"});
    bool ok = fsck_whole(f, std::string(op.name) == "ImagePull");
    EXPECT_TRUE(ok) << where << ": fsck after recovery: " << describe(f);
    // Acknowledged state is intact.
    bool done = op.complete(tg);
    complete += done;
    std::string lost;
    if (!(op.removes_e1 && done)) lost = reads_kept(tg, "e1");
    if (lost.empty()) lost = listed(tg({"image", "ls"}), "a") ? "" : "image a is gone";
    if (lost.empty() && done) lost = op.usable(tg);
    EXPECT_EQ(lost, "") << where;
    // Absent means it can be done again from scratch.
    if (!done) {
      if (op.writes_out) {
        EXPECT_FALSE(exists(dir.sub("out.togo"))) << where << ": a partial output file";
      }
      RunResult again = tg(args);
      EXPECT_EQ(again.status, 0) << where << ": doing it again: " << describe(again);
      if (again.status == 0) {
        EXPECT_EQ(op.usable(tg), "") << where << ": after doing it again";
      }
    }
    failures += !ok || !lost.empty();
  }
  EXPECT_TRUE(ran_through) << "killed at every point up to " << 2 * total + 10 << " of " << total;
  std::printf("crash points: %s (%s): %d mutating calls, %d tried, %d complete, %d failures\n",
              op.name, as_name(as).c_str(), total, tried, complete, failures);
}

INSTANTIATE_TEST_SUITE_P(, CrashKillTest,
                         ::testing::Combine(::testing::Values(As::kRoot, As::kRootless),
                                            ::testing::Range(0, static_cast<int>(ops().size()))),
                         [](const ::testing::TestParamInfo<std::tuple<As, int>>& i) {
                           return std::string(ops()[static_cast<size_t>(std::get<1>(i.param))].name) +
                                  "_" + as_name(std::get<0>(i.param));
                         });

}  // namespace
}  // namespace togo::test
