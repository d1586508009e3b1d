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

/// Overlayfs empties the "work" directory inside an env's work/ at every
/// mount by removing it and making it again; on a drive mounted with
/// discard that removal waits for the drive. Before a mount an empty one
/// is moved aside instead (one that is missing or holds something is left
/// to overlayfs), and the next
/// remove_retired_work, run while the env starts its command, removes it
/// off the path of the start. `env_dir` is envs/<id>.
Result<void> retire_overlay_work(int env_dir);
/// Removes what retire_overlay_work moved aside, from this start and any
/// earlier one that did not get to it; errors are left for the next one.
void remove_retired_work(int env_dir);

/// Forgets the env in the catalog, then removes its directory.
Result<void> remove_env(Store& store, const EnvRecord& env);

}  // namespace togo::store
