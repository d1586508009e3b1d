#include "runtime/userdb.h"

#include <algorithm>

#include "base/text.h"

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

// The first well-formed entry of `text` (parsed by `parse`) that `match`es.
template <typename Parse, typename Match>
auto first_entry(std::string_view text, Parse&& parse, Match&& match) {
  decltype(parse(text)) found;
  for_each_line(text, [&](std::string_view line) {
    auto entry = parse(line);
    if (entry && match(*entry)) found = std::move(entry);
    return !found;
  });
  return found;
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
  auto f = text::split(line, ':');
  if (f.size() != 7 || f[0].empty()) return std::nullopt;
  auto uid = parse_decimal_id(f[2]);
  auto gid = parse_decimal_id(f[3]);
  if (!uid || !gid) return std::nullopt;
  return UserRecord{f[0], *uid, *gid, f[4], f[5], f[6]};
}

std::optional<GroupRecord> parse_group_line(std::string_view line) {
  if (!is_entry(line)) return std::nullopt;
  auto f = text::split(line, ':');
  if (f.size() != 4 || f[0].empty()) return std::nullopt;
  auto gid = parse_decimal_id(f[2]);
  if (!gid) return std::nullopt;
  GroupRecord g{f[0], *gid, {}};
  if (!f[3].empty())
    for (auto& member : text::split(f[3], ','))
      if (!member.empty()) g.members.push_back(std::move(member));
  return g;
}

std::optional<UserRecord> find_user(std::string_view passwd, uint32_t uid) {
  return first_entry(passwd, parse_passwd_line, [&](const UserRecord& u) { return u.uid == uid; });
}

std::optional<UserRecord> find_user_named(std::string_view passwd, std::string_view name) {
  return first_entry(passwd, parse_passwd_line,
                     [&](const UserRecord& u) { return u.name == name; });
}

std::optional<GroupRecord> find_group(std::string_view group, uint32_t gid) {
  return first_entry(group, parse_group_line, [&](const GroupRecord& g) { return g.gid == gid; });
}

std::optional<GroupRecord> find_group_named(std::string_view group, std::string_view name) {
  return first_entry(group, parse_group_line,
                     [&](const GroupRecord& g) { return g.name == name; });
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

Result<std::pair<uint32_t, uint32_t>> resolve_image_user(std::string_view spec,
                                                         std::string_view passwd,
                                                         std::string_view group) {
  // Digits only is an id, leading zeros and all, as Docker reads it.
  auto number = [](std::string_view s) -> std::optional<uint64_t> {
    if (s.empty() || s.find_first_not_of("0123456789") != s.npos) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) v = std::min<uint64_t>(v * 10 + static_cast<uint64_t>(c - '0'), 1ull << 33);
    return v;
  };
  // SECURITY: (uid_t)-1 asks setresuid for "no change", which would leave
  // the command root.
  auto too_big = [&](std::string_view s) {
    return error(ErrorKind::kBadInput,
                 "the image's User " + std::string(spec) + ": " + std::string(s) +
                     " is not a valid id");
  };
  size_t colon = spec.find(':');
  std::string_view u = spec.substr(0, colon);
  uint32_t uid = 0, gid = 0;
  if (u.empty()) {
    if (auto root = find_user(passwd, 0)) gid = root->gid;
  } else if (auto n = number(u)) {
    if (*n >= 0xFFFFFFFFu) return too_big(u);
    uid = static_cast<uint32_t>(*n);
    if (auto pw = find_user(passwd, uid)) gid = pw->gid;
  } else if (auto pw = find_user_named(passwd, u)) {
    uid = pw->uid;
    gid = pw->gid;
  } else {
    return error(ErrorKind::kNotFound,
                 "the image's user " + std::string(u) + " is not in /etc/passwd");
  }
  std::string_view g = colon == std::string_view::npos ? "" : spec.substr(colon + 1);
  if (g.empty()) return std::pair{uid, gid};
  if (auto n = number(g)) {
    if (*n >= 0xFFFFFFFFu) return too_big(g);
    gid = static_cast<uint32_t>(*n);
  } else if (auto gr = find_group_named(group, g)) {
    gid = gr->gid;
  } else {
    return error(ErrorKind::kNotFound,
                 "the image's group " + std::string(g) + " is not in /etc/group");
  }
  return std::pair{uid, gid};
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
