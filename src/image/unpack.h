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

/// What an OCI whiteout entry ("dir/.wh.NAME", "dir/.wh..wh..opq") does.
enum class WhiteoutMode {
  /// The directory is one layer, to be stacked as an overlayfs lower
  /// directory: ".wh.NAME" becomes an overlay whiteout (a 0/0 character
  /// device named NAME, which needs no privilege since Linux 5.8) and the
  /// opaque marker sets user.overlay.opaque=y on its directory (read by
  /// overlayfs mounted with `userxattr`), plus trusted.overlay.opaque=y where
  /// the kernel allows it (root).
  kOverlay,
  /// The directory already holds the layers below, merged (a private copy):
  /// ".wh.NAME" deletes NAME with everything under it and the opaque marker
  /// deletes its directory's children. What this same layer wrote is kept:
  /// whiteouts only act on lower layers.
  kApply,
};

struct UnpackOptions {
  /// The default suits the store's layers/<hex>/root directories; a private
  /// copy of a whole image built layer over layer wants kApply.
  WhiteoutMode whiteouts = WhiteoutMode::kOverlay;
  /// The caller cannot chown to other ids nor create device nodes: owners
  /// are left as the caller, character and block devices are skipped, and
  /// trusted.* / security.* attributes the kernel refuses are skipped.
  bool rootless = false;
  /// Receives one line per kind of thing skipped, after the last entry, e.g.
  /// "skipped 12 device nodes: creating devices needs root". May be empty.
  std::function<void(const std::string&)> warn;
  /// More entries than this (headers, skipped ones included) is kBadInput
  /// "more than N entries": a flood of empty entries costs inodes, not bytes,
  /// so the expansion limits on bytes do not stop it. 0: no limit.
  uint64_t max_entries = 0;
};

struct UnpackStats {
  uint64_t entries = 0;    // headers read, including skipped ones
  uint64_t files = 0;      // regular files written
  uint64_t dirs = 0;       // directory entries (created or updated)
  uint64_t symlinks = 0;
  uint64_t hardlinks = 0;
  uint64_t bytes = 0;      // sum of regular file sizes (holes included)
  uint64_t skipped = 0;    // entries not created (devices when rootless, sockets)
  uint64_t whiteouts = 0;  // ".wh.NAME" entries
  uint64_t opaque_dirs = 0;  // ".wh..wh..opq" entries
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
/// user.overlay.*) are never applied from the archive; the only overlay
/// attribute written is the opaque mark of WhiteoutMode::kOverlay.
///
/// Whiteouts: see WhiteoutMode. SECURITY: whiteout names are checked by
/// parse_whiteout; a deletion is confined like any entry (its directory
/// opened beneath `root`, no symlink followed, a symlink named by a whiteout
/// is removed itself). Within one layer a whiteout never deletes what an
/// earlier entry of the same layer wrote; a whiteout before a directory of
/// the same name makes that directory opaque (kOverlay). In kApply mode an
/// entry over an existing non-empty directory that this layer did not write
/// replaces it, and directories of lower layers that the caller cannot write
/// are made writable while unpacking and get their mode back at the end.
///
/// Files are written 0600 and directories created 0700 while unpacking; final
/// directory modes and times are applied after the last entry, deepest first.
/// Missing parent directories are created 0755. A name that already exists is
/// replaced, except that a directory entry over a directory updates it; a
/// non-empty directory is never replaced (in kApply mode: one this layer
/// wrote into). Extended attributes go on files and directories through
/// their fd, on symlinks and nodes through /proc/self/fd/<dir>/<name>
/// without following the name.
///
/// Errors name the entry: "entry usr/bin/x: <why>"; hostile or malformed
/// input is ErrorKind::kBadInput. On error, part of the archive may have been
/// written: the caller removes the directory.
Result<UnpackStats> unpack(struct archive* ar, int root, const UnpackOptions& opts);

}  // namespace togo::image
