// The drive a store lives on, for messages about it.
#pragma once

#include <optional>
#include <string>

#include "base/fd.h"

namespace togo::store {

/// "DEVICE at MOUNTPOINT" of the filesystem holding `path`, from
/// /proc/self/mountinfo (the longest mount point that contains it); "" if
/// unknown.
std::string drive_of(const std::string& path);

/// The store's marker opened past the page cache (O_DIRECT), so that a read
/// of it reaches the drive; an invalid Fd where the filesystem refuses
/// O_DIRECT (tmpfs) or the marker cannot be opened.
Fd open_past_cache(int store_fd);

/// If reading the store's marker past the page cache fails with an I/O
/// error, what to tell a person ("the drive holding the store (...) returns
/// I/O errors: ..."); nothing while the drive answers. The marker is
/// opened relative to `store_fd`, the store's directory, so it is the
/// drive this store is on that is asked (not whatever is mounted at
/// `store_path` now, which only names it in the message).
std::optional<std::string> drive_failure(int store_fd, const std::string& store_path);

}  // namespace togo::store
