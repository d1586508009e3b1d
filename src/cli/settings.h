// An environment's settings: what `togo create` flags and `togo config`
// edits set, kept in the catalog as text, one KEY=VALUE per line.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace togo::cli {

struct Share {
  std::string host;  // absolute host path
  std::string path;  // absolute path inside the env
  bool readonly = false;
};

struct Settings {
  std::vector<std::string> env;  // KEY=VALUE for every command
  std::string workdir;           // where commands start (default: the user's home)
  std::string hostname;          // default: the env's name
  std::vector<Share> shares;
  std::string network = "host";  // host | none | private
  std::vector<std::string> ports;  // [IP:]HOST:ENV[/udp], canonical form
  std::string memory, cpus, pids;  // limits, as given
  bool user = false;               // commands run as the invoking user
  bool privileged = false;         // no hardening
  int linger_ms = 0;               // how long an env started by run outlives its last session
};

/// Reads the catalog's text. Unknown keys are refused: a newer togo's
/// settings are not silently dropped.
Result<Settings> parse_settings(std::string_view text);
std::string format_settings(const Settings& s);

/// Applies one edit: KEY=VALUE sets (a list becomes just VALUE), KEY+=VALUE
/// adds to a list, KEY-=VALUE removes from it, KEY= clears. Every value is
/// checked; on error the settings are unchanged.
Result<void> apply_edit(Settings& s, std::string_view edit);

/// Checks the settings as a whole, after every edit: what no single value
/// shows (ports forwarded on a network that is not private, two forwards of
/// one port).
Result<void> check_settings(const Settings& s);

/// The keys, with what each takes, for help texts.
const std::vector<std::pair<std::string, std::string>>& setting_keys();

/// Parses HOST:PATH[:ro|:rw]; both paths absolute, no ".." in PATH.
Result<Share> parse_share(std::string_view text);

}  // namespace togo::cli
