// Recording a test store through togo-crashfs, for crash-consistency tests:
//
//   TOGO_REQUIRE_CRASHFS();
//   auto rec = crashfs::CrashRecorder::start(store);      // store is now a mount
//   ASSERT_TRUE(rec) << rec.error().message;
//   run(rec->watched({togo_bin(), "--store", store, "image", "import", ...}));
//   ASSERT_TRUE(rec->mark("imported"));                   // optional labels
//   auto recording = rec->finish();                       // store is a plain dir again
//   ASSERT_TRUE(recording) << recording.error().message;
//   for (const auto& s : recording->states()) {
//     TempDir d;
//     auto m = recording->materialize(s, d.sub("store"));
//     ASSERT_TRUE(m) << s.describe(recording->log()) << ": " << m.error().message;
//     ... togo fsck on d.sub("store"); what was acknowledged before s.cut is there ...
//   }
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "crash_state.h"

namespace togo::crashfs {

/// The togo-crashfs binary this library was built with.
std::string crashfs_bin();
/// Why recording cannot work here (not root, no usable /dev/fuse, no
/// togo-crashfs), or "" if it can.
std::string crashfs_unavailable_reason();

/// Skips the current test, saying why, when recording cannot work here.
#define TOGO_REQUIRE_CRASHFS()                                                \
  do {                                                                        \
    std::string crashfs_why_ = ::togo::crashfs::crashfs_unavailable_reason(); \
    if (!crashfs_why_.empty()) GTEST_SKIP() << crashfs_why_;                  \
  } while (0)

struct RecorderOptions {
  /// Let the daemon fsync the backing files too (slower; the replay does not
  /// need it).
  bool real_sync = false;
  /// Run the daemon with libfuse's debug output in its stderr file.
  bool debug = false;
};

/// A finished recording: the log, the tree as it was at the start, and the
/// work directory holding them (removed on destruction unless keep() was
/// called or $TOGO_CRASHFS_KEEP is set and not "0").
class Recording {
 public:
  Recording(std::string work_dir, Log log);
  Recording(Recording&& o) noexcept;
  Recording& operator=(Recording&&) = delete;
  ~Recording();

  const Log& log() const { return log_; }
  /// The copy of the store taken before recording began.
  std::string snapshot_dir() const { return work_ + "/snapshot"; }
  /// The work directory (log, log.data, snapshot/, daemon.err).
  const std::string& dir() const { return work_; }
  /// Leaves the work directory in place, to look at after a failure.
  void keep() { keep_ = true; }

  /// all_crash_states() of this recording.
  std::vector<CrashState> states(std::span<const Mode> modes = kCrashModes,
                                 const ModelOptions& options = {}, size_t max_cuts = 0) const;
  /// Builds `state` in `dest` (which must not exist, or be empty).
  Result<Materialized> materialize(const CrashState& state, const std::string& dest) const;

 private:
  std::string work_;
  Log log_;
  bool keep_ = false;
};

/// Puts a store under togo-crashfs while it lives: start() copies the store
/// (the snapshot), moves it into a private work directory next to it, and
/// mounts the pass-through at the store's own path, so togo is pointed at the
/// same path as before. finish() unmounts, moves the store back (holding
/// everything the recorded run did) and returns the recording.
class CrashRecorder {
 public:
  /// Starts recording `store` (a directory, or a path where none exists yet:
  /// recording then starts from an empty directory). Needs root.
  static Result<CrashRecorder> start(const std::string& store, const RecorderOptions& options = {});
  CrashRecorder(CrashRecorder&& o) noexcept;
  CrashRecorder& operator=(CrashRecorder&&) = delete;
  /// Finishes (ignoring errors) if finish() was not called.
  ~CrashRecorder();

  /// `argv` run under `togo-crashfs watch`, so its syncfs(2) and sync(2)
  /// calls are recorded (FUSE does not forward them). Without it they are
  /// not recorded, and the model counts them as not having happened.
  /// `as_uid`: the command runs as that uid (gid the same, no groups), the
  /// switch made after the filter is in place so setuid helpers still work;
  /// use it instead of RunOptions::as_uid (give the environment in
  /// RunOptions::env then).
  std::vector<std::string> watched(const std::vector<std::string>& argv,
                                   std::optional<uid_t> as_uid = std::nullopt) const;
  /// Records a label between operations: everything that finished before
  /// this call comes before it in the log (Log::mark()).
  Result<void> mark(const std::string& label);
  /// Unmounts (waiting up to 10 s for users of the mount to go), stops the
  /// daemon, moves the store back and loads the log.
  Result<Recording> finish();

  const std::string& store() const { return store_; }
  const std::string& work_dir() const { return work_; }

 private:
  CrashRecorder() = default;
  Result<void> stop();

  std::string store_, work_;
  pid_t daemon_ = -1;
  bool active_ = false;
};

}  // namespace togo::crashfs
