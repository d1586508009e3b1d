// How `togo doctor` prints its results: one line per check for people,
// grouped, or one JSON document for programs.
#pragma once

#include <string>
#include <vector>

#include "base/json.h"
#include "doctor/checks.h"

namespace togo::doctor {

/// The text report: `header`, then each group's checks, one line each:
///   "  degraded  isolation.subids  <found> — why: <why> — fix: <fix>"
/// (ok lines carry only what was found), then a verdict line saying
/// whether the default mode can run and counting the statuses.
std::string format_text(const std::vector<CheckResult>& results, const std::string& header);

/// {"checks": [{"id", "group", "status", "found", "why", "fix"}, ...]}, in
/// the results' order; status is "ok", "degraded" or "missing".
json::Value to_json(const std::vector<CheckResult>& results);

/// The verdict line: "process isolation (the default) can run here: ...".
std::string verdict(const std::vector<CheckResult>& results);

}  // namespace togo::doctor
