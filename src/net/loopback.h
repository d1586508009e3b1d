// Bringing up "lo" in a new network namespace: the only setup `none` needs,
// and harmless with `private` (the helpers do it too).
#pragma once

namespace togo::net {

/// Sets IFF_UP on "lo" in the caller's network namespace with
/// ioctl(SIOCGIFFLAGS/SIOCSIFFLAGS). Allocation-free and async-signal-safe:
/// for the child between clone and exec. Returns 0 or an errno value.
int loopback_up() noexcept;

}  // namespace togo::net
