// Pieces the crash tests (crash_kill_test.cc, crash_lose_test.cc) share:
// tiny busybox images, mmdebstrap played by a script, and an image in a
// local registry to pull.
#pragma once

#include <string>
#include <vector>

#include "harness.h"

namespace togo::test {

/// Writes one busybox image tarball per name in `dir` (readable by all):
/// <dir>/<name>.tar holds /bin/{busybox,sh,cat,true,echo,mv}, /etc/passwd,
/// /etc/group, the usual empty directories, and /etc/<name> with "<name>\n";
/// the first name's tarball has no such file. Returns their paths.
std::vector<std::string> make_busybox_tars(const std::string& dir, const std::vector<std::string>& names);

/// Writes <dir>/bin/mmdebstrap, which prints `tar` as mmdebstrap prints the
/// tarball it builds, and returns the PATH entry ("PATH=...") that finds it.
std::string fake_mmdebstrap(const std::string& dir, const std::string& tar);

/// Imports `tar` into a store of its own under `dir` and pushes it as
/// `ref`; "" or what went wrong.
std::string push_image(const std::string& dir, const std::string& tar, const std::string& ref,
                       const RunOptions& o);

/// `togo fsck` found the store clean, or, if `pull_interrupted`, nothing
/// but downloads a pull left for the next pull to resume.
bool fsck_whole(const RunResult& fsck, bool pull_interrupted);

}  // namespace togo::test
