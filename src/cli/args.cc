#include "cli/args.h"

namespace togo::cli {

std::optional<std::string> Invocation::value(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Invocation::all(const std::string& name) const {
  auto it = values.find(name);
  return it == values.end() ? std::vector<std::string>{} : it->second;
}

const VerbSpec* find_verb(std::span<const VerbSpec> verbs, std::string_view name) {
  for (auto& v : verbs)
    if (v.name == name) return &v;
  return nullptr;
}

std::string usage_line(const VerbSpec& verb) {
  std::string line = "togo ";
  line += verb.name;
  if (!verb.args.empty()) line.append(" ").append(verb.args);
  for (auto& o : verb.options) {
    line.append(" [").append(o.name);
    if (!o.value_name.empty()) line.append(" ").append(o.value_name);
    line += "]";
  }
  return line;
}

namespace {

std::unexpected<Error> usage(const std::string& what, const std::string& why,
                             std::string_view help_topic) {
  std::string hint = "see `togo help";
  if (!help_topic.empty()) hint.append(" ").append(help_topic);
  return error(ErrorKind::kUsage, what + ": " + why, hint + "`");
}

// Splits "--name=value"; returns false if there is no '='.
bool split_eq(const std::string& arg, std::string& name, std::string& value) {
  size_t eq = arg.find('=');
  if (eq == std::string::npos) return false;
  name = arg.substr(0, eq);
  value = arg.substr(eq + 1);
  return true;
}

}  // namespace

Result<Invocation> parse(const std::vector<std::string>& argv,
                         std::span<const VerbSpec> verbs) {
  Invocation inv;
  size_t i = 0;
  auto take_value = [&](const std::string& name, std::string& out, bool have_eq,
                        std::string_view topic) -> Result<void> {
    if (have_eq) return {};
    if (i + 1 >= argv.size()) return usage(name, "needs a value", topic);
    out = argv[++i];
    return {};
  };
  // Global options and the verb's words.
  std::vector<std::string> words;
  for (; i < argv.size(); i++) {
    const std::string& a = argv[i];
    std::string name = a, val;
    bool eq = a.rfind("--", 0) == 0 && split_eq(a, name, val);
    if (name == "--store") {
      TRY(take_value(name, val, eq, ""));
      inv.store = val;
      continue;
    }
    if (a == "-h" || a == "--help") {
      inv.help = true;
      continue;
    }
    if (a == "--version") {
      words = {"version"};
      i++;
      break;
    }
    if (!a.empty() && a[0] == '-') {
      if (words.empty()) return usage(a, "unknown option", "");
      break;
    }
    words.push_back(a);
    if (find_verb(verbs, words.size() == 1 ? words[0] : words[0] + " " + words[1])) {
      i++;
      break;
    }
    if (words.size() == 2) break;
  }
  if (words.empty()) return inv;
  std::string verb_name = words.size() == 1 ? words[0] : words[0] + " " + words[1];
  inv.verb = find_verb(verbs, verb_name);
  if (!inv.verb) {
    if (words.size() == 2) {
      if (find_verb(verbs, words[0])) {
        // A one-word verb followed by its first argument.
        inv.verb = find_verb(verbs, words[0]);
        i--;
      } else {
        return usage("togo " + verb_name, "unknown command", "");
      }
    } else {
      bool group = false;
      for (auto& v : verbs) group |= v.name.rfind(words[0] + " ", 0) == 0;
      if (group && !inv.help) return usage("togo " + words[0], "needs a command", words[0]);
      if (!group) return usage("togo " + words[0], "unknown command", "");
      return inv;
    }
  }
  const VerbSpec& v = *inv.verb;
  for (; i < argv.size(); i++) {
    const std::string& a = argv[i];
    if (v.rest && inv.args.size() >= v.min_args && inv.args.size() == v.max_args) {
      inv.rest.assign(argv.begin() + static_cast<long>(i) + (a == "--" ? 1 : 0), argv.end());
      break;
    }
    if (a == "--") {
      if (!v.rest) return usage("togo " + std::string(v.name), "takes no command after --", v.name);
      if (inv.args.size() < v.min_args) break;
      inv.rest.assign(argv.begin() + static_cast<long>(i) + 1, argv.end());
      break;
    }
    if (a == "-h" || a == "--help") {
      inv.help = true;
      continue;
    }
    if (a.size() > 1 && a[0] == '-') {
      std::string name = a, val;
      bool eq = a.rfind("--", 0) == 0 && split_eq(a, name, val);
      if (name == "--store") {
        TRY(take_value(name, val, eq, v.name));
        inv.store = val;
        continue;
      }
      const OptionSpec* opt = nullptr;
      for (auto& o : v.options)
        if (o.name == name) opt = &o;
      if (!opt) return usage("togo " + std::string(v.name), "unknown option " + name, v.name);
      if (opt->value_name.empty()) {
        if (eq) return usage("togo " + std::string(v.name), name + " takes no value", v.name);
        inv.flags.insert(name);
      } else {
        TRY(take_value(name, val, eq, v.name));
        inv.values[name].push_back(val);
      }
      continue;
    }
    if (inv.args.size() >= v.max_args)
      return usage("togo " + std::string(v.name), "unexpected argument '" + a + "'", v.name);
    inv.args.push_back(a);
  }
  if (!inv.help && inv.args.size() < v.min_args)
    return usage("togo " + std::string(v.name), "missing " + std::string(v.args), v.name);
  return inv;
}

}  // namespace togo::cli
