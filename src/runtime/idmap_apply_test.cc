#include "runtime/idmap_apply.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "base/fs.h"
#include "base/sys.h"
#include "base/text.h"
#include "runtime/child_output_test_util.h"
#include "runtime/userdb.h"

namespace togo::runtime {
namespace {

class HelperDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/togo-idmap-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
  }
  void TearDown() override { (void)fs::remove_tree(AT_FDCWD, dir_); }
  void put(const std::string& name, const std::string& text, mode_t mode) {
    Fd fd = *sys::open_at(AT_FDCWD, dir_ + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, mode);
    ASSERT_TRUE(sys::write_all(fd.get(), text, name));
    ::fchmod(fd.get(), mode);
  }
  std::string dir_;
};

TEST_F(HelperDir, FindsHelpersAndSaysWhyTheyCannotWork) {
  put("newuidmap", "#!/bin/sh\nexit 0\n", 0755);
  IdHelper h = find_id_helper("newuidmap", dir_ + ":/usr/bin", CAP_SETUID);
  EXPECT_EQ(h.path, dir_ + "/newuidmap");
  EXPECT_NE(h.problem.find("neither setuid root nor given cap_setuid"), std::string::npos)
      << h.problem;

  if (::geteuid() == 0) {  // setuid, but owned by someone else than root
    ASSERT_EQ(::chown((dir_ + "/newuidmap").c_str(), 1, 1), 0);
    ASSERT_EQ(::chmod((dir_ + "/newuidmap").c_str(), 04755), 0);
    h = find_id_helper("newuidmap", dir_, CAP_SETUID);
    EXPECT_NE(h.problem.find("neither setuid root"), std::string::npos) << h.problem;
  }

  // A file without an execute bit is not a candidate.
  put("newgidmap", "", 0644);
  h = find_id_helper("togo-no-such-helper", dir_ + ":.::relative", CAP_SETGID);
  EXPECT_EQ(h.path, "");
  EXPECT_NE(h.problem.find("togo-no-such-helper is not installed; install it (Debian, Ubuntu: "
                           "`sudo apt install uidmap`"),
            std::string::npos)
      << h.problem;
}

TEST(IdMapApply, FindsTheSystemHelpers) {
  for (auto [name, cap] :
       {std::pair{"newuidmap", CAP_SETUID}, std::pair{"newgidmap", CAP_SETGID}}) {
    IdHelper h = find_id_helper(name, "", cap);
    if (h.path.empty()) GTEST_SKIP() << h.problem;
    EXPECT_EQ(h.path.substr(h.path.rfind('/') + 1), name);
    EXPECT_EQ(h.problem, "") << h.problem;
  }
}

