// The filter is classic BPF generated here: for each architecture, a
// binary search over ranges of syscall numbers, with argument checks at the
// leaves. libseccomp provides only the syscall tables (names to numbers for
// each architecture); its own code generator takes ~6 ms for two
// architectures, which would dominate an env's start.
#include "runtime/seccomp.h"

#include <endian.h>
#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>  // libseccomp: only its syscall tables
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <string>
#include <utility>

namespace togo::runtime {

namespace {

// Allowed in every mode. Names a kernel or libseccomp does not know are
// skipped, so the list can name calls of every architecture.
constexpr const char* kAllowed[] = {
    // files and directories
    "access", "chdir", "chmod", "chown", "chown32", "chroot", "close", "close_range",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64",
    "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2",
    "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
    "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futimesat", "getcwd", "getdents",
    "getdents64", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listxattr",
    "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "mkdir",
    "mkdirat", "mknod", "mknodat", "name_to_handle_at", "newfstatat", "open", "openat",
    "openat2", "pread64", "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "removexattr", "rename", "renameat",
    "renameat2", "rmdir", "sendfile", "sendfile64", "splice", "stat", "stat64", "statfs",
    "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee",
    "truncate", "truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat",
    "utimensat_time64", "utimes", "vmsplice", "write", "writev", "cachestat",
    // memory
    "brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret",
    "mincore", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "msync",
    "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect",
    "process_mrelease", "remap_file_pages",
    // processes, threads, credentials (clone is allowed below, by its flags)
    "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "vfork", "getcpu",
    "get_robust_list", "set_robust_list", "get_thread_area", "set_thread_area",
    "set_tid_address", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "ugetrlimit",
    "getrusage", "getsid", "gettid", "getuid", "getuid32", "ioprio_get", "ioprio_set", "kill",
    "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64", "rseq",
    "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
    "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
    "sched_setscheduler", "sched_yield", "seccomp", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setpgid", "setpriority",
    "setregid", "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32",
    "setreuid", "setreuid32", "setrlimit", "setsid", "setuid", "setuid32", "uname", "wait4",
    "waitid", "waitpid", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "sysinfo", "times", "restart_syscall",
    // debugging: safe since Linux 4.8 re-checks the filter after a tracer's changes
    "ptrace", "process_vm_readv", "process_vm_writev",
    // signals (the old i386 forms too)
    "alarm", "pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn",
    "sigaction", "signal", "sigpending", "sigsuspend",
    // time: reading it (setting it through adjtimex needs CAP_SYS_TIME)
    "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
    "getitimer", "setitimer", "gettimeofday", "nanosleep", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64",
    // waiting and events
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "futex",
    "futex_time64", "futex_waitv", "futex_wait", "futex_wake", "futex_requeue", "poll",
    "ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select", "_newselect", "pipe",
    "pipe2", "getrandom",
    // POSIX AIO (io_uring is not here)
    "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
    "io_setup", "io_submit",
    // System V and POSIX IPC (the env has its own IPC namespace)
    "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt",
    "shmget",
    // sockets (socket itself, ioctl and personality are in kArgRules)
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
    "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send",
    "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socketcall", "socketpair",
    // architecture specific
    "arch_prctl", "modify_ldt", "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
    "breakpoint", "cacheflush", "set_tls",
};

// Allowed only with --privileged; each line is what Docker gates on one
// capability that the default set does not include.
constexpr const char* kPrivileged[] = {
    // CAP_SYS_ADMIN (pivot_root: Podman's profile; clone/clone3: any flags)
    "bpf", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
    "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
    "pivot_root", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
    "syslog", "umount", "umount2", "unshare",
    "reboot",                                            // CAP_SYS_BOOT
    "delete_module", "init_module", "finit_module",      // CAP_SYS_MODULE
    "acct",                                              // CAP_SYS_PACCT
    "kcmp", "pidfd_getfd", "process_madvise",            // CAP_SYS_PTRACE
    "iopl", "ioperm",                                    // CAP_SYS_RAWIO
    "settimeofday", "stime", "clock_settime", "clock_settime64",  // CAP_SYS_TIME
    "vhangup",                                           // CAP_SYS_TTY_CONFIG
    "get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node",  // CAP_SYS_NICE
    "open_by_handle_at",                                 // CAP_DAC_READ_SEARCH
};

// Never allowed. The filter refuses them because they are in no allow
// list; they are named so that they count as known to the profile (EPERM,
// not ENOSYS) and so that tests can check they stay out of the lists.
constexpr const char* kNeverAllowed[] = {
    "add_key", "request_key", "keyctl", "kexec_load", "kexec_file_load", "userfaultfd",
    "swapon", "swapoff", "uselib", "_sysctl", "nfsservctl", "get_kernel_syms", "query_module",
    "create_module", "vm86", "vm86old", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "move_pages", "migrate_pages", "ustat", "sysfs", "bdflush", "nice",
    "pciconfig_iobase", "pciconfig_read", "pciconfig_write", "tuxcall", "security",
    "afs_syscall", "putpmsg", "getpmsg", "vserver",
};

// SECURITY: without privileges, no clone may create a namespace (an env
// that could would get back every capability inside a new user ns).
// CLONE_NEWTIME (0x80) overlaps clone()'s exit-signal byte; it is reachable
// only through clone3 and unshare, which are refused. The kernel reads only
// the low 32 bits of clone()'s flags.
constexpr uint32_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
                                     CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;

// A call allowed or refused by one argument. Only the low 32 bits are
// compared: the kernel reads these arguments as int or unsigned int, so
// high bits set by a caller cannot slip a value past the filter.
struct ArgRule {
  const char* syscall;
  int arg;
  bool listed_allowed;  // true: only the listed values pass; false: they get EPERM
  uint32_t values[5];
  int count;
};
constexpr ArgRule kArgRules[] = {
    // SECURITY: Docker's personalities: PER_LINUX, PER_LINUX32, their
    // UNAME26 forms, and 0xffffffff (query). No ADDR_NO_RANDOMIZE, no
    // READ_IMPLIES_EXEC.
    {"personality", 0, true, {0x0, 0x8, 0x20000, 0x20008, 0xffffffff}, 5},
    // SECURITY: no typing into a terminal the env may share with the host.
    {"ioctl", 1, false, {TIOCSTI, TIOCLINUX}, 2},
    // SECURITY: vsock is not namespaced; it reaches the hypervisor and VMs.
    {"socket", 0, false, {AF_VSOCK}, 1},
};
// A rule without values would leave its leaf without a return.
static_assert(std::all_of(std::begin(kArgRules), std::end(kArgRules),
                          [](const ArgRule& a) { return a.count > 0 && a.count <= 5; }));

using Code = std::vector<sock_filter>;

// What the filter does with one syscall number.
enum class Rule : uint8_t { kDeny, kAllow, kUnknown, kClone, kArgs };

struct Range {
  uint32_t first;  // this rule holds from `first` to the next range's first - 1
  Rule rule;
  const ArgRule* args = nullptr;
};

constexpr uint32_t kArchOffset = offsetof(seccomp_data, arch);
constexpr uint32_t kNrOffset = offsetof(seccomp_data, nr);
// The low 32 bits of a syscall argument.
constexpr uint32_t arg_low(int i) {
  return static_cast<uint32_t>(offsetof(seccomp_data, args) + 8 * i +
                               (__BYTE_ORDER == __LITTLE_ENDIAN ? 0 : 4));
}

constexpr sock_filter ret(uint32_t action) { return BPF_STMT(BPF_RET | BPF_K, action); }
constexpr uint32_t kRetAllow = SECCOMP_RET_ALLOW;
constexpr uint32_t kRetEperm = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
constexpr uint32_t kRetEnosys = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);

void append(Code& to, const Code& from) { to.insert(to.end(), from.begin(), from.end()); }

// Skips the next `skip` instructions when the comparison `op` of the
// accumulator with `k` comes out as `when`, and falls through otherwise. A
// conditional jump reaches at most 255 instructions; farther ones go
// through an unconditional BPF_JA.
void jump_over(Code& out, uint16_t op, uint32_t k, size_t skip, bool when) {
  bool near = skip <= 255;
  uint8_t off = near ? static_cast<uint8_t>(skip) : 1;  // far: over the BPF_JA that follows
  uint8_t jt = when == near ? off : 0, jf = when == near ? 0 : off;
  out.push_back(BPF_JUMP(BPF_JMP | op | BPF_K, k, jt, jf));
  if (!near) out.push_back(BPF_STMT(BPF_JMP | BPF_JA, static_cast<uint32_t>(skip)));
}

// A block is built with symbolic jump targets, resolved once its length is
// known: the returns every leaf may end in are kept once, at the block's end,
// and jumped to, rather than repeated at each leaf. The kernel translates
// and compiles a filter at each install, in time that grows with its
// length; shared returns halve it.
enum class Ret : uint8_t { kAllow, kEperm, kEnosys };
constexpr uint32_t kRetActions[] = {kRetAllow, kRetEperm, kRetEnosys};  // by Ret
static_assert(static_cast<int>(Ret::kEnosys) + 1 == std::size(kRetActions));

// Where a conditional jump goes: an instruction of the block by index, or
// one of the shared returns.
struct Target {
  int index = -1;
  Ret ret = Ret::kEperm;
};
Target to(Ret r) { return {-1, r}; }

struct Insn {
  sock_filter f;
  Target jt, jf;  // conditional jumps only
};

struct Block {
  std::vector<Insn> code;
  int next() const { return static_cast<int>(code.size()); }
  void load(uint32_t offset) {
    code.push_back({BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset), {}, {}});
  }
  void jump(uint16_t op, uint32_t k, Target jt, Target jf) {
    code.push_back({BPF_JUMP(BPF_JMP | op | BPF_K, k, 0, 0), jt, jf});
  }
};

