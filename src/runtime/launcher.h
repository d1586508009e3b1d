// The parent side of a run: clone into new namespaces, map ids, wait, and
// pass the command's exit status through.
#pragma once

#include "base/error.h"
#include "runtime/plan.h"

namespace togo::runtime {

/// Why a command could not run, told apart so the CLI can use the
/// conventional exit codes (125 togo, 126 cannot execute, 127 not found).
struct LaunchFailure {
  int exit_code;  // 125, 126 or 127
  Error error;
};

/// Runs `plan`. Returns the command's exit status (128+N if a signal N
/// ended it), or the failure.
std::expected<int, LaunchFailure> launch(const Plan& plan);

}  // namespace togo::runtime
