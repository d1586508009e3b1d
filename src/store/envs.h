// The directories of environments: created whole or not at all, removed
// after the catalog forgets them.
#pragma once

#include <functional>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "store/store.h"

namespace togo::store {

/// A new env's id: 16 random hex digits.
std::string new_env_id();

/// Creates a staging directory holding an env's skeleton (upper, work,
/// mount, run, lock). `fill` may add to it (e.g. a private rootfs copy);
/// then it is moved to envs/<id>, made durable, and the catalog records it.
Result<void> create_env(Store& store, const EnvRecord& env,
                        const std::function<Result<void>(const std::string& stage)>& fill);

/// Takes the env's run lock without waiting. Returns an empty Fd, and no
/// error, when another togo holds it (the env is running).
Result<Fd> try_lock_env(Store& store, const EnvRecord& env);

/// Forgets the env in the catalog, then removes its directory.
Result<void> remove_env(Store& store, const EnvRecord& env);

}  // namespace togo::store
