#include "runtime/idmap.h"

#include <gtest/gtest.h>

#include "runtime/idmap_plan.h"

namespace togo::runtime {
namespace {

using Map = std::vector<IdMapping>;
using Ranges = std::vector<IdRange>;

TEST(Subids, ParsesNameAndUidOwners) {
  const char* text =
      "# subordinate ids\n"
      "\n"
      "me:100000:65536\n"
      "mel:300000:65536\n"  // a longer name is someone else
      "1000:400000:1000\n"  // the uid form
      "other:500000:65536\n"
      "me:600000:10\n";
  EXPECT_EQ(parse_subids(text, "me", 1000),
            (Ranges{{100000, 65536}, {400000, 1000}, {600000, 10}}));
  EXPECT_EQ(parse_subids(text, "", 1000), (Ranges{{400000, 1000}}));  // name unknown
  EXPECT_EQ(parse_subids(text, "me", 1001), (Ranges{{100000, 65536}, {600000, 10}}));
  EXPECT_TRUE(parse_subids(text, "nobody", 65534).empty());
  EXPECT_TRUE(parse_subids("", "me", 1000).empty());
}

TEST(Subids, SkipsWhatShadowWouldReadDifferently) {
  const char* text =
      "me:100000\n"
      "me:100000:65536:extra\n"
      "me:abc:10\n"
      "me:100000:0\n"
      "me: 100000:65536\n"
      "me:100000:65536 \n"
      "me:100000:65536\r\n"
      "me:+100000:65536\n"
      "me:0100000:65536\n"  // shadow reads a leading zero as octal
      "me:0x186a0:65536\n"
      "me:4294967295:2\n"  // runs past 2^32
      "me:4294967296:1\n"
      ":100000:65536\n"
      " me:100000:65536\n"
      "#me:100000:65536\n"
      "me:4294967295:1\n"  // well-formed; normalize drops it (it is (uid_t)-1)
      "me:0:1";            // well-formed, no final newline
  EXPECT_EQ(parse_subids(text, "me", 1000), (Ranges{{4294967295u, 1}, {0, 1}}));
  EXPECT_EQ(normalize_ranges(parse_subids(text, "me", 1000), 1000), (Ranges{{0, 1}}));
}

TEST(Subids, NormalizeMergesSortsAndCutsOwnId) {
  // Unsorted, overlapping and adjacent ranges become disjoint and sorted.
  EXPECT_EQ(normalize_ranges({{200000, 10}, {100000, 65536}, {150000, 65536}, {215536, 5}}, 1000),
            (Ranges{{100000, 115541}}));
  EXPECT_EQ(normalize_ranges({{100000, 10}, {100010, 10}}, 1000), (Ranges{{100000, 20}}));
  EXPECT_EQ(normalize_ranges({{100000, 10}, {100000, 10}}, 1000), (Ranges{{100000, 10}}));
  EXPECT_EQ(normalize_ranges({{100000, 10}, {100002, 3}}, 1000), (Ranges{{100000, 10}}));
  // The caller's own id inside a range (a careless grant) is cut out.
  EXPECT_EQ(normalize_ranges({{0, 65536}}, 1000), (Ranges{{0, 1000}, {1001, 64535}}));
  EXPECT_EQ(normalize_ranges({{1000, 10}}, 1000), (Ranges{{1001, 9}}));
  EXPECT_EQ(normalize_ranges({{990, 11}}, 1000), (Ranges{{990, 10}}));
  EXPECT_EQ(normalize_ranges({{1000, 1}}, 1000), Ranges{});
  // Nothing reaches (uid_t)-1.
  EXPECT_EQ(normalize_ranges({{4294967200u, 96}}, 1000), (Ranges{{4294967200u, 95}}));
  EXPECT_EQ(count_ids({{1, 2}, {10, 4294967295u}}), 4294967297ull);
}

TEST(RootlessMap, NoRangesMapsOnlyTheCaller) {
  EXPECT_EQ(rootless_map(1000, {}, false), (Map{{0, 1000, 1}}));
  EXPECT_EQ(rootless_map(1000, {}, true), (Map{{1000, 1000, 1}}));
  EXPECT_TRUE(is_single_own(rootless_map(1000, {}, false), 1000));
  EXPECT_TRUE(is_single_own(rootless_map(1000, {}, true), 1000));
  EXPECT_FALSE(is_single_own(rootless_map(1000, {}, true), 1001));
  // Ranges that reduce to nothing are no ranges.
  EXPECT_EQ(rootless_map(1000, {{1000, 1}}, false), (Map{{0, 1000, 1}}));
}

TEST(RootlessMap, RootInsideIsTheCallerThenSubordinateIds) {
  Map m = rootless_map(1000, {{100000, 65536}}, false);
  EXPECT_EQ(m, (Map{{0, 1000, 1}, {1, 100000, 65536}}));
  EXPECT_TRUE(valid_map(m));
  EXPECT_FALSE(is_single_own(m, 1000));
  EXPECT_EQ(to_outside(m, 0), 1000u);
  EXPECT_EQ(to_outside(m, 42), 100041u);     // _apt
  EXPECT_EQ(to_outside(m, 65534), 165533u);  // nobody
  EXPECT_EQ(to_outside(m, 65536), 165535u);
  EXPECT_FALSE(to_outside(m, 65537));
  EXPECT_EQ(to_inside(m, 100041), 42u);
  EXPECT_FALSE(to_inside(m, 0));  // host root shows as nobody

  // Several ranges follow each other in order.
  EXPECT_EQ(rootless_map(1000, {{300000, 10}, {100000, 5}}, false),
            (Map{{0, 1000, 1}, {1, 100000, 5}, {6, 300000, 10}}));
}

TEST(RootlessMap, KeepIdKeepsTheCallersId) {
  Map m = rootless_map(1000, {{100000, 65536}}, true);
  EXPECT_EQ(m, (Map{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64536}}));
  EXPECT_TRUE(valid_map(m));
  EXPECT_EQ(to_outside(m, 0), 100000u);  // root inside is a subordinate id
  EXPECT_EQ(to_outside(m, 999), 100999u);
  EXPECT_EQ(to_outside(m, 1000), 1000u);
  EXPECT_EQ(to_outside(m, 1001), 101000u);
  EXPECT_EQ(to_outside(m, 65534), 165533u);
  EXPECT_EQ(to_outside(m, 65536), 165535u);
  EXPECT_FALSE(to_outside(m, 65537));

