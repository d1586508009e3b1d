// Whether an env runs, as its lock and its init's control socket say.
#pragma once

#include <string>

#include "store/catalog.h"
#include "store/store.h"

namespace togo::cli {

enum class EnvState {
  kStopped,  // nothing holds the env's lock
  kRunning,  // its init holds the lock and serves sessions
  kIdle,     // up only because it lingers after its last session
  kEnding,   // its init holds the lock but takes no more sessions: on its way out
};

/// Running means the env's init holds the env's lock.
bool is_running(store::Store& st, const store::EnvRecord& env);

EnvState env_state(store::Store& st, const store::EnvRecord& env);

/// As `togo ls` shows it: an env on its way out still runs.
const char* state_name(EnvState s);

}  // namespace togo::cli
