// The confined tar unpacker: writes the entries of an image layer into a
// directory, treating the archive as hostile. Nothing an entry says can make
// it write, link or change metadata outside that directory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/error.h"

struct archive;

namespace togo::image {

struct UnpackOptions {
  /// The caller cannot chown to other ids nor create device nodes: owners
  /// are left as the caller, character and block devices are skipped, and
  /// trusted.* / security.* attributes the kernel refuses are skipped.
  bool rootless = false;
  /// Receives one line per kind of thing skipped, after the last entry, e.g.
  /// "skipped 12 device nodes: creating devices needs root". May be empty.
  std::function<void(const std::string&)> warn;
};

struct UnpackStats {
  uint64_t entries = 0;    // headers read, including skipped ones
  uint64_t files = 0;      // regular files written
  uint64_t dirs = 0;       // directory entries (created or updated)
  uint64_t symlinks = 0;
  uint64_t hardlinks = 0;
  uint64_t bytes = 0;      // sum of regular file sizes (holes included)
  uint64_t skipped = 0;    // entries not created (devices when rootless, sockets)
};

/// Extracts every entry of `ar` (a libarchive reader already opened on a tar
/// stream) into the directory open as `root`, which is not closed.
///
/// SECURITY: every entry name is cleaned by clean_entry_path; its parent
/// directory is opened beneath `root` refusing symlinks and "..", and the last
/// component is created relative to that directory fd only. Hardlink targets
/// are resolved the same way and must already have been extracted. Symlinks
/// are created with their target text unchanged (they are resolved later,
/// inside the environment). Overlay attributes (trusted.overlay.*,
/// user.overlay.*) are never applied.
///
/// Files are written 0600 and directories created 0700 while unpacking; final
/// directory modes and times are applied after the last entry, deepest first.
/// Missing parent directories are created 0755. A name that already exists is
/// replaced, except that a directory entry over a directory updates it; a
/// non-empty directory is never replaced.
///
/// Errors name the entry: "entry usr/bin/x: <why>"; hostile or malformed
/// input is ErrorKind::kBadInput. On error, part of the archive may have been
/// written: the caller removes the directory.
Result<UnpackStats> unpack(struct archive* ar, int root, const UnpackOptions& opts);

}  // namespace togo::image
