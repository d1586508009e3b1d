// Writing a directory tree into a tar archive: the reverse of unpack, for
// exporting environments and for turning a writable layer into an image
// layer.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>

#include "base/error.h"

struct archive;

namespace togo::image {

struct PackOptions {
  /// The tree is an overlayfs upper directory: write it in OCI form. A
  /// whiteout (a 0/0 character device) becomes an empty regular file
  /// ".wh.NAME"; a directory whose trusted.overlay.opaque or
  /// user.overlay.opaque is "y" gets a ".wh..wh..opq" entry right after its
  /// own. Overlay state OCI cannot express (a redirected directory, a
  /// metacopy file whose data lives in a lower layer) is an error.
  bool overlay_whiteouts = false;
  /// Put in front of every name: "rootfs" gives "rootfs/", "rootfs/etc", ...
  /// A relative path without "..". Empty: the root is "./", the rest "etc",
  /// "etc/passwd".
  std::string prefix;
  /// Called for each entry below the root with its path relative to the
  /// root ("etc/passwd") and its lstat; false leaves the entry out, and for
  /// a directory everything under it. May be empty.
  std::function<bool(const std::string& path, const struct stat& st)> filter;
};

struct PackStats {
  uint64_t entries = 0;      // headers written, markers included
  uint64_t bytes = 0;        // file data written (holes not counted)
  uint64_t hardlinks = 0;    // hardlink entries
  uint64_t whiteouts = 0;    // ".wh.NAME" entries (overlay_whiteouts)
  uint64_t opaque_dirs = 0;  // ".wh..wh..opq" entries (overlay_whiteouts)
  uint64_t sockets = 0;      // sockets left out: an archive cannot hold them
  uint64_t filtered = 0;     // entries the filter left out (not their children)
};

/// Writes the tree open as `root` (not closed) into `aw`, a libarchive
/// writer the caller has given a format and filters and opened; it is left
/// open. Use a pax format: only pax keeps extended attributes, nanosecond
/// times and sparse maps.
///
/// Entries come in a fixed order, so one tree always gives one archive: the
/// root, then depth first, each directory before its children, its opaque
/// marker, its whiteouts, then its other entries, each group sorted by name.
/// Each entry carries its type, permission bits, numeric owner (no user or
/// group names), mtime to the nanosecond (no atime or ctime) and extended
/// attributes other than overlayfs's own (trusted.overlay.*,
/// user.overlay.*), sorted by name. A second name of an inode already
/// written is a hardlink entry to the first. A sparse file is described by
/// its data extents (SEEK_DATA/SEEK_HOLE) and only its data is written.
/// Character and block devices and fifos are written; sockets are counted
/// and left out.
///
/// SECURITY: the tree is walked with directory fds only (openat O_NOFOLLOW,
/// fstatat AT_SYMLINK_NOFOLLOW); no symlink in it is ever followed, and
/// nothing is opened that could block or act on open (devices, fifos).
///
/// Errors name the path: "packing etc/shadow: opening: Permission denied".
Result<PackStats> pack(struct archive* aw, int root, const PackOptions& opts);

}  // namespace togo::image
