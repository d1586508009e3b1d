// Namespaces, user namespaces and subordinate ids: what decides whether an
// env can start at all, as root and rootless.
#include <linux/capability.h>
#include <sched.h>

#include <cerrno>

#include "doctor/probes.h"
#include "runtime/idmap.h"
#include "runtime/idmap_apply.h"

namespace togo::doctor {
namespace {

/// A sysctl's value, trimmed; "" when the kernel has no such file.
std::string sysctl(const HostView& v, const std::string& name) {
  return trim(v.read(v.proc() + "/sys/" + name).value_or(""));
}

struct UsernsSysctls {
  std::string max, clone, apparmor;
  std::string describe() const {
    std::string out;
    auto add = [&](const char* key, const std::string& value) {
      if (!value.empty()) out += std::string(out.empty() ? "" : ", ") + key + "=" + value;
    };
    add("user.max_user_namespaces", max);
    add("kernel.unprivileged_userns_clone", clone);
    add("kernel.apparmor_restrict_unprivileged_userns", apparmor);
    return out;
  }
};

UsernsSysctls read_sysctls(const HostView& v) {
  return {sysctl(v, "user/max_user_namespaces"), sysctl(v, "kernel/unprivileged_userns_clone"),
          sysctl(v, "kernel/apparmor_restrict_unprivileged_userns")};
}

/// Why unprivileged user namespaces failed, and the fix, from the sysctls
/// and the step that failed.
void explain_userns_failure(const HostView& v, const UsernsSysctls& s, const Outcome& o,
                            Finding& f) {
  std::string failed = o.step + ": " + errno_text(o.err);
  // A sysctl that switches them off: say which, and the setting that does not.
  auto switched_off = [&](const std::string& what, const std::string& key, const char* is,
                          const char* fixed) {
    f.found = what + " are switched off (" + key + "=" + is + "); " + failed;
    f.fix = "sudo sysctl -w " + key + "=" + fixed + " (and a file in /etc/sysctl.d/ to keep it)";
  };
  if (s.max == "0") {
    switched_off("user namespaces", "user.max_user_namespaces", "0", "15000");
  } else if (s.clone == "0") {
    switched_off("unprivileged user namespaces", "kernel.unprivileged_userns_clone", "0", "1");
  } else if (s.apparmor == "1") {
    f.found =
        "AppArmor restricts unprivileged user namespaces "
        "(kernel.apparmor_restrict_unprivileged_userns=1); " +
        failed;
    f.fix =
        "give togo an AppArmor profile that allows them (/etc/apparmor.d/togo: `profile "
        "togo " +
        (v.exe.empty() ? std::string("/path/to/togo") : v.exe) +
        " flags=(unconfined) { userns, }`, then sudo apparmor_parser -r "
        "/etc/apparmor.d/togo), or sudo sysctl -w "
        "kernel.apparmor_restrict_unprivileged_userns=0";
  } else if (o.err == ENOSPC) {
    f.found = "the limit on user namespaces is reached (" + s.describe() + "); " + failed;
    f.fix = "raise it: sudo sysctl -w user.max_user_namespaces=15000";
  } else if (o.err == EPERM && o.step == "unshare") {
    f.found = "creating a user namespace is refused: " + failed +
              " (togo seems to run inside a container or sandbox that blocks it)";
    f.fix = "run togo on the host, or let the container create namespaces";
  } else {
    f.found = "user namespaces do not work for this user: " + failed +
              (s.describe().empty() ? "" : " (" + s.describe() + ")");
  }
}

}  // namespace

Finding probe_namespaces(const HostView& v) {
  Finding f;
  const bool rootless = v.uid != 0;
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
  if (rootless) flags |= CLONE_NEWUSER;
  Outcome o = v.live.namespaces(flags);
  const std::string kinds = "mount, pid, uts, ipc and network namespaces";
  if (o.ok()) {
    f.found = kinds + (rootless ? " inside a user namespace" : "") + " can be created";
    return f;
  }
  f.status = Status::kMissing;
  f.found = "creating " + kinds + " failed at " + o.step + ": " + errno_text(o.err);
  if (rootless) {
    f.why = "rootless envs need a user namespace first (see isolation.userns)";
    f.fix = "fix isolation.userns first";
  }
  return f;
}

Finding probe_userns(const HostView& v) {
  Finding f;
  UsernsSysctls s = read_sysctls(v);
  const std::string settings = s.describe().empty() ? "" : " (" + s.describe() + ")";
  if (v.uid == 0) {
    // Root runs envs without a user namespace; say what other users get.
    Outcome o = v.live.unprivileged_userns();
    f.found = "root needs none";
    if (o.ok()) {
      f.found += "; unprivileged users can create them" + settings;
    } else {
      Finding why;
      explain_userns_failure(v, s, o, why);
      f.found += "; for unprivileged users: " + why.found;
      f.fix = why.fix;
    }
    return f;
  }
  Outcome o = v.live.namespaces(CLONE_NEWUSER | CLONE_NEWNS);
  if (o.ok()) {
    f.found = v.user_name() + " can create user namespaces and mount in them" + settings;
    return f;
  }
  f.status = Status::kMissing;
  explain_userns_failure(v, s, o, f);
  return f;
}

Finding probe_subids(const HostView& v) {
  Finding f;
  if (v.uid == 0) {
    f.found = "root maps no ids: an env's files keep the owners the image gives them";
    return f;
  }
  const std::string name = v.user_name();
  const bool in_passwd = v.user_in_passwd();
  std::string subuid = v.read(v.etc() + "/subuid").value_or("");
  std::string subgid = v.read(v.etc() + "/subgid").value_or("");
  // Lines may name the user or the uid; an unnamed uid can only match by number.
  std::string lookup = in_passwd ? name : std::string();
  uint64_t uids = runtime::count_ids(
      runtime::normalize_ranges(runtime::parse_subids(subuid, lookup, v.uid), v.uid));
  uint64_t gids = runtime::count_ids(
      runtime::normalize_ranges(runtime::parse_subids(subgid, lookup, v.uid), v.gid));
  runtime::IdRange suggest = runtime::suggest_range(subuid, subgid);
  const std::string add = "sudo usermod --add-subuids " + runtime::range_arg(suggest) +
                          " --add-subgids " + runtime::range_arg(suggest) + " " +
                          (in_passwd ? name : "USER");
  if (uids == 0 || gids == 0) {
    f.status = Status::kDegraded;
    f.found = name + " has no subordinate " +
              (uids == 0 && gids == 0 ? std::string("uids or gids (/etc/subuid, /etc/subgid)")
               : uids == 0            ? std::string("uids (/etc/subuid)")
                                      : std::string("gids (/etc/subgid)"));
    f.why =
        "its envs map one id (you, as root inside): files of other owners show as "
        "nobody, chown to them fails, and apt cannot switch to _apt";
    f.fix = in_passwd ? add : "create the user in /etc/passwd (newuidmap needs it), then " + add;
    return f;
  }
  std::vector<std::string> problems;
  for (auto [helper, cap] : {std::pair<const char*, int>{"newuidmap", CAP_SETUID},
                             std::pair<const char*, int>{"newgidmap", CAP_SETGID}}) {
    std::string path = v.which(helper);
    std::string problem = path.empty() ? std::string(helper) + " is not installed"
                                       : runtime::id_helper_problem(path, cap);
    if (!problem.empty()) problems.push_back(problem);
  }
  if (!in_passwd)
    problems.push_back("uid " + std::to_string(v.uid) +
                       " is not in /etc/passwd, which newuidmap needs");
  f.found = name + " has " + std::to_string(uids) + " subordinate uids and " +
            std::to_string(gids) + " gids";
  if (problems.empty()) {
    f.found += "; newuidmap and newgidmap can write them";
    return f;
  }
  f.status = Status::kDegraded;
  for (auto& p : problems) f.found += "; " + p;
  f.why = "without working newuidmap/newgidmap the ranges cannot be used: envs map one id";
  f.fix = "sudo apt install uidmap (newuidmap and newgidmap, setuid root)";
  return f;
}

}  // namespace togo::doctor
