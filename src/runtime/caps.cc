#include "runtime/caps.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>

namespace togo::runtime {

namespace {

// Indexed by capability number, as in linux/capability.h.
constexpr std::string_view kNames[] = {
    "chown",           "dac_override",   "dac_read_search", "fowner",
    "fsetid",          "kill",           "setgid",          "setuid",
    "setpcap",         "linux_immutable", "net_bind_service", "net_broadcast",
    "net_admin",       "net_raw",        "ipc_lock",        "ipc_owner",
    "sys_module",      "sys_rawio",      "sys_chroot",      "sys_ptrace",
    "sys_pacct",       "sys_admin",      "sys_boot",        "sys_nice",
    "sys_resource",    "sys_time",       "sys_tty_config",  "mknod",
    "lease",           "audit_write",    "audit_control",   "setfcap",
    "mac_override",    "mac_admin",      "syslog",          "wake_alarm",
    "block_suspend",   "audit_read",     "perfmon",         "bpf",
    "checkpoint_restore",
};
static_assert(std::size(kNames) == CAP_LAST_CAP + 1);

uint64_t up_to(int last_cap) {
  if (last_cap >= 63) return ~uint64_t{0};
  if (last_cap < 0) return 0;
  return (uint64_t{1} << (last_cap + 1)) - 1;
}

}  // namespace

CapSet CapSet::all(int last_cap) { return CapSet{up_to(last_cap)}; }

CapSet default_caps() {
  CapSet s;
  for (int cap : {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL,
                  CAP_NET_BIND_SERVICE, CAP_SETFCAP, CAP_SETGID, CAP_SETPCAP, CAP_SETUID,
                  CAP_SYS_CHROOT})
    s.add(cap);
  return s;
}

int read_last_cap() {
  int fd = ::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return CAP_LAST_CAP;
  char buf[16];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  int value = 0, digits = 0;
  for (ssize_t i = 0; i < n && std::isdigit(static_cast<unsigned char>(buf[i])); i++, digits++)
    value = value * 10 + (buf[i] - '0');
  if (digits == 0 || digits > 2 || value > 63) return CAP_LAST_CAP;
  return value;
}

std::optional<int> cap_from_name(std::string_view name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view n = lower;
  if (n.starts_with("cap_")) n.remove_prefix(4);
  for (size_t i = 0; i < std::size(kNames); i++)
    if (kNames[i] == n) return static_cast<int>(i);
  return std::nullopt;
}

std::string to_string(const CapSet& caps) {
  std::string out;
  for (int cap = 0; cap < 64; cap++) {
    if (!caps.has(cap)) continue;
    if (!out.empty()) out += ',';
    out += static_cast<size_t>(cap) < std::size(kNames) ? std::string(kNames[cap])
                                                        : std::to_string(cap);
  }
  return out;
}

int apply_caps(const CapSet& keep, int last_cap) {
  if (last_cap < 0 || last_cap > 63) {
    errno = EINVAL;
    return -1;
  }
  // SECURITY: the bounding set first, while CAP_SETPCAP is still in the
  // effective set: a capability dropped here can never come back, not
  // through setuid root binaries nor file capabilities.
  for (int cap = 0; cap <= last_cap; cap++) {
    if (keep.has(cap) || ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0) continue;
    if (errno == EINVAL) continue;  // not known to this kernel
    // Without CAP_SETPCAP only a capability already gone (or one this
    // kernel does not know, which it then reports as EPERM) is no error.
    int err = errno;
    int present = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (present == 0 || (present < 0 && errno == EINVAL)) continue;
    errno = err;
    return -1;
  }
  // SECURITY: no ambient capability survives exec.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return -1;

  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) < 0) return -1;
  uint64_t permitted = data[0].permitted | uint64_t{data[1].permitted} << 32;
  // A capability the process does not hold cannot be kept; asking for it
  // would fail the whole capset.
  uint64_t bits = keep.bits & permitted & up_to(last_cap);
  for (int i = 0; i < 2; i++) {
    auto word = static_cast<uint32_t>(bits >> (32 * i));
    data[i].effective = data[i].permitted = data[i].inheritable = word;
  }
  // SECURITY: effective, permitted and inheritable become exactly `keep`.
  return static_cast<int>(::syscall(SYS_capset, &header, data));
}

int set_no_new_privs() {
  // SECURITY: exec can no longer raise privileges (setuid, file caps).
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

}  // namespace togo::runtime