Ret simple_ret(Rule rule) {
  return rule == Rule::kAllow ? Ret::kAllow : rule == Rule::kUnknown ? Ret::kEnosys : Ret::kEperm;
}

// Emits what decides one range, unless a shared return does; returns where
// the decision starts.
Target leaf(Block& b, const Range& r) {
  Target start{b.next()};
  switch (r.rule) {
    case Rule::kAllow:
    case Rule::kDeny:
    case Rule::kUnknown: return to(simple_ret(r.rule));
    case Rule::kClone:
      b.load(arg_low(0));
      b.jump(BPF_JSET, kNamespaceFlags, to(Ret::kEperm), to(Ret::kAllow));
      return start;
    case Rule::kArgs: {
      const ArgRule& a = *r.args;
      Ret listed = a.listed_allowed ? Ret::kAllow : Ret::kEperm;
      Ret other = a.listed_allowed ? Ret::kEperm : Ret::kAllow;
      b.load(arg_low(a.arg));
      for (int j = 0; j < a.count; j++)
        b.jump(BPF_JEQ, a.values[j], to(listed),
               j + 1 < a.count ? Target{b.next() + 1} : to(other));
      return start;
    }
  }
  return to(Ret::kEperm);
}

// A binary search on the syscall number (in the accumulator) over ranges;
// returns where it starts.
Target search(Block& b, const std::vector<Range>& ranges, size_t lo, size_t hi) {
  if (hi - lo == 1) return leaf(b, ranges[lo]);
  size_t mid = lo + (hi - lo) / 2;
  int node = b.next();
  b.jump(BPF_JGE, ranges[mid].first, {}, {});
  Target left = search(b, ranges, lo, mid);
  Target right = search(b, ranges, mid, hi);
  b.code[static_cast<size_t>(node)].jt = right;
  b.code[static_cast<size_t>(node)].jf = left;
  return Target{node};
}

