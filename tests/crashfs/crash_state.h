// Crash states from a togo-crashfs recording: which on-disk states a crash
// at each point of the recorded run could leave, and building them.
//
// A cut `c` means ops[0, c) were issued when the machine died. What of them
// survived is decided by a persistence model (strict POSIX by default):
//   - a data or attribute operation on an object (write, truncate, chmod,
//     chown, utimens, setxattr, fallocate) survives iff an fsync of that
//     object, or a syncfs/sync, follows it before the cut; an fdatasync
//     counts for writes, fallocate and size changes only;
//   - a namespace operation (create, mknod, mkdir, symlink, link, unlink,
//     rmdir, rename) survives iff an fsync of its directory (both
//     directories for a rename), or a syncfs/sync, follows it before the cut.
//     With ModelOptions::fsync_persists_entry (ext4 and XFS behave so), an
//     fsync of the object it created, linked or moved also makes it survive;
//   - a rename is atomic: both of its names change, or neither.
// Replay then applies the surviving operations in log order to a copy of the
// tree as it was when recording began; an operation whose precondition an
// earlier lost one would have made true (a write to a file whose creation
// was lost, a rename of a name that is not there) is dropped too.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "log_format.h"

namespace togo::crashfs {

/// A parsed recording.
struct Log {
  uint64_t root_id = 0;
  std::vector<Op> initial;  // kEntry records: the tree when recording began
  std::vector<Op> ops;      // namespace, object and barrier records, in order
  struct Mark {
    std::string label;
    size_t at = 0;  // ops.size() when the mark was recorded
  };
  std::vector<Mark> marks;
  std::string data_path;  // the side file holding written bytes

  /// The position of the first mark named `label`: the number of operations
  /// recorded before it. Cuts at or after it come after what preceded it.
  std::optional<size_t> mark(std::string_view label) const;
  /// "#12 write sub/f off=0 len=4096" for messages.
  std::string describe(size_t op) const;
};

/// Parses a log's text; `data_path` is where its written bytes are.
Result<Log> parse_log(std::string_view text, std::string data_path);
/// Reads and parses `path` (written bytes in `path`.data).
Result<Log> load_log(const std::string& path);

enum class Mode {
  kAllApplied,     // every operation before the cut: what the processes saw
  kDropUnsynced,   // only what the model says survived
  kTornLastWrite,  // as kDropUnsynced, plus a prefix of the last lost write
  kReorder,        // as kDropUnsynced, plus some of the lost operations
};
const char* mode_name(Mode m);
/// The four modes, for loops.
inline constexpr Mode kAllModes[] = {Mode::kAllApplied, Mode::kDropUnsynced, Mode::kTornLastWrite,
                                     Mode::kReorder};
/// The three crash modes (not kAllApplied).
inline constexpr Mode kCrashModes[] = {Mode::kDropUnsynced, Mode::kTornLastWrite, Mode::kReorder};

struct ModelOptions {
  /// An fsync of a file (or directory) also makes the entry that created,
  /// linked or renamed it durable, as ext4 and XFS do. Off: strict POSIX.
  bool fsync_persists_entry = false;
  /// kReorder: at most this many states per cut.
  size_t max_reorder_states = 8;
  /// kTornLastWrite: a write longer than this is also torn at this size
  /// (besides at half its length, rounded down to a multiple of it).
  uint64_t sector = 512;
};

/// The cuts to try: every one, 0..ops.size(), or at most `max_cuts` (0: no
/// limit), keeping first those next to barriers and marks and the ends.
std::vector<size_t> cut_points(const Log& log, size_t max_cuts = 0);

/// For a crash at `cut`: which of ops[0, cut) survive under the model.
std::vector<bool> persisted(const Log& log, size_t cut, const ModelOptions& options = {});

/// One state a crash could leave.
struct CrashState {
  size_t cut = 0;
  Mode mode = Mode::kDropUnsynced;
  std::vector<size_t> applied;    // operations applied whole, ascending
  std::optional<size_t> torn_op;  // a write applied in part ...
  uint64_t torn_keep = 0;         // ... its first this many bytes
  std::string variant;            // which state of the mode, for messages

  /// "cut 17 of 40 (after #16 fsync sub/f), reorder without #12: 14 ops applied".
  std::string describe(const Log& log) const;
};

/// The states of `mode` for a crash at `cut`: one for kAllApplied and
/// kDropUnsynced, up to two for kTornLastWrite (none if nothing was lost),
/// up to max_reorder_states for kReorder (none if nothing was lost): all
/// un-persisted namespace operations without un-persisted data; then, for
/// lost operations u sampled evenly, "only u" and "without u".
std::vector<CrashState> crash_states(const Log& log, size_t cut, Mode mode,
                                     const ModelOptions& options = {});

/// The distinct states of `modes` over cut_points(log, max_cuts). Of states
/// that apply the same operations the one with the latest cut is kept: a
/// test that checks "everything acknowledged before the cut is there" then
/// makes its strongest claim about that state. Ordered by cut.
std::vector<CrashState> all_crash_states(const Log& log, std::span<const Mode> modes,
                                         const ModelOptions& options = {}, size_t max_cuts = 0);

/// One operation replay will perform, with the paths (from the root, as
/// components) where the model says its objects are at that moment.
struct ReplayStep {
  size_t op = 0;
  std::vector<std::string> dir;   // the directory holding `name`
  std::string name;               // empty: `dir` itself (the root)
  std::vector<std::string> dir2;  // rename: the target directory; link: the source's
  std::string name2;
  uint64_t keep = UINT64_MAX;  // kWrite: bytes to apply
};
struct ReplayPlan {
  std::vector<ReplayStep> steps;
  std::vector<std::string> dropped;  // operations skipped, and why
};
/// Decides, without touching disk, what replaying `state` does.
ReplayPlan plan_replay(const Log& log, const CrashState& state);

struct Materialized {
  size_t applied = 0;
  std::vector<std::string> dropped;
};
/// Builds in `dest_dir` (which must not exist, or be an empty directory) the
/// tree `state` describes: a copy of `snapshot_dir` (the tree when recording
/// began) with the plan's steps applied. Every path is resolved beneath
/// `dest_dir` one component at a time without following symlinks, so a log
/// cannot make replay touch anything outside it. Run as root (owners).
Result<Materialized> materialize(const std::string& snapshot_dir, const Log& log,
                                 const CrashState& state, const std::string& dest_dir);
/// The first state of `mode` at `cut` (kAllApplied if the mode has none).
Result<Materialized> materialize(const std::string& snapshot_dir, const Log& log, size_t cut,
                                 Mode mode, const std::string& dest_dir,
                                 const ModelOptions& options = {});

/// Copies the tree at `dir` to `dest` (which must not exist, or be an empty
/// directory): contents (sparse files stay sparse), owners, modes, all
/// xattrs, hardlinks, symlinks, devices, fifos, sockets and times. Does not
/// cross into other file systems mounted inside.
Result<void> snapshot(const std::string& dir, const std::string& dest);

}  // namespace togo::crashfs
