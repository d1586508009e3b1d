// The command line: a table of verbs with their options, and a parser that
// turns argv into an Invocation or a usage error. Pure, unit-tested.
#pragma once

#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace togo::cli {

// The table is text the program holds (views of literals): building it
// costs nothing at each start, whatever the verb.
struct OptionSpec {
  std::string_view name;        // "--name"
  std::string_view value_name;  // "N"; empty for a flag
  std::string_view help;
};

struct VerbSpec {
  std::string_view name;     // "image import"
  std::string_view args;     // "PATH|-" for the usage line
  std::string_view summary;  // one line for `togo help`
  std::initializer_list<OptionSpec> options;
  size_t min_args = 0, max_args = 0;
  bool rest = false;         // takes a trailing command (after its arguments or --)
  std::string_view details;  // more lines for `togo help VERB`
};

struct Invocation {
  std::optional<std::string> store;
  const VerbSpec* verb = nullptr;  // null: no verb given
  std::vector<std::string> args;
  std::map<std::string, std::vector<std::string>> values;  // options with a value, in order
  std::set<std::string> flags;                // options without one
  std::vector<std::string> rest;              // the trailing command
  bool help = false;                          // -h/--help was given

  bool flag(const std::string& name) const { return flags.count(name) > 0; }
  /// The last value given for an option.
  std::optional<std::string> value(const std::string& name) const;
  /// Every value given for a repeatable option, in order.
  std::vector<std::string> all(const std::string& name) const;
};

/// Parses argv (without argv[0]). Global options (--store, --help) may come
/// before or after the verb; a verb's trailing command starts at "--" or at
/// the first word after its last argument.
Result<Invocation> parse(const std::vector<std::string>& argv, std::span<const VerbSpec> verbs);

/// The verb whose name is `name` ("image ls"), or null.
const VerbSpec* find_verb(std::span<const VerbSpec> verbs, std::string_view name);

/// "togo image import PATH|- [--name N]"
std::string usage_line(const VerbSpec& verb);

}  // namespace togo::cli
