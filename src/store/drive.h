// The drive a store lives on, for messages about it.
#pragma once

#include <optional>
#include <string>

namespace togo::store {

/// "DEVICE at MOUNTPOINT" of the filesystem holding `path`, from
/// /proc/self/mountinfo (the longest mount point that contains it); "" if
/// unknown.
std::string drive_of(const std::string& path);

/// If reading the store's marker past the page cache fails with an I/O
/// error, what to tell a person ("the drive holding the store (...) returns
/// I/O errors: ..."); nothing while the drive answers.
std::optional<std::string> drive_failure(const std::string& store_path);

}  // namespace togo::store
