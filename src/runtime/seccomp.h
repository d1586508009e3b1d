// The seccomp filter every env runs under: an allowlist with the effect of
// the default profile of Docker and Podman.
//
// What it blocks, and why (the reasons are the engines' and the kernel's):
// - Kernel state that is not namespaced, so an env would change the host:
//   the keyring (add_key, request_key, keyctl), kernel modules (init_module,
//   finit_module, delete_module, create_module, query_module,
//   get_kernel_syms), kexec_load and kexec_file_load, reboot, the clock
//   (settimeofday, stime, clock_settime; adjtimex and clock_adjtime stay
//   allowed because setting through them needs CAP_SYS_TIME, which no env
//   gets), swapon/swapoff, acct, syslog, quotactl, nfsservctl, _sysctl.
// - Ways around the other confinement: mount and the new mount API (fsopen,
//   fsconfig, fsmount, fspick, move_mount, open_tree, mount_setattr),
//   umount, pivot_root, unshare, setns, clone/clone3 with CLONE_NEW* flags,
//   open_by_handle_at (the "shocker" escape), sethostname/setdomainname.
// - Large attack surface with a history of kernel exploits: bpf,
//   perf_event_open, userfaultfd, io_uring_* (Docker blocks it since 2023;
//   its operations also bypass any syscall filter), lookup_dcookie,
//   fanotify_init, kcmp, pidfd_getfd, process_madvise, uselib, vm86, iopl,
//   ioperm, vhangup, the NUMA policy calls, move_pages, migrate_pages.
// - personality() except the harmless values (so no ADDR_NO_RANDOMIZE or
//   READ_IMPLIES_EXEC), socket(AF_VSOCK) (vsock is not namespaced: it
//   reaches the hypervisor and local VMs), and ioctl TIOCSTI/TIOCLINUX
//   (typing into a terminal the env shares with the host; Flatpak's rule,
//   not Docker's). These compare only the low 32 bits, as the kernel reads
//   them, so high bits set by a caller cannot slip a value past.
//
// Answers: EPERM for every call the profile knows and does not allow;
// ENOSYS for clone3 (libc then falls back to clone, whose flags a filter
// can see) and for every call newer than any the profile names (as runc
// does: libc falls back instead of failing). x32 calls get ENOSYS, as on a
// kernel built without x32. i386 calls (int 0x80) go through the same
// rules by name (32-bit programs in an amd64 env keep working; Docker does
// the same); on arm64, 32-bit arm likewise. One gap remains on i386, as in
// Docker: socketcall() carries socket()'s arguments behind a pointer, so
// AF_VSOCK cannot be refused there.
//
// ptrace, process_vm_readv and process_vm_writev are allowed: since Linux
// 4.8 the filter is re-checked after a tracer changes a syscall, so tracing
// cannot bypass it, and gdb/strace work (Docker's rule). A traced process
// can only be one inside the env: the pid namespace hides the host's.
//
// privileged: the profile as Docker evaluates it for a process that holds
// every capability: the namespace, mount, module, time, ptrace-family,
// NUMA, raw I/O and reboot calls are allowed. The keyring, kexec,
// userfaultfd, io_uring, swap, vsock, TIOCSTI and personality rules stay.
// (Docker and Podman install no filter at all with --privileged.)
#pragma once

#include <linux/filter.h>

#include <string_view>
#include <vector>

#include "base/error.h"

namespace togo::runtime {

/// A classic BPF program for SECCOMP_SET_MODE_FILTER, built in the parent.
struct SeccompProgram {
  std::vector<sock_filter> code;
};

/// Builds the default filter for this machine's architecture and its
/// 32-bit compat one (x86_64 + i386, or arm64 + arm). Pure computation over
/// libseccomp's syscall tables, about 0.3 ms; ~220 instructions. Fails if
/// libseccomp does not know the architecture, or if the profile outgrew the
/// layout (a jump within one architecture's block past 255 instructions).
Result<SeccompProgram> build_default_filter(bool privileged);

/// Installs `program` on the calling thread. Allocation-free, for the child
/// between clone and exec. The caller must have set no_new_privs first (or
/// hold CAP_SYS_ADMIN). Returns 0, or -1 with errno set.
int install_filter(const SeccompProgram& program);

/// Every syscall name the profile allows, with or without a condition on
/// its arguments. For tests and `togo doctor`.
std::vector<std::string_view> allowed_syscalls(bool privileged);

/// Syscalls that no env may call, whatever its mode.
std::vector<std::string_view> never_allowed_syscalls();

}  // namespace togo::runtime
