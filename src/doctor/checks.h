// `togo doctor`'s checks, as data: each entry names a check, its group, what
// it is for, the probe that looks, the usual fix and how much it matters.
// Adding a check is adding an entry (checks.cc) and its probe. The runner
// runs the probes concurrently, each bounded by a deadline, so the whole
// list answers in well under a second.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "doctor/host_view.h"

namespace togo::doctor {

enum class Status { kOk, kDegraded, kMissing };
/// "ok", "degraded", "missing".
const char* status_name(Status s);

/// kCritical: a check that is missing means the default mode (process
/// isolation) cannot run here, and `togo doctor` exits non-zero.
enum class Severity { kCritical, kOptional };

/// What a probe found. `why` and `fix` may be left empty: the entry's
/// description and hint stand in.
struct Finding {
  Status status = Status::kOk;
  std::string found;
  std::string why;
  std::string fix;
};

using Probe = Finding (*)(const HostView&);

struct Check {
  const char* id;           // "isolation.userns": group, dot, name
  const char* group;        // one of kGroups
  const char* description;  // why it matters to togo, one sentence
  Probe probe;
  const char* hint;  // the usual fix when it is not ok
  Severity severity;
  bool bench = false;  // only with --storage-bench (takes seconds)
};

/// The groups, in the order they are printed.
inline constexpr const char* kGroups[] = {"host", "isolation", "storage",
                                          "vm",   "network",   "cross-arch"};

/// Every check, grouped in kGroups order.
const std::vector<Check>& all_checks();
/// The entry with this id, or null.
const Check* find_check(const std::string& id);

/// One check's answer, ready to print.
struct CheckResult {
  std::string id, group;
  Status status = Status::kOk;
  std::string found, why, fix;
  Severity severity = Severity::kOptional;
};

struct RunOptions {
  bool storage_bench = false;  // also run the bench entries, one after another
  /// How long the concurrent probes get in all; one still running then is
  /// reported as degraded ("did not answer") and left behind.
  std::chrono::milliseconds deadline{900};
};

/// Runs `table`'s probes against `view`. Results keep the table's order.
std::vector<CheckResult> run_checks(const HostView& view, const std::vector<Check>& table,
                                    const RunOptions& options = {});

/// The result of one entry's probe, with the entry's description and hint
/// filled in where the probe left why/fix empty (fix stays empty when ok).
CheckResult complete(const Check& check, Finding finding);

/// False when a critical check is missing: the default mode cannot run.
bool default_mode_runs(const std::vector<CheckResult>& results);

}  // namespace togo::doctor
