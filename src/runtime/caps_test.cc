#include "runtime/caps.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>

#include "runtime/child_output_test_util.h"

namespace togo::runtime {
namespace {

void write_file(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)!::write(fd, text.data(), text.size());
    ::close(fd);
  }
}

// In a forked child: becomes root of a new user namespace when not root
// already (so the test runs unprivileged too), applies `keep`, sets
// no_new_privs, and execs cat on /proc/self/status, so the sets are the
// ones a command in an env starts with. Returns the Cap* and NoNewPrivs
// lines as a map; "apply" holds apply_caps's errno (0 on success). With
// `before`, that set is applied first.
std::map<std::string, std::string> status_after_apply(const CapSet& keep,
                                                      const CapSet* before = nullptr) {
  int last_cap = read_last_cap();
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  auto child = testing::run_in_child([&](int fd) {
    ::dup2(fd, 1);
    if (uid != 0) {
      if (::unshare(CLONE_NEWUSER) < 0) ::_exit(90);
      write_file("/proc/self/setgroups", "deny");
      write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1");
      write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
    }
    if ((before && apply_caps(*before, last_cap) < 0) || apply_caps(keep, last_cap) < 0) {
      std::printf("apply: %d\n", errno);
      ::fflush(stdout);
      ::_exit(91);
    }
    if (set_no_new_privs() < 0) ::_exit(92);
    std::printf("apply: 0\n");
    ::fflush(stdout);
    ::execl("/bin/cat", "cat", "/proc/self/status", nullptr);
    ::_exit(93);
  });
  EXPECT_TRUE(testing::exited_zero(child.status)) << "child status " << child.status;
  const std::string& out = child.text;
  std::map<std::string, std::string> fields;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    size_t value = line.find_first_not_of(" \t", colon + 1);
    fields[line.substr(0, colon)] = value == std::string::npos ? "" : line.substr(value);
  }
  return fields;
}

// What the child can hold at most: all capabilities in a new user
// namespace; as real root, what this process has (a host may withhold
// some even from root).
CapSet holdable(int last_cap) {
  if (::geteuid() != 0) return CapSet::all(last_cap);
  FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) return CapSet::all(last_cap);
  char line[256];
  unsigned long long bits = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "CapPrm: %llx", &bits) == 1) break;
  std::fclose(f);
  return CapSet{bits};
}

std::string hex(uint64_t bits) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(bits));
  return buf;
}

TEST(Caps, DefaultSetIsPodmansEleven) {
  CapSet d = default_caps();
  EXPECT_EQ(to_string(d),
            "chown,dac_override,fowner,fsetid,kill,setgid,setuid,setpcap,net_bind_service,"
            "sys_chroot,setfcap");
  for (int cap : {CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_NET_ADMIN, CAP_NET_RAW,
                  CAP_MKNOD, CAP_AUDIT_WRITE, CAP_DAC_READ_SEARCH, CAP_SYS_TIME, CAP_BPF})
    EXPECT_FALSE(d.has(cap)) << cap;
}

TEST(Caps, NamesRoundTrip) {
  EXPECT_EQ(cap_from_name("CAP_SYS_ADMIN"), CAP_SYS_ADMIN);
  EXPECT_EQ(cap_from_name("sys_admin"), CAP_SYS_ADMIN);
  EXPECT_EQ(cap_from_name("Net_Raw"), CAP_NET_RAW);
  EXPECT_EQ(cap_from_name("checkpoint_restore"), CAP_CHECKPOINT_RESTORE);
  EXPECT_EQ(cap_from_name("CAP_"), std::nullopt);
  EXPECT_EQ(cap_from_name("flying"), std::nullopt);
  EXPECT_EQ(CapSet::all(40).bits, (uint64_t{1} << 41) - 1);
  EXPECT_EQ(to_string(CapSet{}.add(CAP_KILL).add(45)), "kill,45");
}

TEST(Caps, LastCapComesFromTheKernel) {
  int last = read_last_cap();
  EXPECT_GE(last, CAP_AUDIT_READ);  // every kernel togo runs on has 37 or more
  EXPECT_LT(last, 64);
}

TEST(Caps, ApplyLeavesExactlyTheKeptSetAcrossExec) {
  CapSet keep = default_caps();
  auto s = status_after_apply(keep);
  ASSERT_EQ(s["apply"], "0");
  std::string want = hex(keep.bits & holdable(read_last_cap()).bits);
  EXPECT_EQ(s["CapEff"], want);
  EXPECT_EQ(s["CapPrm"], want);
  EXPECT_EQ(s["CapInh"], want);
  EXPECT_EQ(s["CapBnd"], want);
  EXPECT_EQ(s["CapAmb"], hex(0));
  EXPECT_EQ(s["NoNewPrivs"], "1");
}

TEST(Caps, PrivilegedKeepsEverything) {
  int last = read_last_cap();
  auto s = status_after_apply(CapSet::all(last));
  ASSERT_EQ(s["apply"], "0");
  EXPECT_EQ(s["CapEff"], hex(holdable(last).bits));
  EXPECT_EQ(s["CapBnd"], hex(holdable(last).bits));
}

TEST(Caps, AnEmptySetDropsEverything) {
  auto s = status_after_apply(CapSet{});
  ASSERT_EQ(s["apply"], "0");
  EXPECT_EQ(s["CapEff"], hex(0));
  EXPECT_EQ(s["CapBnd"], hex(0));
}

// A process that no longer holds CAP_SETPCAP cannot drop from its bounding
// set; what it asks to drop is already gone, which is no error.
TEST(Caps, ApplyingAgainWithoutSetpcapSucceeds) {
  CapSet none;
  auto s = status_after_apply(default_caps(), &none);
  ASSERT_EQ(s["apply"], "0");
  EXPECT_EQ(s["CapEff"], hex(0));
  EXPECT_EQ(s["CapBnd"], hex(0));
}

}  // namespace
}  // namespace togo::runtime
