#include "doctor/report.h"

#include <algorithm>

namespace togo::doctor {

std::string verdict(const std::vector<CheckResult>& results) {
  int counts[3] = {0, 0, 0};
  std::string blocking;
  for (auto& r : results) {
    counts[static_cast<int>(r.status)]++;
    if (r.severity == Severity::kCritical && r.status == Status::kMissing)
      blocking += (blocking.empty() ? "" : ", ") + r.id;
  }
  std::string tally = std::to_string(counts[0]) + " ok, " + std::to_string(counts[1]) +
                      " degraded, " + std::to_string(counts[2]) + " missing";
  if (!blocking.empty())
    return "process isolation (the default) cannot run here: " + blocking + " (" + tally + ")";
  return "process isolation (the default) can run here (" + tally + ")";
}

std::string format_text(const std::vector<CheckResult>& results, const std::string& header) {
  size_t width = 0;
  for (auto& r : results) width = std::max(width, r.id.size());
  std::string out = header.empty() ? "" : header + "\n";
  for (const char* group : kGroups) {
    bool first = true;
    for (auto& r : results) {
      if (r.group != group) continue;
      if (first) out += std::string("\n") + group + "\n";
      first = false;
      std::string status = status_name(r.status);
      out += "  " + status + std::string(10 - status.size(), ' ') + r.id +
             std::string(width + 2 - r.id.size(), ' ') + r.found;
      if (r.status != Status::kOk) {
        if (!r.why.empty()) out += " \u2014 why: " + r.why;
        if (!r.fix.empty()) out += " \u2014 fix: " + r.fix;
      }
      out += "\n";
    }
  }
  return out + "\n" + verdict(results) + "\n";
}

json::Value to_json(const std::vector<CheckResult>& results) {
  json::Value checks = json::Value::array();
  for (auto& r : results) {
    json::Value c = json::Value::object();
    c.set("id", r.id);
    c.set("group", r.group);
    c.set("status", status_name(r.status));
    c.set("found", r.found);
    c.set("why", r.why);
    c.set("fix", r.fix);
    checks.push(std::move(c));
  }
  json::Value doc = json::Value::object();
  doc.set("checks", std::move(checks));
  return doc;
}

}  // namespace togo::doctor
