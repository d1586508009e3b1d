#include "cli/settings.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "base/text.h"
#include "net/settings.h"
#include "runtime/cgroups_limits.h"

namespace togo::cli {

namespace {

std::unexpected<Error> bad(const std::string& key, const std::string& why) {
  return error(ErrorKind::kUsage, key + ": " + why);
}

bool absolute_clean(std::string_view p) {
  if (p.empty() || p.front() != '/') return false;
  for (auto& part : text::split(p, '/'))
    if (part == "..") return false;
  return true;
}

std::string share_text(const Share& s) { return s.host + ":" + s.path + (s.readonly ? ":ro" : ""); }

// Checks one value of a key and returns its canonical form.
Result<std::string> check(const std::string& key, const std::string& v) {
  if (v.find('\n') != std::string::npos) return bad(key, "a value cannot contain a newline");
  if (key == "env") {
    size_t eq = v.find('=');
    if (eq == 0 || eq == std::string::npos) return bad(key, "'" + v + "' is not KEY=VALUE");
    return v;
  }
  if (key == "workdir") {
    if (!v.empty() && !absolute_clean(v)) return bad(key, "'" + v + "' is not an absolute path");
    return v;
  }
  if (key == "hostname") {
    bool ok = !v.empty() && v.size() <= 63 && v.front() != '-';
    for (char c : v) ok &= std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    if (!ok) return bad(key, "'" + v + "' is not a host name");
    return v;
  }
  if (key == "share") return share_text(TRY(parse_share(v)));
  if (key == "network") return std::string(net::to_string(TRY(net::parse_network(v))));
  if (key == "port") return net::format_port(TRY(net::parse_port(v)));
  if (key == "memory") return TRY(runtime::parse_memory(v)), v;
  if (key == "cpus") return TRY(runtime::parse_cpus(v)), v;
  if (key == "pids") return TRY(runtime::parse_pids(v)), v;
  if (key == "linger") {
    char* end = nullptr;
    double secs = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || secs < 0 || secs > 3600)
      return bad(key, "'" + v + "' is not a number of seconds (0-3600)");
    return v;
  }
  if (key == "user" || key == "privileged") {
    if (v != "true" && v != "false") return bad(key, "takes true or false");
    return v;
  }
  return bad(key, "no such setting (see `togo help config`)");
}

bool is_list(const std::string& key) { return key == "env" || key == "share" || key == "port"; }

std::vector<std::string>* list_of(Settings& s, const std::string& key,
                                  std::vector<std::string>& shares_text) {
  if (key == "env") return &s.env;
  if (key == "port") return &s.ports;
  if (key == "share") return &shares_text;
  return nullptr;
}

void set_scalar(Settings& s, const std::string& key, const std::string& v) {
  if (key == "workdir") s.workdir = v;
  if (key == "hostname") s.hostname = v;
  if (key == "network") s.network = v.empty() ? "host" : v;
  if (key == "memory") s.memory = v;
  if (key == "cpus") s.cpus = v;
  if (key == "pids") s.pids = v;
  if (key == "user") s.user = v == "true";
  if (key == "privileged") s.privileged = v == "true";
  if (key == "linger") s.linger_ms = static_cast<int>(std::strtod(v.c_str(), nullptr) * 1000);
}

}  // namespace

const std::vector<std::pair<std::string, std::string>>& setting_keys() {
  static const std::vector<std::pair<std::string, std::string>> keys = {
      {"env", "KEY=VALUE, a variable for every command (a list)"},
      {"workdir", "PATH where commands start (default: the user's home)"},
      {"hostname", "NAME of the env (default: the env's name)"},
      {"share", "HOST:PATH[:ro], a host directory shown at PATH (a list)"},
      {"network", "host (default), none, or private (own network, user-mode)"},
      {"port", "[IP:]HOST:ENV[/udp], forward a host port to the env (private network; a list)"},
      {"memory", "limit, e.g. 512m or 2g"},
      {"cpus", "limit, e.g. 1.5"},
      {"pids", "limit on the number of processes"},
      {"user", "true: commands run as you (same uid, name, home) instead of root"},
      {"privileged", "true: no capability drop, seccomp filter or masked paths"},
      {"linger", "SECONDS an env started by run stays up after its last session, so the next\n              run joins it at once (default 0)"},
  };
  return keys;
}

