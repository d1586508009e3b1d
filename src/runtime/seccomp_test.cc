#include "runtime/seccomp.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/keyctl.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "runtime/caps.h"
#include "runtime/child_output_test_util.h"

namespace togo::runtime {
namespace {

// Runs `body` in a forked child that reports "name errno" lines through a
// pipe; returns them as a map. errno 0 means the call succeeded.
std::map<std::string, int> in_child(const std::function<void(int)>& body) {
  auto child = testing::run_in_child(body);
  EXPECT_TRUE(testing::exited_zero(child.status)) << "child status " << child.status;
  const std::string& out = child.text;
  std::map<std::string, int> result;
  std::istringstream lines(out);
  std::string name;
  int err;
  while (lines >> name >> err) result[name] = err;
  return result;
}

void report(int fd, const char* name, long rc) {
  char line[128];
  int n = std::snprintf(line, sizeof line, "%s %d\n", name, rc < 0 ? errno : 0);
  (void)!::write(fd, line, static_cast<size_t>(n));
}

// A syscall through the i386 entry point (int 0x80); returns -errno.
long int80(long nr, long a = 0, long b = 0, long c = 0) {
#if defined(__x86_64__)
  long ret;
  asm volatile("int $0x80"
               : "=a"(ret)
               : "a"(nr), "b"(a), "c"(b), "d"(c)
               : "memory", "r8", "r9", "r10", "r11");
  return ret;
#else
  (void)nr, (void)a, (void)b, (void)c;
  return -ENOSYS;
#endif
}
constexpr long kI386Getpid = 20, kI386Keyctl = 288, kI386Unshare = 310;

void* thread_body(void*) { return nullptr; }

// Loads the filter in the child (after no_new_privs, as the runtime does),
// then makes every call the tests look at.
std::map<std::string, int> probe(bool privileged) {
  auto program = build_default_filter(privileged);
  EXPECT_TRUE(program.has_value()) << (program ? "" : program.error().message);
  if (!program) return {};
  return in_child([&](int fd) {
    bool has_i386 = int80(kI386Getpid) == ::getpid();
    report(fd, "no_new_privs", set_no_new_privs());
    report(fd, "install", install_filter(*program));

    report(fd, "getpid", ::getpid() > 0 ? 0 : -1);
    char c;
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    report(fd, "read", ::read(null, &c, 1));
    report(fd, "write", ::write(null, "x", 1));
    pid_t kid = ::fork();
    if (kid == 0) ::_exit(7);
    int status = 0;
    if (kid > 0) ::waitpid(kid, &status, 0);
    report(fd, "fork", kid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : -1);
    pthread_t t;
    int terr = ::pthread_create(&t, nullptr, thread_body, nullptr);
    if (terr == 0) ::pthread_join(t, nullptr);
    errno = terr;
    report(fd, "pthread_create", terr ? -1 : 0);
    report(fd, "clone3", ::syscall(SYS_clone3, nullptr, 0));
    long ns = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (ns == 0) ::_exit(0);
    if (ns > 0) ::waitpid(static_cast<pid_t>(ns), nullptr, 0);
    report(fd, "clone_newuser", ns);
    report(fd, "unshare_newuser", ::unshare(CLONE_NEWUSER));
    report(fd, "keyctl", ::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
                                   KEY_SPEC_SESSION_KEYRING, 0));
    report(fd, "add_key", ::syscall(SYS_add_key, "user", "togo", "x", 1,
                                    KEY_SPEC_SESSION_KEYRING));
    report(fd, "bpf", ::syscall(SYS_bpf, 0, nullptr, 0));
    report(fd, "init_module", ::syscall(SYS_init_module, nullptr, 0, ""));
    report(fd, "finit_module", ::syscall(SYS_finit_module, -1, "", 0));
    report(fd, "mount", ::mount("none", "/nonexistent-togo", "tmpfs", 0, nullptr));
    report(fd, "setns", ::setns(-1, 0));
    report(fd, "io_uring_setup", ::syscall(SYS_io_uring_setup, 1, nullptr));
    report(fd, "userfaultfd", ::syscall(SYS_userfaultfd, 0));
    report(fd, "kexec_load", ::syscall(SYS_kexec_load, 0, 0, nullptr, 0));
    report(fd, "personality_query", ::personality(0xffffffff));
    report(fd, "personality_query_high", ::syscall(SYS_personality, ~0UL));
    report(fd, "personality_norandom", ::personality(ADDR_NO_RANDOMIZE));
    report(fd, "socket_unix", ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    report(fd, "socket_vsock", ::socket(AF_VSOCK, SOCK_STREAM, 0));
    report(fd, "socket_vsock_high", ::syscall(SYS_socket, (1UL << 32) | AF_VSOCK, SOCK_STREAM, 0));
    int n = 0;
    report(fd, "ioctl_fionread", ::ioctl(fd, FIONREAD, &n));
    report(fd, "ioctl_tiocsti", ::ioctl(null, TIOCSTI, &c));
    report(fd, "ioctl_tiocsti_high", ::syscall(SYS_ioctl, null, (1UL << 32) | TIOCSTI, &c));
    char mine = 'm', copy = 0;
    iovec local{&copy, 1}, remote{&mine, 1};
    report(fd, "process_vm_readv", ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0));
    report(fd, "ptrace_bad_request", ::syscall(SYS_ptrace, 0x7fff, ::getpid(), 0, 0));
    report(fd, "unknown_syscall", ::syscall(1000));
    report(fd, "x32_getpid", ::syscall(0x40000000 | SYS_getpid));
    if (has_i386) {
      auto r = [](long rc) { return rc < 0 ? (errno = static_cast<int>(-rc), -1L) : 0L; };
      report(fd, "i386_getpid", r(int80(kI386Getpid)));
      report(fd, "i386_keyctl", r(int80(kI386Keyctl, KEYCTL_GET_KEYRING_ID,
                                        KEY_SPEC_SESSION_KEYRING)));
      report(fd, "i386_unshare", r(int80(kI386Unshare, CLONE_NEWUSER)));
      report(fd, "i386_unknown", r(int80(1000)));
    }
  });
}

// Runs a classic BPF program on one seccomp_data, as the kernel would
// (only the instructions the filter uses). Returns the SECCOMP_RET_* value.
uint32_t run_bpf(const std::vector<sock_filter>& code, const seccomp_data& data) {
  uint32_t acc = 0;
  for (size_t pc = 0; pc < code.size(); pc++) {
    const sock_filter& f = code[pc];
    switch (f.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        std::memcpy(&acc, reinterpret_cast<const char*>(&data) + f.k, 4);
        break;
      case BPF_JMP | BPF_JA: pc += f.k; break;
      case BPF_JMP | BPF_JEQ | BPF_K: pc += acc == f.k ? f.jt : f.jf; break;
      case BPF_JMP | BPF_JGT | BPF_K: pc += acc > f.k ? f.jt : f.jf; break;
      case BPF_JMP | BPF_JGE | BPF_K: pc += acc >= f.k ? f.jt : f.jf; break;
      case BPF_JMP | BPF_JSET | BPF_K: pc += (acc & f.k) ? f.jt : f.jf; break;
      case BPF_RET | BPF_K: return f.k;
      default: ADD_FAILURE() << "unexpected instruction " << f.code; return 0;
    }
  }
  ADD_FAILURE() << "fell off the end";
  return 0;
}

constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;
constexpr uint32_t kEperm = SECCOMP_RET_ERRNO | EPERM;
constexpr uint32_t kEnosys = SECCOMP_RET_ERRNO | ENOSYS;

// What the profile says for a call with all-zero arguments.
uint32_t expected(uint32_t arch, int nr, bool privileged, int top) {
  if (nr > top) return kEnosys;
  char* name = seccomp_syscall_resolve_num_arch(arch, nr);
  std::string n = name ? name : "";
  std::free(name);
  if (!privileged && n == "clone3") return kEnosys;
  auto allowed = allowed_syscalls(privileged);
  return std::count(allowed.begin(), allowed.end(), n) ? kAllow : kEperm;
}

// The architectures the filter has rules for.
std::vector<uint32_t> filter_arches() {
#if defined(__x86_64__)
  return {AUDIT_ARCH_X86_64, AUDIT_ARCH_I386};
#elif defined(__aarch64__)
  return {AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM};
#else
  return {seccomp_arch_native()};
#endif
}

TEST(Seccomp, EverySyscallNumberGetsTheProfilesAnswer) {
  for (bool privileged : {false, true}) {
    auto program = build_default_filter(privileged);
    ASSERT_TRUE(program.has_value()) << program.error().message;
    for (uint32_t arch : filter_arches()) {
      int top = 0;
      for (int nr = 0; nr < 1024; nr++)
        if (char* name = seccomp_syscall_resolve_num_arch(arch, nr)) {
          std::free(name);
          top = nr;  // the largest number any list could name
        }
      int checked = 0;
      for (int nr = 0; nr <= top + 8; nr++) {
        seccomp_data d{};
        d.arch = arch;
        d.nr = nr;
        uint32_t want = expected(arch, nr, privileged, top);
        uint32_t got = run_bpf(program->code, d);
        // Numbers above the profile's highest named call may still be
        // libseccomp-known; those get ENOSYS rather than EPERM.
        if (got == kEnosys && want == kEperm) continue;
        EXPECT_EQ(got, want) << "arch " << std::hex << arch << std::dec << " nr " << nr
                             << " privileged " << privileged;
        checked++;
      }
      EXPECT_GT(checked, 300);
    }
#if defined(__x86_64__)
    seccomp_data x32{};
    x32.arch = AUDIT_ARCH_X86_64;
    x32.nr = 0x40000000 | SYS_getpid;
    EXPECT_EQ(run_bpf(program->code, x32), kEnosys);
    seccomp_data other{};
    other.arch = AUDIT_ARCH_AARCH64;
    EXPECT_EQ(run_bpf(program->code, other), static_cast<uint32_t>(SECCOMP_RET_KILL_PROCESS));
#endif
  }
}

// The calls decided by an argument, on every architecture the filter
// covers: the kernel's probe below reaches only the native entry point.
TEST(Seccomp, ArgumentRulesGiveTheirAnswerOnEveryArchitecture) {
  struct Case {
    const char* call;
    int arg;
    uint64_t value;
    uint32_t want;
  } cases[] = {
      {"personality", 0, 0x0, kAllow},
      {"personality", 0, 0x8, kAllow},
      {"personality", 0, 0x20008, kAllow},
      {"personality", 0, 0xffffffff, kAllow},
      {"personality", 0, ADDR_NO_RANDOMIZE, kEperm},
      {"personality", 0, READ_IMPLIES_EXEC, kEperm},
      {"ioctl", 1, FIONREAD, kAllow},
      {"ioctl", 1, TIOCSTI, kEperm},
      {"ioctl", 1, TIOCLINUX, kEperm},
      {"socket", 0, AF_UNIX, kAllow},
      {"socket", 0, AF_VSOCK, kEperm},
      {"clone", 0, SIGCHLD, kAllow},
      {"clone", 0, CLONE_VM | CLONE_THREAD | CLONE_SIGHAND, kAllow},
      {"clone", 0, CLONE_NEWUSER | SIGCHLD, kEperm},
      {"clone", 0, CLONE_NEWNS, kEperm},
  };
  auto program = build_default_filter(/*privileged=*/false);
  ASSERT_TRUE(program.has_value()) << program.error().message;
  int checked = 0;
  for (uint32_t arch : filter_arches())
    for (const Case& c : cases) {
      int nr = seccomp_syscall_resolve_name_arch(arch, c.call);
      if (nr < 0) continue;  // multiplexed through socketcall() here
      seccomp_data d{};
      d.arch = arch;
      d.nr = nr;
      d.args[c.arg] = c.value;
      EXPECT_EQ(run_bpf(program->code, d), c.want)
          << c.call << " arg" << c.arg << "=" << std::hex << c.value << " arch " << arch;
      checked++;
    }
  // Every case but socket() where it is multiplexed, on each architecture.
  EXPECT_GE(checked, 14 * static_cast<int>(filter_arches().size()));
#if defined(__x86_64__)
  // i386's direct socket() (libseccomp names only the multiplexed one).
  constexpr uint32_t kI386Socket = 359;
  for (auto [family, want] : {std::pair{uint64_t{AF_VSOCK}, kEperm}, {uint64_t{AF_UNIX}, kAllow}}) {
    seccomp_data d{};
    d.arch = AUDIT_ARCH_I386;
    d.nr = kI386Socket;
    d.args[0] = family;
    EXPECT_EQ(run_bpf(program->code, d), want) << "i386 socket family " << family;
  }
#endif
}

TEST(Seccomp, FilterFitsTheKernelLimit) {
  for (bool privileged : {false, true}) {
    auto program = build_default_filter(privileged);
    ASSERT_TRUE(program.has_value()) << program.error().message;
    EXPECT_GT(program->code.size(), 100u);
    EXPECT_LE(program->code.size(), static_cast<size_t>(BPF_MAXINSNS));
  }
}

TEST(Seccomp, NeverAllowedCallsAreInNoAllowList) {
  auto allowed = allowed_syscalls(/*privileged=*/true);
  for (auto name : never_allowed_syscalls())
    EXPECT_EQ(std::count(allowed.begin(), allowed.end(), name), 0) << name;
  auto plain = allowed_syscalls(false);
  for (auto name : {"mount", "umount2", "pivot_root", "unshare", "setns", "bpf", "ptrace",
                    "open_by_handle_at", "clone3", "reboot", "init_module", "syslog"}) {
    bool in_plain = std::count(plain.begin(), plain.end(), name) > 0;
    EXPECT_EQ(in_plain, std::string_view(name) == "ptrace") << name;
  }
}

TEST(Seccomp, DefaultFilterBlocksTheEscapesAndKeepsOrdinaryCalls) {
  auto r = probe(/*privileged=*/false);
  ASSERT_EQ(r["no_new_privs"], 0);
  ASSERT_EQ(r["install"], 0);
  for (auto name : {"getpid", "read", "write", "fork", "pthread_create", "personality_query",
                    "personality_query_high", "socket_unix", "ioctl_fionread",
                    "process_vm_readv"})
    EXPECT_EQ(r[name], 0) << name;
  for (auto name : {"clone_newuser", "unshare_newuser", "keyctl", "add_key", "bpf",
                    "init_module", "finit_module", "mount", "setns", "io_uring_setup",
                    "userfaultfd", "kexec_load", "personality_norandom", "socket_vsock",
                    "socket_vsock_high", "ioctl_tiocsti", "ioctl_tiocsti_high"})
    EXPECT_EQ(r[name], EPERM) << name;
  // Not refused by the filter: the kernel's own answer comes back.
  EXPECT_EQ(r["ptrace_bad_request"], ESRCH);
  for (auto name : {"clone3", "unknown_syscall", "x32_getpid"}) EXPECT_EQ(r[name], ENOSYS) << name;
  if (r.count("i386_getpid")) {
    EXPECT_EQ(r["i386_getpid"], 0);
    EXPECT_EQ(r["i386_keyctl"], EPERM);
    EXPECT_EQ(r["i386_unshare"], EPERM);
    EXPECT_EQ(r["i386_unknown"], ENOSYS);
  } else {
    GTEST_LOG_(INFO) << "no i386 syscall entry on this kernel; int 0x80 not checked";
  }
}

TEST(Seccomp, PrivilegedFilterOpensTheCapabilityGatedCalls) {
  auto r = probe(/*privileged=*/true);
  ASSERT_EQ(r["install"], 0);
  EXPECT_EQ(r["setns"], EBADF);   // the kernel's answer, not the filter's
  EXPECT_EQ(r["clone3"], EINVAL);  // likewise (a size of 0)
  for (auto name : {"keyctl", "add_key", "io_uring_setup", "userfaultfd", "kexec_load",
                    "personality_norandom", "socket_vsock", "ioctl_tiocsti"})
    EXPECT_EQ(r[name], EPERM) << name;
  EXPECT_EQ(r["pthread_create"], 0);
}

}  // namespace
}  // namespace togo::runtime
