// Writing id maps for a child in a new user namespace, from the parent.
//
// The caller's own id alone is written directly to /proc/<pid>/uid_map and
// gid_map (setgroups "deny" first, as the kernel requires of unprivileged
// writers). Anything more goes through the setuid helpers newuidmap and
// newgidmap, which check /etc/subuid and /etc/subgid themselves.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "runtime/idmap.h"
#include "runtime/idmap_plan.h"

namespace togo::runtime {

/// A helper program and whether it can do its job.
struct IdHelper {
  std::string path;     // "" if not found
  std::string problem;  // "" if usable; else what is wrong and how to fix it
};

/// Looks for `name` ("newuidmap" or "newgidmap") in `path_env` (a PATH
/// value), then /usr/bin and /bin, and checks it can gain the capability it
/// needs (`cap`: CAP_SETUID or CAP_SETGID): setuid root, or that capability
/// in its file capabilities; not on a nosuid mount; togo not running with
/// no_new_privs (which would stop either).
IdHelper find_id_helper(std::string_view name, std::string_view path_env, int cap);

/// Why the helper at `path` cannot gain `cap` (CAP_SETUID or CAP_SETGID):
/// neither setuid root nor given the capability as a file capability, on a
/// nosuid mount, or togo running with no_new_privs. "" if it can. Used by
/// find_id_helper and `togo doctor`.
std::string id_helper_problem(const std::string& path, int cap);

/// Everything plan_identity needs, read from this host: togo's ids, the
/// invoker (read_invoker), /etc/subuid, /etc/subgid and the helpers. Helpers
/// are only looked for when there are subordinate-id files to use.
Result<IdFacts> read_id_facts();

/// Writes the maps for `child`, a process that has just entered a new user
/// namespace and waits for its maps. Single own-id maps are written
/// directly; the others are handed to newuidmap/newgidmap, run in parallel.
/// The gid map is written with setgroups "deny" exactly when it is the
/// single own-gid line (IdentityPlan::set_groups is false). On error the
/// message names the file or the helper's command line and its own words;
/// the caller kills the child.
Result<void> write_id_maps(pid_t child, const std::vector<IdMapping>& uids,
                           const std::vector<IdMapping>& gids);

}  // namespace togo::runtime
