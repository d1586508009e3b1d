// `togo doctor`: what this host can run, what it lacks, and how to fix it.
#include <cstdio>

#include "base/json.h"
#include "cli/commands.h"
#include "doctor/checks.h"
#include "doctor/report.h"

namespace togo::cli {

Result<int> cmd_doctor(Context& c) {
  // The store is only located, never opened or created: the doctor must
  // work where togo cannot yet.
  std::string store = TRY(c.store_path());
  doctor::HostView view = doctor::HostView::real(store);
  doctor::RunOptions options;
  options.storage_bench = c.inv.flag("--storage-bench");
  auto results = doctor::run_checks(view, doctor::all_checks(), options);
  if (c.json()) {
    std::printf("%s\n", json::dump(doctor::to_json(results)).c_str());
  } else {
    std::string who = view.user_name();
    if (view.user_in_passwd()) who += " (uid " + std::to_string(view.uid) + ")";
    std::string header = "togo doctor: " + who + ", store " + store;
    std::fputs(doctor::format_text(results, header).c_str(), stdout);
  }
  std::fflush(stdout);
  return doctor::default_mode_runs(results) ? kExitOk : kExitFailed;
}

}  // namespace togo::cli