// The block's instructions with its shared returns appended and every
// target turned into an offset; fails if one lies beyond a conditional
// jump's reach (255 instructions).
Result<Code> resolve(const Block& b) {
  Code out;
  const int tail = b.next();
  auto offset = [&](int from, Target t, uint8_t& field) {
    int where = t.index >= 0 ? t.index : tail + static_cast<int>(t.ret);
    int off = where - (from + 1);
    if (off < 0 || off > 255) return false;
    field = static_cast<uint8_t>(off);
    return true;
  };
  for (int i = 0; i < tail; i++) {
    sock_filter f = b.code[static_cast<size_t>(i)].f;
    if (BPF_CLASS(f.code) == BPF_JMP && BPF_OP(f.code) != BPF_JA &&
        (!offset(i, b.code[static_cast<size_t>(i)].jt, f.jt) ||
         !offset(i, b.code[static_cast<size_t>(i)].jf, f.jf)))
      return error("building the seccomp filter: a jump reaches beyond 255 instructions");
    out.push_back(f);
  }
  for (uint32_t action : kRetActions) out.push_back(ret(action));
  return out;
}

// Syscall numbers of one architecture, from libseccomp's tables.
class Numbers {
 public:
  explicit Numbers(uint32_t arch)
      : arch_(arch),
        multiplexed_(seccomp_syscall_resolve_name_arch(arch, "socketcall") >= 0 ||
                     seccomp_syscall_resolve_name_arch(arch, "ipc") >= 0) {}