  // The ids below the caller's span several ranges.
  EXPECT_EQ(rootless_map(1000, {{100000, 500}, {200000, 65536}}, true),
            (Map{{0, 100000, 500}, {500, 200000, 500}, {1000, 1000, 1}, {1001, 200500, 65036}}));
  // A range ending exactly below the caller's id.
  EXPECT_EQ(rootless_map(1000, {{100000, 1000}, {300000, 5}}, true),
            (Map{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 300000, 5}}));
}

TEST(RootlessMap, LargeUids) {
  // A directory-service uid far above the subordinate count: a gap below it.
  const uint32_t uid = 1234567890;
  Map keep = rootless_map(uid, {{100000, 65536}}, true);
  EXPECT_EQ(keep, (Map{{0, 100000, 65536}, {uid, uid, 1}}));
  EXPECT_TRUE(valid_map(keep));
  EXPECT_FALSE(to_outside(keep, 65536));
  EXPECT_EQ(rootless_map(uid, {{100000, 65536}}, false), (Map{{0, uid, 1}, {1, 100000, 65536}}));

  // The highest valid id.
  const uint32_t top = 4294967294u;
  Map t = rootless_map(top, {{100000, 65536}}, true);
  EXPECT_EQ(t, (Map{{0, 100000, 65536}, {top, top, 1}}));
  EXPECT_TRUE(valid_map(t));
}

TEST(RootlessMap, HugeRangesStopBeforeTheLastId) {
  // "me:1:4294967294" style grants: inside ids stop at 4294967294.
  Map m = rootless_map(1000, {{1, 4294967294u}}, false);
  EXPECT_TRUE(valid_map(m)) << map_text(m);
  EXPECT_EQ(m.front(), (IdMapping{0, 1000, 1}));
  EXPECT_EQ(to_outside(m, 1), 1u);
  EXPECT_EQ(to_outside(m, 1000), 1001u);  // the caller's id is skipped outside
  EXPECT_FALSE(to_outside(m, kNoId));
  Map k = rootless_map(1000, {{1, 4294967294u}}, true);
  EXPECT_TRUE(valid_map(k)) << map_text(k);
  EXPECT_EQ(to_outside(k, 1000), 1000u);
  EXPECT_EQ(to_outside(k, 0), 1u);
  EXPECT_EQ(to_outside(k, 4294967293u), 4294967294u);  // the last id, one below outside
  EXPECT_FALSE(to_outside(k, 4294967294u));
}

