// The names of `togo doctor` checks that errors from the layers below it point
// at, so a start that fails for a host reason says where to read more:
//   togo: creating namespaces (clone): Operation not permitted (see: togo doctor, check
//   isolation.userns)
// The doctor's table (src/doctor/checks.cc) is built from these same
// constants, and its tests prove each one names a check.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace togo::host_check {

inline constexpr const char* kNamespaces = "isolation.namespaces";
inline constexpr const char* kUserns = "isolation.userns";
inline constexpr const char* kSubids = "isolation.subids";
inline constexpr const char* kOverlay = "isolation.overlay";
inline constexpr const char* kCgroups = "isolation.cgroups";
inline constexpr const char* kSeccomp = "isolation.seccomp";
inline constexpr const char* kNetHelpers = "network.helpers";

/// Every name above, for the doctor's tests.
inline constexpr const char* kReferenced[] = {kNamespaces, kUserns,  kSubids,    kOverlay,
                                              kCgroups,    kSeccomp, kNetHelpers};

/// " (see: togo doctor, check <id>)", the ending of a one-line error that a
/// host's lack caused.
inline std::string see(std::string_view id) {
  return " (see: togo doctor, check " + std::string(id) + ")";
}

/// Ends `e`'s message with see(id), once.
inline Error point_at(Error e, std::string_view id) {
  std::string ref = see(id);
  if (!e.message.ends_with(ref)) e.message += ref;
  return e;
}

}  // namespace togo::host_check
