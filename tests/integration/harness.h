// Helpers for integration tests that run the real binaries: `togo` (TOGO_BIN)
// and the probe (TOGO_PROBE), both set by CMake as compile definitions.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#ifndef TOGO_BIN
#error "TOGO_BIN must be defined to the path of the togo binary"
#endif
#ifndef TOGO_PROBE
#error "TOGO_PROBE must be defined to the path of the togo-probe binary"
#endif

namespace togo::test {

/// What a finished child did. `status` is its exit code, or 128+N if signal N
/// killed it (as a shell reports it).
struct RunResult {
  int status = -1;
  std::string out, err;
};

struct RunOptions {
  /// Written to the child's stdin, which is then closed.
  std::string input;
  /// Run as this uid (and the same number as gid, no supplementary groups),
  /// with a minimal environment: PATH, HOME (the temp root: $TMPDIR or /tmp),
  /// plus `env`. Needs root.
  std::optional<uid_t> as_uid;
  /// Extra KEY=VALUE entries; they replace inherited ones of the same KEY.
  std::vector<std::string> env;
  /// After this many seconds the child's process group is killed and the test
  /// fails with what was captured so far.
  int timeout_s = 120;
  /// Working directory of the child; empty keeps ours.
  std::string cwd;
};

/// The environment a child of run() gets: ours, or for `as_uid` a minimal
/// one (PATH, and HOME set to the temp root); `env` replaces same-named keys.
std::vector<std::string> child_environment(const RunOptions& o);

/// Runs argv[0] (searched in PATH if it has no '/') with fork/exec, no shell.
/// The child gets its own process group and only fds 0, 1 and 2. If it cannot
/// be started, status is 127 (not found) or 126 and `err` says why.
RunResult run(const std::vector<std::string>& argv, const RunOptions& o = {});

/// Runs TOGO_BIN with `--store <store>` before `args`.
RunResult togo(const std::string& store, const std::vector<std::string>& args,
               const RunOptions& o = {});

/// Paths of the binaries under test.
inline std::string togo_bin() { return TOGO_BIN; }
inline std::string probe_bin() { return TOGO_PROBE; }

/// Seconds on the monotonic clock, for deadlines and durations.
double now_s();

/// "status=N\nstdout:\n...\nstderr:\n..." for failure messages.
std::string describe(const RunResult& r);

/// A fresh directory (mkdtemp under $TMPDIR or /tmp, mode 0755, optionally
/// owned by `owner`:`owner`), removed with everything in it on destruction.
/// Mounts left under it are detached first (when root), so removal never
/// reaches into another filesystem.
class TempDir {
 public:
  explicit TempDir(std::optional<uid_t> owner = std::nullopt);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  /// path() + "/" + name.
  std::string sub(const std::string& name) const;

 private:
  std::string path_;
};

/// True if /bin/busybox exists and is statically linked (Debian's
/// busybox-static), so it runs inside an image without libc.
bool have_busybox();
/// Why have_busybox() is false, for a skip message; empty if it is true.
std::string busybox_missing_reason();

/// Skips the current test, saying why, when there is no static busybox.
#define TOGO_REQUIRE_BUSYBOX()                                           \
  do {                                                                   \
    if (!::togo::test::have_busybox())                                   \
      GTEST_SKIP() << ::togo::test::busybox_missing_reason();            \
  } while (0)

/// Builds a tiny root filesystem in `dir`/rootfs (busybox with applet links
/// in /bin, /usr/bin/togo-probe, /etc/os-release with ID=togotest, passwd,
/// group, empty /root /tmp(1777) /proc /dev /sys /usr/sbin, empty
/// /etc/hostname) and returns the path of `dir`/rootfs.tar.gz (entries named
/// "bin/busybox", owned by 0:0). Built once per process: later calls return
/// the first result while it still exists. Fails the test (empty result) if it
/// cannot be built; call TOGO_REQUIRE_BUSYBOX() first.
std::string build_test_rootfs(const std::string& dir);

/// build_test_rootfs() in a directory that lives until the process exits.
std::string test_rootfs_tar();
/// The unpacked tree behind test_rootfs_tar().
std::string test_rootfs_dir();

/// The probe's report as key -> values in order (`mount=` repeats).
std::map<std::string, std::vector<std::string>> parse_probe(const std::string& out);
/// The first value of `key`, or "" if absent.
std::string probe_value(const std::map<std::string, std::vector<std::string>>& report,
                        const std::string& key);

/// A uid with no passwd entry, for rootless tests run by root.
uid_t unprivileged_uid();
bool running_as_root();

}  // namespace togo::test
