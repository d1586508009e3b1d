// The verbs of the command line and what each one does.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "cli/args.h"
#include "store/store.h"

namespace togo::cli {

/// Documented exit statuses (docs/exit-codes.md). `togo run` passes the
/// command's own status through and uses 125-127 for its own failures.
enum ExitCode {
  kExitOk = 0,
  kExitFailed = 1,
  kExitUsage = 2,
  kExitNotFound = 3,
  kExitConflict = 4,
  kExitBadInput = 5,
  kExitDamaged = 6,  // fsck: damage that is still there
  kExitRunFailed = 125,
  kExitCannotExecute = 126,
  kExitCommandNotFound = 127,
};
int exit_code_for(const Error& e);

/// What a command needs besides its arguments.
class Context {
 public:
  explicit Context(const Invocation& inv) : inv(inv) {}
  const Invocation& inv;
  bool json() const { return inv.flag("--json"); }
  /// The store's path (see store::locate).
  Result<std::string> store_path();
  /// Opens the store; for writing, creates it if needed.
  Result<store::Store> open_store(store::Store::Access access);
  /// Lines on stderr for the person: "togo: <line>" for each line of `text`.
  static void notice(const std::string& text);
};

using Handler = Result<int> (*)(Context&);

/// Every verb, in the order `togo help` lists them.
std::span<const VerbSpec> verbs();
Handler handler_for(const VerbSpec& verb);

Result<int> cmd_help(Context& c);
Result<int> cmd_version(Context& c);
Result<int> cmd_image_import(Context& c);
Result<int> cmd_image_create(Context& c);
Result<int> cmd_image_ls(Context& c);
Result<int> cmd_image_inspect(Context& c);
Result<int> cmd_image_rm(Context& c);
Result<int> cmd_gc(Context& c);
Result<int> cmd_fsck(Context& c);
Result<int> cmd_commit(Context& c);
Result<int> cmd_image_export(Context& c);
Result<int> cmd_image_pull(Context& c);
Result<int> cmd_image_push(Context& c);
Result<int> cmd_create(Context& c);
Result<int> cmd_ls(Context& c);
Result<int> cmd_rm(Context& c);
Result<int> cmd_run(Context& c);
Result<int> cmd_exec(Context& c);
Result<int> cmd_start(Context& c);
Result<int> cmd_stop(Context& c);
Result<int> cmd_ps(Context& c);
Result<int> cmd_logs(Context& c);
Result<int> cmd_config(Context& c);
Result<int> cmd_export(Context& c);
Result<int> cmd_import(Context& c);
Result<int> cmd_doctor(Context& c);

}  // namespace togo::cli