TEST(RootlessMap, ManyRangesFitOneKernelWrite) {
  Ranges many;
  for (uint32_t i = 0; i < 1000; i++) many.push_back({4000000000u + i * 10, 5});
  for (bool keep : {false, true}) {
    Map m = rootless_map(3999999999u, many, keep);
    EXPECT_LE(m.size(), kMaxMapLines);
    EXPECT_LE(map_text(m).size(), kMaxMapText);
    EXPECT_TRUE(valid_map(m));
    EXPECT_TRUE(to_outside(m, keep ? 3999999999u : 0));
  }
}

TEST(RootlessMap, RootCallerAndOverlappingRanges) {
  EXPECT_EQ(rootless_map(0, {{100000, 10}}, false), (Map{{0, 0, 1}, {1, 100000, 10}}));
  EXPECT_EQ(rootless_map(0, {{100000, 10}}, true), (Map{{0, 0, 1}, {1, 100000, 10}}));
  EXPECT_EQ(rootless_map(1000, {{100000, 65536}, {100000, 65536}, {165000, 1000}}, false),
            (Map{{0, 1000, 1}, {1, 100000, 66000}}));
}

TEST(IdMapText, FormatsAndParses) {
  Map m{{0, 1000, 1}, {1, 100000, 65536}};
  EXPECT_EQ(map_text(m), "0 1000 1\n1 100000 65536\n");
  EXPECT_EQ(map_args(m), (std::vector<std::string>{"0", "1000", "1", "1", "100000", "65536"}));
  // The kernel pads its columns.
  EXPECT_EQ(parse_map_text("         0       1000          1\n         1     100000      65536\n"),
            m);
  EXPECT_EQ(parse_map_text(""), Map{});
  EXPECT_FALSE(parse_map_text("0 1000\n"));
  EXPECT_FALSE(parse_map_text("0 1000 1 2\n"));
  EXPECT_FALSE(parse_map_text("0 x 1\n"));
}

TEST(IdMapText, ValidMapChecksWhatTheKernelChecks) {
  EXPECT_FALSE(valid_map({}));
  EXPECT_FALSE(valid_map({{0, 1000, 0}}));
  EXPECT_FALSE(valid_map({{0, 1000, 1}, {0, 2000, 1}}));    // inside overlap
  EXPECT_FALSE(valid_map({{0, 1000, 10}, {20, 1005, 1}}));  // outside overlap
  EXPECT_FALSE(valid_map({{4294967290u, 0, 10}}));          // past the last id
  EXPECT_TRUE(valid_map({{4294967290u, 0, 5}}));
  EXPECT_TRUE(valid_map({{0, 1000, 1}, {1, 1001, 1}}));
}

TEST(IdMapText, SuggestsAFreeRange) {
  EXPECT_EQ(suggest_range("", ""), (IdRange{100000, 65536}));
  EXPECT_EQ(range_arg(suggest_range("", "")), "100000-165535");
  EXPECT_EQ(suggest_range("a:100000:65536\nb:165536:65536\n", "c:100000:65536\njunk\n"),
            (IdRange{231072, 65536}));
  EXPECT_EQ(suggest_range("a:10:5\n", ""), (IdRange{100000, 65536}));
  EXPECT_EQ(suggest_range("a:4294900000:60000\n", ""), (IdRange{100000, 65536}));
}

IdFacts facts(uint32_t uid, uint32_t gid, const char* subuid, const char* subgid) {
  IdFacts f;
  f.uid = uid;
  f.gid = gid;
  f.invoker.user = UserRecord{uid == 0 ? "root" : "me", uid, gid, "", "/home/me", "/bin/bash"};
  f.invoker.group = "me";
  f.subuid = subuid;
  f.subgid = subgid;
  return f;
}

TEST(PlanIdentity, RootNeedsNoUserNamespace) {
  IdentityPlan p = plan_identity(facts(0, 0, "", ""), false);
  EXPECT_FALSE(p.user_namespace);
  EXPECT_TRUE(p.uids.empty());
  EXPECT_EQ(p.uid, 0u);
  EXPECT_EQ(p.groups, (std::vector<uint32_t>{0}));
  EXPECT_FALSE(p.add_user);
  EXPECT_EQ(p.notice, "");

  // Plain root asking for --user stays root.
  p = plan_identity(facts(0, 0, "", ""), true);
  EXPECT_EQ(p.uid, 0u);
  EXPECT_FALSE(p.add_user);
}

