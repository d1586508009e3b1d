// Who a run is inside the env, decided as plain data: whether it needs a
// user namespace, the uid/gid maps, the ids the command runs as, and the
// notice to print when the host lacks something.
//
//                      host root                     not root
//   default            no user namespace; root       0 -> caller, 1.. -> subordinate ids
//   --user             no user namespace; the        0.. -> subordinate ids, own id -> itself
//                      sudo/doas user's uid, gid     (podman's keep-id)
//                      and host groups, else root
// Without subordinate ids (or without usable newuidmap/newgidmap) the map is
// the caller's id alone: {0 -> caller} or {caller -> caller}, and a notice
// says what is missing and how to add it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/idmap.h"
#include "runtime/userdb.h"

namespace togo::runtime {

/// What the decision depends on; read_id_facts() gathers it on a real host.
struct IdFacts {
  uint32_t uid = 0, gid = 0;   // togo's own ids (real = effective: togo is not setuid)
  Invoker invoker;             // who --user is (resolve_invoker)
  std::string subuid, subgid;  // contents of /etc/subuid and /etc/subgid ("" if missing)
  std::string uid_helper_problem,
      gid_helper_problem;  // why newuidmap/newgidmap cannot work; "" if they can
};

struct IdentityPlan {
  bool user_namespace = false;        // clone with CLONE_NEWUSER, then write_id_maps
  std::vector<IdMapping> uids, gids;  // for write_id_maps; empty without a user namespace
  // The command runs as uid:gid inside the env. The child sets up the env
  // as root inside (setresuid(0,0,0) first when uid is not 0 and the map has
  // 0), then before exec: setgroups(groups) if set_groups, setresgid(gid),
  // setresuid(uid).
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;  // supplementary groups, ids inside the env
  // False when /proc/<pid>/setgroups is "deny" (single-id gid map): the kernel
  // then refuses setgroups(2), so the child must not call it, and programs
  // that switch users (apt's _apt sandbox) fail inside.
  bool set_groups = true;
  // True for --user as someone other than root: show `user` in the env's
  // passwd and group (userdb_env) and share its home at the same path.
  bool add_user = false;
  Invoker user;
  // Printed once to stderr when something is degraded; "" if nothing is.
  std::string notice;
};

/// The decision. Pure.
IdentityPlan plan_identity(const IdFacts& facts, bool as_user);

/// The notice for a caller with no subordinate ids in one or both files.
/// `suggest` is the range to offer (suggest_range).
std::string missing_subids_notice(std::string_view user, bool no_uids, bool no_gids,
                                  IdRange suggest);

}  // namespace togo::runtime