  // The number of `name`; -1 if this architecture has no such call.
  int operator()(const char* name) {
    int nr = seccomp_syscall_resolve_name_arch(arch_, name);
    if (nr >= 0) return nr;
    if (!multiplexed_ || nr > __PNR_socket + 1 || nr <= __PNR_shmget - 100) return -1;
    // Where socketcall() and ipc() exist (i386), libseccomp names the socket
    // and System V IPC calls by pseudo numbers for their multiplexed form;
    // the kernel also has them as direct calls (socket = 359), which only a
    // lookup by number finds.
    if (!scanned_) scan();
    for (auto [pseudo, direct] : direct_)
      if (pseudo == nr) return direct;
    return -1;
  }

 private:
  // The direct calls all sit below this on every architecture.
  static constexpr int kScanLimit = 512;

  void scan() {
    scanned_ = true;
    for (int n = 0; n < kScanLimit; n++) {
      char* name = seccomp_syscall_resolve_num_arch(arch_, n);
      if (!name) continue;
      int pseudo = seccomp_syscall_resolve_name_arch(arch_, name);
      std::free(name);
      if (pseudo != n) direct_.push_back({pseudo, n});
    }
  }

  uint32_t arch_;
  bool multiplexed_;
  bool scanned_ = false;
  std::vector<std::pair<int, int>> direct_;  // pseudo number, direct number
};