Result<Share> parse_share(std::string_view text) {
  auto parts = text::split(text, ':');
  Share s;
  if (parts.size() == 3 && (parts[2] == "ro" || parts[2] == "rw")) {
    s.readonly = parts[2] == "ro";
    parts.pop_back();
  }
  if (parts.size() != 2)
    return bad("share", "'" + std::string(text) + "' is not HOST:PATH[:ro]");
  s.host = parts[0];
  s.path = parts[1];
  if (!absolute_clean(s.host)) return bad("share", "host path '" + s.host + "' is not absolute");
  // SECURITY: no ".." in the env side; it is also resolved inside the
  // env's root at mount time, so a symlink there cannot lead out.
  if (!absolute_clean(s.path) || s.path == "/")
    return bad("share", "'" + s.path + "' is not an absolute path in the env (no '..', not /)");
  // SECURITY: the kernel's filesystems and /dev stay the env's own (runc
  // CVE-2019-19921 mounted over /proc to escape its protections).
  for (const char* special : {"/proc", "/sys", "/dev"})
    if (s.path == special || text::starts_with(s.path, std::string(special) + "/"))
      return bad("share", "'" + s.path + "' is under " + special + ", which togo provides");
  return s;
}

Result<void> check_settings(const Settings& s) {
  std::vector<net::PortForward> ports;
  for (auto& p : s.ports) ports.push_back(TRY(net::parse_port(p)));
  return net::check_ports(TRY(net::parse_network(s.network)), ports);
}

Result<Settings> parse_settings(std::string_view text) {
  Settings s;
  for (auto& line : text::split(text, '\n')) {
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) return bad("settings", "malformed line '" + line + "'");
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (is_list(key))
      TRY(apply_edit(s, key + "+=" + value));
    else
      TRY(apply_edit(s, line));
  }
  return s;
}

std::string format_settings(const Settings& s) {
  std::string out;
  auto put = [&](const char* k, const std::string& v) { out += std::string(k) + "=" + v + "\n"; };
  for (auto& e : s.env) put("env", e);
  if (!s.workdir.empty()) put("workdir", s.workdir);
  if (!s.hostname.empty()) put("hostname", s.hostname);
  for (auto& sh : s.shares) put("share", share_text(sh));
  if (s.network != "host") put("network", s.network);
  for (auto& p : s.ports) put("port", p);
  if (!s.memory.empty()) put("memory", s.memory);
  if (!s.cpus.empty()) put("cpus", s.cpus);
  if (!s.pids.empty()) put("pids", s.pids);
  if (s.user) put("user", "true");
  if (s.privileged) put("privileged", "true");
  if (s.linger_ms != 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", s.linger_ms / 1000.0);
    put("linger", buf);
  }
  return out;
}

Result<void> apply_edit(Settings& s, std::string_view edit) {
  size_t eq = edit.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return bad(std::string(edit), "not KEY=VALUE (see `togo help config`)");
  char op = '=';
  std::string key(edit.substr(0, eq));
  if (key.back() == '+' || key.back() == '-') {
    op = key.back();
    key.pop_back();
  }
  std::string value(edit.substr(eq + 1));
  Settings next = s;
  std::vector<std::string> shares;
  for (auto& sh : next.shares) shares.push_back(share_text(sh));
  bool known = std::any_of(setting_keys().begin(), setting_keys().end(),
                           [&](auto& k) { return k.first == key; });
  if (!known) return bad(key, "no such setting (see `togo help config`)");
  if (!is_list(key)) {
    if (op != '=') return bad(key, "is not a list: use " + key + "=VALUE");
    // An empty value puts the default back.
    set_scalar(next, key, value.empty() ? value : TRY(check(key, value)));
  } else {
    auto* list = list_of(next, key, shares);
    if (op == '=') list->clear();
    if (!value.empty()) {
      std::string v = TRY(check(key, value));
      if (op == '-') {
        auto before = list->size();
        std::erase(*list, v);
        if (list->size() == before) return bad(key, "'" + value + "' is not set");
      } else {
        // A variable set again replaces the old value.
        if (key == "env") {
          std::string name = v.substr(0, v.find('=') + 1);
          std::erase_if(*list, [&](const std::string& e) { return e.rfind(name, 0) == 0; });
        }
        std::erase(*list, v);
        list->push_back(v);
      }
    }
    if (key == "share") {
      next.shares.clear();
      for (auto& t : shares) next.shares.push_back(*parse_share(t));
    }
  }
  s = std::move(next);
  return {};
}

}  // namespace togo::cli
