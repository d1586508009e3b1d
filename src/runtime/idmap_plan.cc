#include "runtime/idmap_plan.h"

namespace togo::runtime {

namespace {

constexpr const char* kConsequence =
    "only your own id exists inside, so files of other users in the image belong to root there";

void add_notice(std::string& notice, const std::string& line) {
  if (!notice.empty()) notice += '\n';
  notice += line;
}

}  // namespace

std::string missing_subids_notice(std::string_view user, bool no_uids, bool no_gids,
                                  IdRange suggest) {
  if (!no_uids && !no_gids) return {};
  std::string u(user), range = range_arg(suggest);
  std::string files = no_uids && no_gids ? "/etc/subuid and /etc/subgid"
                      : no_uids          ? "/etc/subuid"
                                         : "/etc/subgid";
  std::string what = no_uids && no_gids ? "ranges" : "a range";
  std::string cmd = "sudo usermod";
  if (no_uids) cmd += " --add-subuids " + range;
  if (no_gids) cmd += " --add-subgids " + range;
  return "no subordinate ids for " + u + " in " + files + ": " + kConsequence +
         ", and programs cannot switch users (apt is set to download as root); add " + what +
         " with `" + cmd + " " + u + "`";
}

IdentityPlan plan_identity(const IdFacts& f, bool as_user) {
  IdentityPlan p;
  p.user = f.invoker;
  const Invoker& who = f.invoker;

  if (f.uid == 0) {
    // Root needs no user namespace: host ids are the env's ids. --user runs
    // the command as the person behind sudo/doas, with that person's host
    // groups (no namespace, so they are real); plain root stays root.
    if (as_user) {
      p.uid = who.user.uid;
      p.gid = who.user.gid;
      p.groups.push_back(p.gid);
      for (uint32_t g : who.groups)
        if (g != p.gid) p.groups.push_back(g);
      p.add_user = who.user.uid != 0;
    } else {
      p.groups = {0};
    }
    return p;
  }

  p.user_namespace = true;
  const std::string& name = who.user.name;
  // Subordinate ids are keyed by the user's name or uid in both files.
  std::vector<IdRange> uranges = normalize_ranges(parse_subids(f.subuid, name, f.uid), f.uid);
  std::vector<IdRange> granges = normalize_ranges(parse_subids(f.subgid, name, f.uid), f.gid);
  bool no_uids = uranges.empty(), no_gids = granges.empty();
  std::string notice =
      missing_subids_notice(name, no_uids, no_gids, suggest_range(f.subuid, f.subgid));
  if (!uranges.empty() && !f.uid_helper_problem.empty()) {
    add_notice(notice, f.uid_helper_problem + ": " + kConsequence);
    uranges.clear();
  }
  if (!granges.empty() && !f.gid_helper_problem.empty()) {
    if (f.gid_helper_problem != f.uid_helper_problem || no_uids)
      add_notice(notice, f.gid_helper_problem + ": " + kConsequence);
    granges.clear();
  }
  p.notice = std::move(notice);

  p.uids = rootless_map(f.uid, uranges, as_user);
  p.gids = rootless_map(f.gid, granges, as_user);
  // A gid map written by newgidmap from subordinate ranges leaves setgroups
  // allowed; the single own-gid line needs "deny" first.
  p.set_groups = !is_single_own(p.gids, f.gid);
  p.uid = as_user ? f.uid : 0;
  p.gid = as_user ? f.gid : 0;
  if (p.set_groups) p.groups = {p.gid};
  p.add_user = as_user;
  return p;
}

}  // namespace togo::runtime
