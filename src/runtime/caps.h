// Capabilities an env keeps, and the calls that take the rest away.
//
// The default set is Podman's (containers.conf default_capabilities):
// CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, NET_BIND_SERVICE, SETFCAP,
// SETGID, SETPCAP, SETUID, SYS_CHROOT. Docker adds three that togo leaves
// out, as Podman does since 4.0:
// - MKNOD: Docker relies on the devices cgroup to stop a container that
//   makes /dev/sda from opening it; togo cannot count on one (rootless, or
//   a host without delegation), so the capability itself goes.
// - NET_RAW: the default network is the host's; with NET_RAW, root in a
//   root-started env could sniff and forge the host's traffic. ping then
//   needs the host's net.ipv4.ping_group_range to admit ICMP sockets.
// - AUDIT_WRITE: only for writing the host's audit log.
// Everything else (SYS_ADMIN, SYS_PTRACE, SYS_MODULE, NET_ADMIN, ...) is
// dropped from every set, the bounding set included, so no exec of a file
// with capabilities or setuid bit can bring it back. Ambient capabilities
// are cleared: a non-root user inside has none, as in Docker.
//
// --privileged keeps every capability (CapSet::all).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace togo::runtime {

/// A set of capabilities as a bitmask: bit N is capability N (CAP_CHOWN = 0).
struct CapSet {
  uint64_t bits = 0;

  bool has(int cap) const { return cap >= 0 && cap < 64 && (bits >> cap & 1); }
  CapSet& add(int cap) {
    if (cap >= 0 && cap < 64) bits |= uint64_t{1} << cap;
    return *this;
  }
  CapSet& remove(int cap) {
    if (cap >= 0 && cap < 64) bits &= ~(uint64_t{1} << cap);
    return *this;
  }
  bool operator==(const CapSet&) const = default;

  /// Every capability up to and including `last_cap`.
  static CapSet all(int last_cap);
};

/// The set container engines grant by default (see the note above).
CapSet default_caps();

/// The kernel's highest capability number, from
/// /proc/sys/kernel/cap_last_cap; read in the parent and passed to
/// apply_caps. Falls back to the number togo was built with.
int read_last_cap();

/// "CAP_SYS_ADMIN", "sys_admin" or "SYS_ADMIN" to 21; nullopt if unknown.
std::optional<int> cap_from_name(std::string_view name);
/// "chown,dac_override,..." in capability order (numbers for unnamed ones).
std::string to_string(const CapSet& caps);

/// In the child, before exec: drops every capability not in `keep` from the
/// bounding set (0..last_cap), clears the ambient set, and sets effective,
/// permitted and inheritable to `keep` (less anything the process does not
/// hold). Needs CAP_SETPCAP to drop from the bounding set. Allocation-free
/// raw syscalls. Returns 0, or -1 with errno set.
int apply_caps(const CapSet& keep, int last_cap);

/// In the child: no exec may grant privileges again (setuid bits and file
/// capabilities stop working); required before install_filter for a
/// process without CAP_SYS_ADMIN. Returns 0, or -1 with errno set.
int set_no_new_privs();

}  // namespace togo::runtime