TEST(IdMapApply, RefusesInvalidMapsWithoutTouchingAnything) {
  auto r = write_id_maps(1, {}, {{0, 0, 1}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("invalid uid map"), std::string::npos);
  r = write_id_maps(1, {{0, 1000, 1}}, {{0, 1000, 1}, {0, 2000, 1}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("invalid gid map"), std::string::npos);
}

// The real thing: an unprivileged user with subordinate ids, a child in a new
// user namespace, newuidmap/newgidmap writing its maps.
//
// The host's /etc/subuid, /etc/subgid, /etc/passwd and /etc/group are never
// modified: each scenario runs in a forked process with a private mount
// namespace in which copies (host content plus a test user) are bind-mounted
// over them. newuidmap, started from there, reads the copies. Nothing needs
// restoring, a crash leaves nothing behind, and tests may run in parallel.
constexpr uint32_t kTestId = 61234;

struct Scenario {
  std::string subuid, subgid;
  bool as_user = false;
  std::vector<IdMapping> uids;  // if set, written instead of the plan's uid map
  std::string owned;            // a file owned by the test user, chowned to 42:42 from inside
};

using Report = std::map<std::string, std::string>;

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n') c = ';';
  return s;
}

std::string read_text(const std::string& path) {
  auto fd = sys::open_at(AT_FDCWD, path, O_RDONLY);
  if (!fd) return "<" + fd.error().message + ">";
  auto t = sys::read_all(fd->get(), path);
  return t ? *t : "<" + t.error().message + ">";
}

void emit(int fd, const std::string& key, const std::string& value) {
  std::string line = key + "=" + one_line(value) + "\n";
  (void)!::write(fd, line.data(), line.size());
}

[[noreturn]] void die(int fd, const std::string& what) {
  emit(fd, "error", what + ": " + std::strerror(errno));
  ::_exit(1);
}

// The namespace child: waits for its maps, then reports what it can do.
[[noreturn]] void inner(int ready, int go, int out, const IdentityPlan& plan, const Scenario& sc) {
  if (::unshare(CLONE_NEWUSER) < 0) {
    emit(out, "skip", std::string("cannot create a user namespace: ") + std::strerror(errno));
    ::_exit(0);
  }
  (void)!::write(ready, "r", 1);
  char c;
  if (::read(go, &c, 1) != 1) ::_exit(1);
  emit(out, "inner_uid", std::to_string(::getuid()));
  emit(out, "inner_gid", std::to_string(::getgid()));
  emit(out, "chown", ::chown(sc.owned.c_str(), 42, 42) == 0 ? "ok" : std::strerror(errno));
  gid_t g = plan.gid;
  emit(out, "setgroups", ::setgroups(1, &g) == 0 ? "ok" : std::strerror(errno));
  ::_exit(0);
}

// The unprivileged user's side, in its own mount namespace.
[[noreturn]] void outer(int out, const std::string& dir, const Scenario& sc) {
  if (::unshare(CLONE_NEWNS) < 0) die(out, "unshare mount namespace");
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) die(out, "making / private");
  for (const char* f : {"passwd", "group", "subuid", "subgid"}) {
    std::string src = dir + "/" + f, dst = std::string("/etc/") + f;
    if (::mount(src.c_str(), dst.c_str(), nullptr, MS_BIND, nullptr) < 0) die(out, "bind " + dst);
  }
  if (::setgroups(0, nullptr) < 0 || ::setresgid(kTestId, kTestId, kTestId) < 0 ||
      ::setresuid(kTestId, kTestId, kTestId) < 0)
    die(out, "becoming the test user");
  // Changing uid made this process undumpable, which would hand /proc/<pid>
  // of its children to root; a real caller never changes uid.
  ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);

  auto facts = read_id_facts();
  if (!facts) {
    emit(out, "error", facts.error().message);
    ::_exit(1);
  }
  IdentityPlan plan = plan_identity(*facts, sc.as_user);
  emit(out, "name", facts->invoker.user.name);
  emit(out, "notice", plan.notice);

  int ready[2], go[2], res[2];
  if (::pipe(ready) < 0 || ::pipe(go) < 0 || ::pipe(res) < 0) die(out, "pipe");
  pid_t child = ::fork();
  if (child < 0) die(out, "fork");
  if (child == 0) {
    ::close(ready[0]);
    ::close(go[1]);
    ::close(res[0]);
    inner(ready[1], go[0], res[1], plan, sc);
  }
  ::close(ready[1]);
  ::close(go[0]);
  ::close(res[1]);
  char c;
  if (::read(ready[0], &c, 1) == 1) {
    auto written = write_id_maps(child, sc.uids.empty() ? plan.uids : sc.uids, plan.gids);
    emit(out, "write", written ? "ok" : written.error().message);
    std::string proc = "/proc/" + std::to_string(child) + "/";
    auto parsed = [&](const char* file) {
      auto m = parse_map_text(read_text(proc + file));
      return m ? map_text(*m) : "<unparsable>";
    };
    emit(out, "uid_map", parsed("uid_map"));
    emit(out, "gid_map", parsed("gid_map"));
    emit(out, "setgroups_file", read_text(proc + "setgroups"));
    emit(out, "plan_uids", map_text(plan.uids));
    emit(out, "plan_gids", map_text(plan.gids));
    if (!written) ::kill(child, SIGKILL);
    (void)!::write(go[1], "g", 1);
  }
  ::close(go[1]);
  auto inner_said = sys::read_all(res[0], "child report");
  if (inner_said) (void)!::write(out, inner_said->data(), inner_said->size());
  ::waitpid(child, nullptr, 0);
  struct stat st;
  if (::stat(sc.owned.c_str(), &st) == 0)
    emit(out, "owner", std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid));
  ::_exit(0);
}

