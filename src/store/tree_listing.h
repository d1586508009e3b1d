// The recorded content of an unpacked layer: one line per entry (path,
// type, mode, owner, mtime, size and SHA-256 of regular files, link
// targets, device numbers, xattrs), sorted by path. It is written when the
// layer is unpacked and its digest kept in the catalog, so `togo fsck` can
// tell whether the tree on disk is still what was unpacked, and which
// entries are not.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"

namespace togo::store {

/// The listing of the tree under the directory `rootfd`. Never follows a
/// symlink; a file it cannot read is an error naming it.
Result<std::string> list_tree(int rootfd);

/// The paths whose lines differ between two listings (added, removed or
/// changed), in path order; at most `limit` of them.
std::vector<std::string> listing_differences(const std::string& recorded,
                                             const std::string& found, size_t limit = 20);

}  // namespace togo::store
