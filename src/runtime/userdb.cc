#include "runtime/userdb.h"

#include <algorithm>

namespace togo::runtime {

namespace {

// Calls fn(line) for every line of text, without its '\n'.
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (!fn(line)) return;
  }
}

// Splits on ':' into exactly n fields; false if the count differs.
bool fields(std::string_view line, size_t n, std::string_view* out) {
  size_t i = 0;
  for (;;) {
    size_t colon = line.find(':');
    if (i == n) return false;
    out[i++] = line.substr(0, colon);
    if (colon == std::string_view::npos) break;
    line.remove_prefix(colon + 1);
  }
  return i == n;
}

bool is_entry(std::string_view line) {
  return !line.empty() && line.front() != '#' && line.front() != '+' && line.front() != '-';
}

bool has_breaking_char(std::string_view s) {
  return s.find_first_of(":\n\r") != std::string_view::npos;
}

std::optional<std::string> passwd_field_problem(const UserRecord& u) {
  if (!valid_user_name(u.name)) return "user name \"" + u.name + "\" cannot be written to passwd";
  if (has_breaking_char(u.gecos))
    return "the comment field of " + u.name + " contains ':' or a newline";
  if (u.home.empty() || u.home.front() != '/' || has_breaking_char(u.home))
    return "home directory \"" + u.home + "\" of " + u.name + " is not an absolute path";
  if (u.shell.empty() || u.shell.front() != '/' || has_breaking_char(u.shell))
    return "shell \"" + u.shell + "\" of " + u.name + " is not an absolute path";
  return std::nullopt;
}

// The image's text with every line for which drop(line) holds left out,
// ending in a newline if it is not empty.
template <typename Drop>
std::string without(std::string_view image, Drop&& drop) {
  std::string out;
  out.reserve(image.size() + 128);
  for_each_line(image, [&](std::string_view line) {
    if (!drop(line)) (out += line) += '\n';
    return true;
  });
  return out;
}

}  // namespace

std::optional<uint32_t> parse_decimal_id(std::string_view s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  if (s.size() > 1 && s.front() == '0') return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 0xFFFFFFFFull) return std::nullopt;
  return static_cast<uint32_t>(v);
}

bool valid_user_name(std::string_view name) {
  if (name.empty() || name.size() > 256 || name.front() == '-') return false;
  bool all_digits = true;
  for (size_t i = 0; i < name.size(); i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-' || c == '@' || (c == '$' && i + 1 == name.size());
    if (!ok) return false;
    if (c < '0' || c > '9') all_digits = false;
  }
  return !all_digits;
}

std::optional<UserRecord> parse_passwd_line(std::string_view line) {
  if (!is_entry(line)) return std::nullopt;
  std::string_view f[7];
  if (!fields(line, 7, f) || f[0].empty()) return std::nullopt;
  auto uid = parse_decimal_id(f[2]);
  auto gid = parse_decimal_id(f[3]);
  if (!uid || !gid) return std::nullopt;
  return UserRecord{std::string(f[0]), *uid, *gid, std::string(f[4]), std::string(f[5]),
                    std::string(f[6])};
}

std::optional<GroupRecord> parse_group_line(std::string_view line) {
  if (!is_entry(line)) return std::nullopt;
  std::string_view f[4];
  if (!fields(line, 4, f) || f[0].empty()) return std::nullopt;
  auto gid = parse_decimal_id(f[2]);
  if (!gid) return std::nullopt;
  GroupRecord g{std::string(f[0]), *gid, {}};
  std::string_view m = f[3];
  while (!m.empty()) {
    size_t comma = m.find(',');
    std::string_view one = m.substr(0, comma);
    if (!one.empty()) g.members.emplace_back(one);
    m = comma == std::string_view::npos ? std::string_view() : m.substr(comma + 1);
  }
  return g;
}

std::optional<UserRecord> find_user(std::string_view passwd, uint32_t uid) {
  std::optional<UserRecord> found;
  for_each_line(passwd, [&](std::string_view line) {
    auto u = parse_passwd_line(line);
    if (u && u->uid == uid) found = std::move(u);
    return !found;
  });
  return found;
}

std::optional<UserRecord> find_user_named(std::string_view passwd, std::string_view name) {
  std::optional<UserRecord> found;
  for_each_line(passwd, [&](std::string_view line) {
    auto u = parse_passwd_line(line);
    if (u && u->name == name) found = std::move(u);
    return !found;
  });
  return found;
}

std::optional<GroupRecord> find_group(std::string_view group, uint32_t gid) {
  std::optional<GroupRecord> found;
  for_each_line(group, [&](std::string_view line) {
    auto g = parse_group_line(line);
    if (g && g->gid == gid) found = std::move(g);
    return !found;
  });
  return found;
}

std::vector<uint32_t> member_gids(std::string_view group, std::string_view user, uint32_t primary) {
  std::vector<uint32_t> out;
  for_each_line(group, [&](std::string_view line) {
    auto g = parse_group_line(line);
    if (g && g->gid != primary &&
        std::find(g->members.begin(), g->members.end(), user) != g->members.end() &&
        std::find(out.begin(), out.end(), g->gid) == out.end())
      out.push_back(g->gid);
    return true;
  });
  return out;
}