class RealIdMaps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0)
      GTEST_SKIP() << "needs root: it bind-mounts test copies of /etc/subuid and /etc/subgid in a "
                      "private mount namespace and switches to a test uid";
    for (auto [name, cap] :
         {std::pair{"newuidmap", CAP_SETUID}, std::pair{"newgidmap", CAP_SETGID}}) {
      IdHelper h = find_id_helper(name, "", cap);
      if (!h.problem.empty()) GTEST_SKIP() << h.problem;
    }
    for (const char* f : {"/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid"})
      if (::access(f, F_OK) < 0) GTEST_SKIP() << f << " does not exist to mount over";
    passwd_ = read_text("/etc/passwd");
    group_ = read_text("/etc/group");
    if (find_user(passwd_, kTestId) || find_group(group_, kTestId) ||
        find_user_named(passwd_, "togotest"))
      GTEST_SKIP() << "uid/gid " << kTestId << " or the name togotest is taken on this host";
    char tmpl[] = "/tmp/togo-realmap-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
    if (!passwd_.empty() && passwd_.back() != '\n') passwd_ += '\n';
    if (!group_.empty() && group_.back() != '\n') group_ += '\n';
    write("passwd", passwd_ + "togotest:x:61234:61234:togo test:/nonexistent:/bin/sh\n");
    write("group", group_ + "togotest:x:61234:\n");
  }
  void TearDown() override {
    if (!dir_.empty()) (void)fs::remove_tree(AT_FDCWD, dir_);
  }
  void write(const std::string& name, const std::string& text) {
    Fd dir = *sys::open_at(AT_FDCWD, dir_, O_RDONLY | O_DIRECTORY);
    ASSERT_TRUE(fs::write_file_atomic(dir.get(), name, text));
  }

  Report run(Scenario sc) {
    write("subuid", sc.subuid);
    write("subgid", sc.subgid);
    sc.owned = dir_ + "/owned-" + std::to_string(n_++);
    write(sc.owned.substr(dir_.size() + 1), "");
    EXPECT_EQ(::chown(sc.owned.c_str(), kTestId, kTestId), 0);
    std::string text =
        testing::run_in_child([&](int fd) { outer(fd, dir_, sc); }).text;
    Report r;
    for (const std::string& line : text::split(text, '\n')) {
      size_t eq = line.find('=');
      if (eq != std::string::npos) r[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return r;
  }

  std::string dir_, passwd_, group_;
  int n_ = 0;
};

TEST_F(RealIdMaps, SubordinateRangesRootInside) {
  // Owners by name in subuid and by uid in subgid: shadow accepts both.
  Report r = run({"# test range\ntogotest:200000:65536\n", "61234:300000:65536\n", false, {}, {}});
  if (r.count("skip")) GTEST_SKIP() << r["skip"];
  ASSERT_EQ(r["error"], "");
  EXPECT_EQ(r["name"], "togotest");
  EXPECT_EQ(r["notice"], "");
  EXPECT_EQ(r["write"], "ok");
  EXPECT_EQ(r["uid_map"], "0 61234 1;1 200000 65536;");
  EXPECT_EQ(r["gid_map"], "0 61234 1;1 300000 65536;");
  EXPECT_EQ(r["uid_map"], r["plan_uids"]);
  EXPECT_EQ(r["setgroups_file"], "allow;");
  EXPECT_EQ(r["inner_uid"], "0");
  EXPECT_EQ(r["inner_gid"], "0");
  // A file of another user of the image (apt's _apt is 42) can exist.
  EXPECT_EQ(r["chown"], "ok");
  EXPECT_EQ(r["owner"], "200041:300041");
  EXPECT_EQ(r["setgroups"], "ok");
}

TEST_F(RealIdMaps, SubordinateRangesKeepId) {
  Report r = run({"togotest:200000:65536\n", "togotest:300000:65536\n", true, {}, {}});
  if (r.count("skip")) GTEST_SKIP() << r["skip"];
  ASSERT_EQ(r["error"], "");
  EXPECT_EQ(r["write"], "ok");
  EXPECT_EQ(r["uid_map"], "0 200000 61234;61234 61234 1;61235 261234 4302;");
  EXPECT_EQ(r["gid_map"], "0 300000 61234;61234 61234 1;61235 361234 4302;");
  EXPECT_EQ(r["inner_uid"], "61234");
  EXPECT_EQ(r["inner_gid"], "61234");
  EXPECT_EQ(r["chown"], "ok");
  EXPECT_EQ(r["owner"], "200042:300042");  // inside 42 is the 43rd subordinate id here
  EXPECT_EQ(r["setgroups"], "ok");
}

TEST_F(RealIdMaps, NoSubordinateIdsFallsBackToTheOwnId) {
  Report r = run({"someone:100000:65536\n", "", false, {}, {}});
  if (r.count("skip")) GTEST_SKIP() << r["skip"];
  ASSERT_EQ(r["error"], "");
  EXPECT_NE(r["notice"].find("no subordinate ids for togotest in /etc/subuid and /etc/subgid"),
            std::string::npos)
      << r["notice"];
  EXPECT_EQ(r["write"], "ok");
  EXPECT_EQ(r["uid_map"], "0 61234 1;");
  EXPECT_EQ(r["gid_map"], "0 61234 1;");
  EXPECT_EQ(r["setgroups_file"], "deny;");
  EXPECT_EQ(r["inner_uid"], "0");
  EXPECT_EQ(r["chown"], std::strerror(EINVAL));  // 42 does not exist inside
  EXPECT_EQ(r["setgroups"], std::strerror(EPERM));
  EXPECT_EQ(r["owner"], "61234:61234");
}

TEST_F(RealIdMaps, SmallRangesAndRefusedRanges) {
  Report r = run({"togotest:200000:65536\n", "togotest:300000:10\n", false, {}, {}});
  if (r.count("skip")) GTEST_SKIP() << r["skip"];
  ASSERT_EQ(r["error"], "");
  EXPECT_EQ(r["write"], "ok");
  EXPECT_EQ(r["gid_map"], "0 61234 1;1 300000 10;");
  EXPECT_EQ(r["chown"], std::strerror(EINVAL));  // gid 42 is past the 10 granted
  EXPECT_EQ(r["setgroups"], "ok");

  // A map asking for ids that were not granted: newuidmap refuses, and the
  // error carries its command line and its own words.
  r = run({"togotest:200000:65536\n",
           "togotest:300000:65536\n",
           false,
           {{0, kTestId, 1}, {1, 400000, 10}},
           {}});
  ASSERT_EQ(r["error"], "");
  EXPECT_NE(r["write"].find("newuidmap "), std::string::npos) << r["write"];
  EXPECT_NE(r["write"].find(" 0 61234 1 1 400000 10: exit status 1: "), std::string::npos)
      << r["write"];
  EXPECT_NE(r["write"].find("not allowed"), std::string::npos) << r["write"];
  EXPECT_EQ(r["uid_map"], "");  // nothing was written
}

}  // namespace
}  // namespace togo::runtime