TEST(PlanIdentity, RootUserRunsAsThePersonBehindSudo) {
  IdFacts f = facts(0, 0, "", "");
  f.invoker.user = UserRecord{"me", 1000, 1000, "", "/home/me", "/bin/bash"};
  f.invoker.groups = {4, 104};
  f.invoker.via_sudo = true;
  IdentityPlan p = plan_identity(f, true);
  EXPECT_FALSE(p.user_namespace);
  EXPECT_EQ(p.uid, 1000u);
  EXPECT_EQ(p.gid, 1000u);
  EXPECT_EQ(p.groups, (std::vector<uint32_t>{1000, 4, 104}));
  EXPECT_TRUE(p.set_groups);
  EXPECT_TRUE(p.add_user);
  EXPECT_EQ(p.user.user.home, "/home/me");
  // Without --user, sudo does not matter.
  EXPECT_EQ(plan_identity(f, false).uid, 0u);
}

TEST(PlanIdentity, RootlessWithoutSubidsExplains) {
  IdentityPlan p = plan_identity(facts(1000, 1000, "other:100000:65536\n", ""), false);
  EXPECT_TRUE(p.user_namespace);
  EXPECT_EQ(p.uids, (Map{{0, 1000, 1}}));
  EXPECT_EQ(p.gids, (Map{{0, 1000, 1}}));
  EXPECT_FALSE(p.set_groups);
  EXPECT_TRUE(p.groups.empty());
  EXPECT_EQ(p.uid, 0u);
  EXPECT_EQ(
      p.notice,
      "no subordinate ids for me in /etc/subuid and /etc/subgid: only your own id exists "
      "inside, so files of other users in the image belong to root there, and programs cannot "
      "switch users (apt is set to download as root); add ranges with `sudo usermod "
      "--add-subuids 165536-231071 --add-subgids 165536-231071 me`");

  p = plan_identity(facts(1000, 1000, "", ""), true);
  EXPECT_EQ(p.uids, (Map{{1000, 1000, 1}}));
  EXPECT_EQ(p.uid, 1000u);
  EXPECT_EQ(p.gid, 1000u);
  EXPECT_TRUE(p.add_user);
}

TEST(PlanIdentity, RootlessWithSubids) {
  IdentityPlan p =
      plan_identity(facts(1000, 1000, "me:100000:65536\n", "1000:100000:65536\n"), false);
  EXPECT_EQ(p.notice, "");
  EXPECT_EQ(p.uids, (Map{{0, 1000, 1}, {1, 100000, 65536}}));
  EXPECT_EQ(p.gids, (Map{{0, 1000, 1}, {1, 100000, 65536}}));
  EXPECT_TRUE(p.set_groups);
  EXPECT_EQ(p.groups, (std::vector<uint32_t>{0}));
  EXPECT_EQ(p.uid, 0u);

  p = plan_identity(facts(1000, 1000, "me:100000:65536\n", "me:100000:65536\n"), true);
  EXPECT_EQ(p.uids, (Map{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64536}}));
  EXPECT_EQ(p.uid, 1000u);
  EXPECT_EQ(p.groups, (std::vector<uint32_t>{1000}));
  EXPECT_TRUE(p.add_user);
}

TEST(PlanIdentity, OneFileMissing) {
  IdentityPlan p = plan_identity(facts(1000, 1000, "me:100000:65536\n", ""), false);
  EXPECT_EQ(p.uids.size(), 2u);
  EXPECT_EQ(p.gids, (Map{{0, 1000, 1}}));
  EXPECT_FALSE(p.set_groups);
  EXPECT_EQ(p.notice,
            "no subordinate ids for me in /etc/subgid: only your own id exists inside, so files "
            "of other users in the image belong to root there, and programs cannot switch users "
            "(apt is set to download as root); add a range with `sudo usermod --add-subgids "
            "165536-231071 me`");
}

TEST(PlanIdentity, UnusableHelpersDegradeToTheSingleId) {
  IdFacts f = facts(1000, 1000, "me:100000:65536\n", "me:100000:65536\n");
  f.uid_helper_problem = f.gid_helper_problem = "newuidmap is not installed; install it";
  IdentityPlan p = plan_identity(f, false);
  EXPECT_EQ(p.uids, (Map{{0, 1000, 1}}));
  EXPECT_EQ(p.gids, (Map{{0, 1000, 1}}));
  EXPECT_FALSE(p.set_groups);
  EXPECT_EQ(
      p.notice,
      "newuidmap is not installed; install it: only your own id exists inside, so files of "
      "other users in the image belong to root there");

  f.gid_helper_problem = "";
  p = plan_identity(f, false);
  EXPECT_EQ(p.gids.size(), 2u);
  EXPECT_TRUE(p.set_groups);
}

}  // namespace
}  // namespace togo::runtime