Result<std::string> format_passwd(const UserRecord& u) {
  if (auto problem = passwd_field_problem(u)) return error(ErrorKind::kBadInput, *problem);
  return u.name + ":x:" + std::to_string(u.uid) + ":" + std::to_string(u.gid) + ":" + u.gecos +
         ":" + u.home + ":" + u.shell + "\n";
}

Result<std::string> format_group(const GroupRecord& g) {
  if (!valid_user_name(g.name))
    return error(ErrorKind::kBadInput, "group name \"" + g.name + "\" cannot be written to group");
  std::string line = g.name + ":x:" + std::to_string(g.gid) + ":";
  for (size_t i = 0; i < g.members.size(); i++) {
    if (!valid_user_name(g.members[i]))
      return error(ErrorKind::kBadInput, "member \"" + g.members[i] + "\" of group " + g.name +
                                             " cannot be written to group");
    if (i) line += ',';
    line += g.members[i];
  }
  return line + "\n";
}

Result<std::string> merge_passwd(std::string_view image, const UserRecord& user) {
  std::string line = TRY(format_passwd(user));
  std::string out = without(image, [&](std::string_view l) {
    auto u = parse_passwd_line(l);
    return u && (u->name == user.name || u->uid == user.uid);
  });
  return out + line;
}

Result<std::string> merge_group(std::string_view image, const GroupRecord& group) {
  std::string line = TRY(format_group(group));
  std::string out = without(image, [&](std::string_view l) {
    auto g = parse_group_line(l);
    return g && (g->name == group.name || g->gid == group.gid);
  });
  return out + line;
}

Result<Invoker> resolve_invoker(const InvokerFacts& facts) {
  Invoker who;
  uint32_t uid = facts.uid, gid = facts.gid;
  std::optional<std::string> name_hint;  // a name for users /etc/passwd does not know

  if (facts.uid == 0 && facts.sudo_uid) {
    // SECURITY: trusted only because togo already runs as root: whoever set
    // these can become any user anyway.
    auto u = parse_decimal_id(*facts.sudo_uid);
    auto g = facts.sudo_gid ? parse_decimal_id(*facts.sudo_gid) : std::nullopt;
    if (!u || (facts.sudo_gid && !g))
      return error(ErrorKind::kBadInput, "SUDO_UID/SUDO_GID are not numeric ids",
                   "unset them, or run togo through sudo");
    uid = *u;
    if (g) gid = *g;
    name_hint = facts.sudo_user;
    who.via_sudo = uid != 0;
    if (!g) {
      auto pw = find_user(facts.passwd, uid);
      gid = pw ? pw->gid : uid;
    }
  } else if (facts.uid == 0 && facts.doas_user) {
    auto pw = find_user_named(facts.passwd, *facts.doas_user);
    if (!pw)
      return error(ErrorKind::kNotFound,
                   "DOAS_USER \"" + *facts.doas_user + "\" is not in /etc/passwd");
    uid = pw->uid;
    gid = pw->gid;
    who.via_sudo = uid != 0;
  } else if (facts.uid != 0) {
    name_hint = facts.user;
  }

  if (auto pw = find_user(facts.passwd, uid)) {
    who.user = *pw;
    who.user.gid = gid;  // the group actually in use (newgrp, SUDO_GID) wins
  } else {
    who.in_passwd = false;
    who.user.uid = uid;
    who.user.gid = gid;
    // A name that /etc/passwd gives to someone else ($USER left over after
    // su) is not this user's.
    bool hint_ok =
        name_hint && valid_user_name(*name_hint) && !find_user_named(facts.passwd, *name_hint);
    who.user.name = hint_ok ? *name_hint : "u" + std::to_string(uid);
    // $HOME and $SHELL belong to the caller; under sudo they may be root's.
    bool own_env = !who.via_sudo && facts.uid == uid;
    if (own_env && facts.home && !facts.home->empty() && facts.home->front() == '/')
      who.user.home = *facts.home;
    else
      who.user.home = uid == 0 ? "/root" : "/home/" + who.user.name;
    who.user.shell = own_env && facts.shell && !facts.shell->empty() ? *facts.shell : "/bin/sh";
  }
  if (who.user.home.empty() || who.user.home.front() != '/') who.user.home = "/";
  if (who.user.shell.empty() || who.user.shell.front() != '/') who.user.shell = "/bin/sh";
  // Keep the record writable: a comment field with odd characters is dropped
  // rather than failing the run.
  if (who.user.gecos.find_first_of(":\n\r") != std::string::npos) who.user.gecos.clear();

  auto gr = find_group(facts.group, gid);
  who.group = gr && valid_user_name(gr->name) ? gr->name : who.user.name;
  who.groups = member_gids(facts.group, who.user.name, gid);
  return who;
}

}  // namespace togo::runtime
