// Users and groups without NSS: togo is a static binary, so glibc's
// getpwuid/getpwnam cannot load NSS modules. These pure functions read
// passwd(5) and group(5) text, decide who `--user` is, and build the passwd
// and group files an env is shown so that user exists inside it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace togo::runtime {

/// One passwd(5) line: name:x:uid:gid:gecos:home:shell.
struct UserRecord {
  std::string name;
  uint32_t uid = 0, gid = 0;
  std::string gecos, home, shell;
  bool operator==(const UserRecord&) const = default;
};

/// One group(5) line: name:x:gid:member,member.
struct GroupRecord {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
  bool operator==(const GroupRecord&) const = default;
};

/// Parses one passwd line; nullopt for comments, NIS `+`/`-` entries and
/// anything malformed (wrong field count, ids that are not plain decimals).
std::optional<UserRecord> parse_passwd_line(std::string_view line);
/// Parses one group line, likewise.
std::optional<GroupRecord> parse_group_line(std::string_view line);

/// The first entry with this uid / name in passwd-format text.
std::optional<UserRecord> find_user(std::string_view passwd, uint32_t uid);
std::optional<UserRecord> find_user_named(std::string_view passwd, std::string_view name);
/// The first entry with this gid / name in group-format text.
std::optional<GroupRecord> find_group(std::string_view group, uint32_t gid);
std::optional<GroupRecord> find_group_named(std::string_view group, std::string_view name);
/// The gids of every group that lists `user` as a member, without
/// `primary`, in file order, each once.
std::vector<uint32_t> member_gids(std::string_view group, std::string_view user, uint32_t primary);

/// A decimal id as shadow and the kernel write it: digits only, no sign, no
/// leading zero (shadow reads "010" as octal), at most 4294967295.
std::optional<uint32_t> parse_decimal_id(std::string_view s);

/// True for names that are safe in passwd and group files and on command
/// lines: 1-32 of [A-Za-z0-9_.-], optionally ending in '$', not starting
/// with '-', not all digits (a numeric name would read as an id).
bool valid_user_name(std::string_view name);

/// "name:x:uid:gid:gecos:home:shell\n". Errors if a field would break the
/// format (':' or a newline in it, a relative home or shell, a bad name).
Result<std::string> format_passwd(const UserRecord& user);
/// "name:x:gid:members\n", with the same checks.
Result<std::string> format_group(const GroupRecord& group);

/// `image` (an env's own /etc/passwd) with `user` appended. Lines of the
/// image that name the same user or the same uid are left out, so the
/// invoking user's identity wins (an image's `ubuntu` at uid 1000 gives way
/// to the host's user at uid 1000); every other line is kept byte for byte.
Result<std::string> merge_passwd(std::string_view image, const UserRecord& user);
/// The same for /etc/group: lines with the group's name or gid give way.
Result<std::string> merge_group(std::string_view image, const GroupRecord& group);

/// Who `--user` runs as: identity on the host, shown inside the env.
struct Invoker {
  UserRecord user;               // uid, gid (the primary group actually in use), name, home...
  std::string group;             // name of the primary group
  std::vector<uint32_t> groups;  // host supplementary gids (from /etc/group), primary excluded
  bool via_sudo = false;         // togo runs as root on behalf of this user (sudo or doas)
  bool in_passwd = true;  // false: not in /etc/passwd (NSS-only user); filled from the environment
};

/// What resolve_invoker looks at; gathered by read_invoker() on a real host.
struct InvokerFacts {
  uint32_t uid = 0, gid = 0;  // togo's real uid and gid
  std::string passwd, group;  // contents of the host's /etc/passwd and /etc/group
  // Environment variables (nullopt when unset).
  std::optional<std::string> sudo_uid, sudo_gid, sudo_user, doas_user;
  std::optional<std::string> user, home, shell;
};

/// Decides who the invoking user is.
///  - Not root: the caller (uid, gid); name, home and shell from /etc/passwd,
///    or from $USER/$LOGNAME, $HOME and $SHELL for users only NSS knows.
///  - Root under sudo (SUDO_UID, SUDO_GID) or doas (DOAS_USER): that user, so
///    `sudo togo run --user` runs as the person who typed it. These variables
///    are trusted only when togo already runs as root, who may become anyone.
///  - Root otherwise: root.
/// Errors only when sudo/doas variables are present but unusable.
Result<Invoker> resolve_invoker(const InvokerFacts& facts);

/// The uid and gid an image's User means in an env whose /etc/passwd and
/// /etc/group read `passwd` and `group`, as engines resolve it: "name",
/// "uid", "name:group", "uid:gid" (and mixed). A name must be in the file, a
/// number need not be. Without a group, the user's primary gid from passwd,
/// else 0; an empty user part is root. kNotFound names what is missing;
/// kBadInput for an id past 4294967294 ((uid_t)-1 would mean "no change").
Result<std::pair<uint32_t, uint32_t>> resolve_image_user(std::string_view user,
                                                         std::string_view passwd,
                                                         std::string_view group);

/// The login shell to use inside: `wanted` if the image has it, else
/// /bin/bash, else /bin/sh. `exists` tells whether the image has a path.
template <typename Exists>
std::string pick_shell(const std::string& wanted, Exists&& exists) {
  for (const std::string& s : {wanted, std::string("/bin/bash"), std::string("/bin/sh")})
    if (!s.empty() && s.front() == '/' && exists(s)) return s;
  return "/bin/sh";
}

}  // namespace togo::runtime
