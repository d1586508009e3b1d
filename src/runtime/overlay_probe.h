// Whether overlayfs can assemble an env's root on this host and store.
#pragma once

#include "base/error.h"
#include "runtime/plan.h"

namespace togo::runtime {

/// Mounts the spec's overlay in a throwaway mount namespace (and user
/// namespace when rootless) and reports why it failed, if it did.
Result<void> probe_overlay(const RunSpec& spec);

}  // namespace togo::runtime
