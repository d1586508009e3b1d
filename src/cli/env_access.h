// Finding an environment and reaching it: the store, its records, its
// directory, and whether its init is up.
#pragma once

#include <optional>
#include <string>

#include "base/fd.h"
#include "cli/commands.h"
#include "cli/settings.h"
#include "runtime/idmap_plan.h"
#include "runtime/launcher.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::cli {

struct EnvAccess {
  store::Store store;
  store::EnvRecord env;
  store::ImageRecord image;
  Settings settings;
  runtime::IdentityPlan identity;  // who runs inside, and the id maps (kEnter only)
  Fd dir;  // envs/<id>
};

/// What a verb does with the env: enter it (start it, run a session, read
/// its files as it does), which needs who runs inside and the host's user
/// database; or only look at it (stop, logs, ps), which does not.
enum class Purpose { kEnter, kLook };

/// Opens the store and finds the env called `name` (kNotFound otherwise).
Result<EnvAccess> open_env(Context& c, const std::string& name, Purpose purpose = Purpose::kEnter);

/// open_env for `togo run` and `togo exec`: the env and its image as the
/// run record copied from the catalog says (store/run_cache.h) when that
/// copy is current, without opening the catalog; e.store has no catalog.
Result<EnvAccess> open_env_to_run(Context& c, const std::string& name);

/// The error for an env name the store does not have.
std::unexpected<Error> no_such_env(const std::string& name);

/// The plan that starts `env`'s init.
Result<runtime::Plan> env_plan(EnvAccess& e);

/// Starts the env's init. Waits for a previous init of the env to be gone
/// first. Returns nothing, and no error, if another togo holds the env's lock
/// (it is starting or stopping): try connecting again. Once the env runs,
/// the caller removes what the start moved aside (store::remove_retired_work).
std::expected<std::optional<runtime::StartedEnv>, runtime::LaunchFailure> start_env(
    EnvAccess& e, bool persistent, int first);

/// A session request for `argv` from this terminal, with the env's settings
/// and identity.
runtime::SpawnRequest session_request(const EnvAccess& e, const std::vector<std::string>& argv);

}  // namespace togo::cli
