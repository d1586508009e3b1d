#include "runtime/userdb.h"

#include <gtest/gtest.h>

namespace togo::runtime {
namespace {

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "# a comment\n"
    "+nisuser::::::\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "broken:x:12\n"
    "octal:x:010:10::/:/bin/sh\n"
    "me:x:1000:1000:Me Myself,,,:/home/me:/usr/bin/zsh\n"
    "big:x:1234567890:1234567890::/home/big:/bin/bash";  // no final newline

constexpr const char* kGroup =
    "root:x:0:\n"
    "adm:x:4:syslog,me\n"
    "me:x:1000:\n"
    "kvm:x:104:me\n"
    "docker:x:998:other,me,\n"
    "dup:x:104:me\n"
    "junk:x:notanumber:me\n";

TEST(UserDb, ParsesPasswdLines) {
  auto u = parse_passwd_line("me:x:1000:1000:Me:/home/me:/bin/sh");
  ASSERT_TRUE(u);
  EXPECT_EQ(*u, (UserRecord{"me", 1000, 1000, "Me", "/home/me", "/bin/sh"}));
  EXPECT_TRUE(parse_passwd_line("x::0:0:::"));  // empty fields are fine
  EXPECT_FALSE(parse_passwd_line(""));
  EXPECT_FALSE(parse_passwd_line("# root:x:0:0::/:/bin/sh"));
  EXPECT_FALSE(parse_passwd_line("+me:x:0:0::/:/bin/sh"));                   // NIS compat
  EXPECT_FALSE(parse_passwd_line("me:x:1000:1000:/home/me:/bin/sh"));        // 6 fields
  EXPECT_FALSE(parse_passwd_line("me:x:1000:1000::/home/me:/bin/sh:more"));  // 8 fields
  EXPECT_FALSE(parse_passwd_line("me:x:-1:1000::/:/bin/sh"));
  EXPECT_FALSE(parse_passwd_line("me:x:4294967296:1000::/:/bin/sh"));
  EXPECT_FALSE(parse_passwd_line(":x:1:1::/:/bin/sh"));
  auto top = parse_passwd_line("top:x:4294967295:0::/:/bin/sh");
  ASSERT_TRUE(top);
  EXPECT_EQ(top->uid, 4294967295u);
}

TEST(UserDb, ParsesIdsStrictly) {
  EXPECT_EQ(parse_decimal_id("0"), 0u);
  EXPECT_EQ(parse_decimal_id("65534"), 65534u);
  EXPECT_EQ(parse_decimal_id("4294967295"), 4294967295u);
  for (const char* bad :
       {"", "010", "+1", "-1", " 1", "1 ", "0x10", "4294967296", "99999999999", "1a"})
    EXPECT_FALSE(parse_decimal_id(bad)) << bad;
}

TEST(UserDb, FindsUsersAndGroups) {
  auto me = find_user(kPasswd, 1000);
  ASSERT_TRUE(me);
  EXPECT_EQ(me->name, "me");
  EXPECT_EQ(me->shell, "/usr/bin/zsh");
  EXPECT_EQ(find_user(kPasswd, 1234567890)->name, "big");  // last line, no newline
  EXPECT_FALSE(find_user(kPasswd, 8));                     // "010" is not uid 8 or 10
  EXPECT_FALSE(find_user(kPasswd, 10));
  EXPECT_FALSE(find_user(kPasswd, 12));
  EXPECT_EQ(find_user_named(kPasswd, "daemon")->uid, 1u);
  EXPECT_FALSE(find_user_named(kPasswd, "m"));
  EXPECT_FALSE(find_user_named(kPasswd, "nisuser"));
  EXPECT_EQ(find_group(kGroup, 104)->name, "kvm");  // first of two
  EXPECT_FALSE(find_group(kGroup, 5));
}

TEST(UserDb, MemberGidsSkipPrimaryAndDuplicates) {
  EXPECT_EQ(member_gids(kGroup, "me", 1000), (std::vector<uint32_t>{4, 104, 998}));
  EXPECT_EQ(member_gids(kGroup, "me", 4), (std::vector<uint32_t>{104, 998}));
  EXPECT_TRUE(member_gids(kGroup, "nobody", 1000).empty());
  EXPECT_TRUE(member_gids(kGroup, "sys", 0).empty());  // "syslog" is not "sys"
}

TEST(UserDb, ValidNames) {
  for (const char* ok : {"me", "a.b", "john_doe", "user@example.com", "machine$", "Me-2", "_apt"})
    EXPECT_TRUE(valid_user_name(ok)) << ok;
  for (const char* bad : {"", "-x", "a:b", "a b", "a\nb", "1000", "x$y", "a/b", "é"})
    EXPECT_FALSE(valid_user_name(bad)) << bad;
  EXPECT_FALSE(valid_user_name(std::string(257, 'a')));
}

TEST(UserDb, FormatsLines) {
  UserRecord u{"me", 1000, 100, "Me,,,", "/home/me", "/bin/bash"};
  EXPECT_EQ(*format_passwd(u), "me:x:1000:100:Me,,,:/home/me:/bin/bash\n");
  EXPECT_EQ(*format_group(GroupRecord{"users", 100, {}}), "users:x:100:\n");
  EXPECT_EQ(*format_group(GroupRecord{"kvm", 104, {"a", "b"}}), "kvm:x:104:a,b\n");

  auto bad = u;
  bad.gecos = "evil:0:0";
  EXPECT_FALSE(format_passwd(bad));
  bad = u;
  bad.home = "/home/me\nroot:x:0:0::/:/bin/sh";
  EXPECT_FALSE(format_passwd(bad));
  bad = u;
  bad.home = "home";
  EXPECT_FALSE(format_passwd(bad));
  bad = u;
  bad.shell = "";
  EXPECT_FALSE(format_passwd(bad));
  bad = u;
  bad.name = "a:b";
  EXPECT_FALSE(format_passwd(bad));
  EXPECT_FALSE(format_group(GroupRecord{"g", 1, {"ok", "not ok"}}));
}

TEST(UserDb, MergeReplacesConflictsAndKeepsTheRest) {
  std::string image =
      "root:x:0:0:root:/root:/bin/bash\n"
      "# keep me\n"
      "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n"
      "ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n"
      "me:x:2000:2000::/home/old:/bin/sh\n"
      "garbage line\n"
      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin";
  UserRecord me{"me", 1000, 1000, "", "/home/me", "/bin/bash"};
  EXPECT_EQ(*merge_passwd(image, me),
            "root:x:0:0:root:/root:/bin/bash\n"
            "# keep me\n"
            "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n"
            "garbage line\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            "me:x:1000:1000::/home/me:/bin/bash\n");
  EXPECT_EQ(*merge_passwd("", me), "me:x:1000:1000::/home/me:/bin/bash\n");

  std::string groups = "root:x:0:\nusers:x:100:\nubuntu:x:1000:\nme:x:7:\n";
  EXPECT_EQ(*merge_group(groups, GroupRecord{"me", 1000, {}}),
            "root:x:0:\nusers:x:100:\nme:x:1000:\n");
  // Same name and gid as the image's: one line, the host's.
  EXPECT_EQ(*merge_group(groups, GroupRecord{"users", 100, {}}),
            "root:x:0:\nubuntu:x:1000:\nme:x:7:\nusers:x:100:\n");
  me.gecos = "a:b";
  EXPECT_FALSE(merge_passwd(image, me));
}

InvokerFacts host(uint32_t uid, uint32_t gid) {
  InvokerFacts f;
  f.uid = uid;
  f.gid = gid;
  f.passwd = kPasswd;
  f.group = kGroup;
  return f;
}

TEST(UserDb, InvokerIsTheCallerWhenNotRoot) {
  auto f = host(1000, 1000);
  f.sudo_uid = "0";  // ignored: only root may claim to act for someone
  f.user = "someone-else";
  auto who = resolve_invoker(f);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->user, (UserRecord{"me", 1000, 1000, "Me Myself,,,", "/home/me", "/usr/bin/zsh"}));
  EXPECT_EQ(who->group, "me");
  EXPECT_EQ(who->groups, (std::vector<uint32_t>{4, 104, 998}));
  EXPECT_FALSE(who->via_sudo);
  EXPECT_TRUE(who->in_passwd);

  f.gid = 104;  // after `newgrp kvm`: the group in use wins
  who = resolve_invoker(f);
  EXPECT_EQ(who->user.gid, 104u);
  EXPECT_EQ(who->group, "kvm");
  EXPECT_EQ(who->groups, (std::vector<uint32_t>{4, 998}));
}

TEST(UserDb, InvokerUnderSudoOrDoasIsThePersonBehindIt) {
  auto f = host(0, 0);
  f.sudo_uid = "1000";
  f.sudo_gid = "1000";
  f.sudo_user = "me";
  f.home = "/root";
  auto who = resolve_invoker(f);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->user.name, "me");
  EXPECT_EQ(who->user.home, "/home/me");
  EXPECT_TRUE(who->via_sudo);

