// The impure side of userdb: reading the host's user database and an env's
// own passwd/group, and writing the files an env is shown for `--user`.
//
// The env's image is never changed: the merged files live in the env's run
// directory and are bind-mounted read-only over /etc/passwd and /etc/group
// for the run. The invoking user's home (Invoker::user.home) is shared into
// the env at the same path by the caller.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "runtime/userdb.h"

namespace togo::runtime {

/// Names of the generated files inside an env's run directory.
inline constexpr const char* kRunPasswd = "passwd";
inline constexpr const char* kRunGroup = "group";

/// A file of the host's that its administrator controls (/etc/passwd,
/// /etc/subuid, /etc/resolv.conf...), symlinks followed; empty if it cannot
/// be read.
std::string read_host_file(const char* path);

/// The host's /etc/passwd and /etc/group (empty if unreadable), togo's real
/// ids and the SUDO_*, DOAS_USER, USER/LOGNAME, HOME and SHELL variables.
InvokerFacts read_invoker_facts();
/// resolve_invoker(read_invoker_facts()).
Result<Invoker> read_invoker();

/// SECURITY: reads `path` from an image-controlled tree through `root` with
/// RESOLVE_IN_ROOT (its symlinks cannot leave the tree), refusing anything
/// but a regular file (a FIFO would block, a device would be read) and files
/// over 8 MiB. A missing file reads as empty.
Result<std::string> read_env_file(int root, const std::string& path);

/// The same over overlay layers, `layers` topmost first (the upper dir, then
/// the image's layers): the first layer that has the file wins; an overlay
/// whiteout (a 0/0 character device) ends the search as "missing". A symlink
/// is followed within its own layer only.
Result<std::string> read_layered_file(const std::vector<int>& layers, const std::string& path);

/// True if `path` in the tree is a regular file with an execute bit,
/// resolved as read_env_file does. A session passes "/" of its env.
bool env_has_program(int root, const std::string& path);

/// What an env shows for `--user`.
struct EnvUserFiles {
  std::string passwd, group;
};

/// The env's passwd and group texts with the invoker added (merge_passwd,
/// merge_group). `shell` is the login shell to write, usually the invoker's
/// own: a session in an env that lacks it starts pick_shell's fallback
/// (checked there, inside the env's merged root, which layers cannot show).
Result<EnvUserFiles> env_user_files(std::string_view env_passwd, std::string_view env_group,
                                    const Invoker& who, const std::string& shell);

/// Writes run_dir/passwd and run_dir/group (mode 0644), each only if it does
/// not already hold the same bytes, so a run with nothing new writes nothing.
Result<void> write_env_user_files(int run_dir, const EnvUserFiles& files);

}  // namespace togo::runtime