// The ranges of syscall numbers of one architecture and their rules.
// Numbers above every call the profile names get ENOSYS (as runc does:
// libc falls back instead of failing); this also catches x32, whose
// numbers carry bit 30.
std::vector<Range> ranges_for(uint32_t arch, bool privileged) {
  Numbers number(arch);
  std::vector<std::pair<int, Range>> rules;  // by number
  int top = 0;
  auto note = [&](const char* name) {
    int nr = number(name);
    top = std::max(top, nr);
    return nr;
  };
  auto add = [&](const char* name, Range r) {
    if (int nr = note(name); nr >= 0) rules.push_back({nr, r});
  };

  for (const char* name : kAllowed) add(name, {0, Rule::kAllow});
  if (privileged) {
    for (const char* name : kPrivileged) add(name, {0, Rule::kAllow});
    add("clone", {0, Rule::kAllow});
  } else {
    for (const char* name : kPrivileged) note(name);
    add("clone", {0, Rule::kClone});
    // SECURITY: clone3 keeps its flags behind a pointer the filter cannot
    // read: ENOSYS, and libc falls back to clone.
    add("clone3", {0, Rule::kUnknown});
  }
  for (const char* name : kNeverAllowed) note(name);
  for (const ArgRule& a : kArgRules) add(a.syscall, {0, Rule::kArgs, &a});
  // Later entries win for a number listed twice (an arg rule over a plain allow).
  std::stable_sort(rules.begin(), rules.end(),
                   [](auto& x, auto& y) { return x.first < y.first; });

  std::vector<Range> ranges;
  auto push = [&](uint32_t first, Range r) {
    r.first = first;
    bool simple = r.rule != Rule::kClone && r.rule != Rule::kArgs;
    if (!ranges.empty() && ranges.back().first == first) ranges.pop_back();
    if (simple && !ranges.empty() && ranges.back().rule == r.rule) return;  // same as before
    ranges.push_back(r);
  };
  push(0, {0, Rule::kDeny});
  for (size_t i = 0; i < rules.size(); i++) {
    auto nr = static_cast<uint32_t>(rules[i].first);
    if (i + 1 < rules.size() && rules[i + 1].first == rules[i].first) continue;
    push(nr, rules[i].second);
    push(nr + 1, {0, Rule::kDeny});
  }
  push(static_cast<uint32_t>(top) + 1, {0, Rule::kUnknown});
  return ranges;
}

}  // namespace

std::vector<std::string_view> allowed_syscalls(bool privileged) {
  std::vector<std::string_view> names(std::begin(kAllowed), std::end(kAllowed));
  names.push_back("clone");
  for (const ArgRule& a : kArgRules) names.push_back(a.syscall);
  if (privileged) names.insert(names.end(), std::begin(kPrivileged), std::end(kPrivileged));
  return names;
}

std::vector<std::string_view> never_allowed_syscalls() {
  return {std::begin(kNeverAllowed), std::end(kNeverAllowed)};
}

Result<SeccompProgram> build_default_filter(bool privileged) {
  // The native architecture and its 32-bit compat one; x32 is not a
  // separate architecture to the kernel: its numbers fall in the ENOSYS
  // range of x86_64.
  std::vector<uint32_t> arches = {seccomp_arch_native()};
  if (arches[0] == SCMP_ARCH_X86_64) arches.push_back(SCMP_ARCH_X86);
  if (arches[0] == SCMP_ARCH_AARCH64) arches.push_back(SCMP_ARCH_ARM);
  if (seccomp_syscall_resolve_name_arch(arches[0], "read") < 0)
    return error("building the seccomp filter: libseccomp does not know this architecture");

  SeccompProgram p;
  p.code.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kArchOffset));
  for (uint32_t arch : arches) {
    Block b;
    b.load(kNrOffset);
    std::vector<Range> ranges = ranges_for(arch, privileged);
    if (Target first = search(b, ranges, 0, ranges.size()); first.index < 0)
      b.jump(BPF_JEQ, 0, first, first);  // one range for every number: its return
    Code block = TRY(resolve(b));
    // SECURITY: syscall numbers mean something only with their architecture.
    jump_over(p.code, BPF_JEQ, arch, block.size(), false);
    append(p.code, block);
  }
  // SECURITY: any other architecture dies (only x86_64/i386 or arm64/arm
  // can reach this kernel's entry points).
  p.code.push_back(ret(SECCOMP_RET_KILL_PROCESS));
  if (p.code.size() > BPF_MAXINSNS)
    return error("building the seccomp filter: " + std::to_string(p.code.size()) +
                 " instructions, more than the kernel takes");
  return p;
}

int install_filter(const SeccompProgram& program) {
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.code.size());
  prog.filter = const_cast<sock_filter*>(program.code.data());
  // SECURITY: from here on every syscall of this process and its children
  // passes the filter; it cannot be removed, only narrowed.
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0) return 0;
  if (errno != ENOSYS) return -1;
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

}  // namespace togo::runtime