  f.sudo_gid.reset();  // gid from passwd
  EXPECT_EQ(resolve_invoker(f)->user.gid, 1000u);

  auto d = host(0, 0);
  d.doas_user = "big";
  who = resolve_invoker(d);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->user.uid, 1234567890u);
  EXPECT_EQ(who->group, "big");  // no such group: named after the user
  d.doas_user = "ghost";
  EXPECT_FALSE(resolve_invoker(d));

  auto bad = host(0, 0);
  bad.sudo_uid = "me";
  EXPECT_FALSE(resolve_invoker(bad));

  auto plain = host(0, 0);
  who = resolve_invoker(plain);
  EXPECT_EQ(who->user.name, "root");
  EXPECT_FALSE(who->via_sudo);
  plain.sudo_uid = "0";  // sudo from root
  EXPECT_FALSE(resolve_invoker(plain)->via_sudo);
}

TEST(UserDb, InvokerNotInPasswdComesFromTheEnvironment) {
  auto f = host(70000, 70000);  // e.g. an LDAP user, known only through NSS
  f.user = "ldapuser";
  f.home = "/net/home/ldapuser";
  f.shell = "/bin/bash";
  auto who = resolve_invoker(f);
  ASSERT_TRUE(who);
  EXPECT_FALSE(who->in_passwd);
  EXPECT_EQ(who->user,
            (UserRecord{"ldapuser", 70000, 70000, "", "/net/home/ldapuser", "/bin/bash"}));

  f.user = "me";  // $USER left over from `su`: that name belongs to uid 1000
  f.home = "relative";
  f.shell.reset();
  who = resolve_invoker(f);
  EXPECT_EQ(who->user.name, "u70000");
  EXPECT_EQ(who->user.home, "/home/u70000");
  EXPECT_EQ(who->user.shell, "/bin/sh");
  f.user = "bad name";
  EXPECT_EQ(resolve_invoker(f)->user.name, "u70000");
}

TEST(UserDb, ImageUserResolvesAsEnginesDo) {
  auto ids = [](std::string_view user) { return resolve_image_user(user, kPasswd, kGroup); };
  using Ids = std::pair<uint32_t, uint32_t>;
  EXPECT_EQ(*ids("me"), (Ids{1000, 1000}));
  EXPECT_EQ(*ids("1000"), (Ids{1000, 1000})) << "a uid gets its passwd group";
  EXPECT_EQ(*ids("4321"), (Ids{4321, 0})) << "a uid need not be in passwd";
  EXPECT_EQ(*ids("01000"), (Ids{1000, 1000})) << "digits are an id, as Docker reads them";
  EXPECT_EQ(*ids("me:kvm"), (Ids{1000, 104}));
  EXPECT_EQ(*ids("daemon:50"), (Ids{1, 50}));
  EXPECT_EQ(*ids(":adm"), (Ids{0, 4})) << "no user part is root";
  EXPECT_EQ(*ids("me:"), (Ids{1000, 1000}));
  EXPECT_EQ(*ids("4294967294"), (Ids{4294967294u, 0}));
  EXPECT_EQ(find_group_named(kGroup, "kvm")->gid, 104u);
  EXPECT_FALSE(find_group_named(kGroup, "junk")) << "malformed lines are skipped";

  auto ghost = ids("ghost");
  ASSERT_FALSE(ghost);
  EXPECT_EQ(ghost.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(ghost.error().message, "the image's user ghost is not in /etc/passwd");
  auto staff = ids("me:staff");
  ASSERT_FALSE(staff);
  EXPECT_EQ(staff.error().message, "the image's group staff is not in /etc/group");
  EXPECT_FALSE(ids("octal")) << "a malformed line names nobody";
  // (uid_t)-1 would leave the command root: refused, not wrapped around.
  for (const char* bad : {"4294967295", "4294967296", "99999999999", "me:4294967295"}) {
    auto r = ids(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kBadInput) << bad;
  }
}

TEST(UserDb, PickShellFallsBack) {
  auto only = [](std::vector<std::string> have) {
    return [have](const std::string& p) {
      return std::find(have.begin(), have.end(), p) != have.end();
    };
  };
  EXPECT_EQ(pick_shell("/usr/bin/zsh", only({"/usr/bin/zsh", "/bin/bash"})), "/usr/bin/zsh");
  EXPECT_EQ(pick_shell("/usr/bin/zsh", only({"/bin/bash", "/bin/sh"})), "/bin/bash");
  EXPECT_EQ(pick_shell("/usr/bin/fish", only({"/bin/sh"})), "/bin/sh");
  EXPECT_EQ(pick_shell("zsh", only({"zsh"})), "/bin/sh");
  EXPECT_EQ(pick_shell("", only({})), "/bin/sh");
}

}  // namespace
}  // namespace togo::runtime
