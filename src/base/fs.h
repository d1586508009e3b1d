// Durable file operations: every write that the store relies on goes through
// write_file_atomic (temp name, fsync, rename, directory fsync).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace togo::fs {

/// A name unlikely to collide, for staging: "<prefix><pid>-<random hex>".
std::string temp_name(std::string_view prefix);

/// Writes `data` to `dirfd/name` so that after return the new content is
/// durable and a crash at any point leaves either the old or the new file.
/// `dirfd` is an open directory (not AT_FDCWD: it is fsynced) and `name` one
/// component in it (the temporary file is made, and the rename made durable,
/// in `dirfd`).
Result<void> write_file_atomic(int dirfd, const std::string& name, std::string_view data,
                               mode_t mode = 0644);
/// write_file_atomic, skipped when `dirfd/name` already holds exactly `data`
/// with that mode: generated files are rewritten only when they change.
Result<void> write_file_if_changed(int dirfd, const std::string& name, std::string_view data,
                                   mode_t mode = 0644);
/// Copies everything from offset 0 of the regular file `in` to `out` (at
/// its offset), in the kernel where it can. Neither is synced.
Result<void> copy_file(int in, int out, const std::string& what);
/// Reads a whole file relative to `dirfd` (no symlink following at the end).
Result<std::string> read_file(int dirfd, const std::string& path);
/// fsync of a directory, so renames and creations in it are durable.
Result<void> sync_dir(int dirfd, const std::string& what);
/// sync_dir of the directory `dirfd/path`, opened without following a
/// symlink at its end: the other side of a rename, or the parent that
/// gained a name.
Result<void> sync_dir_at(int dirfd, const std::string& path);
/// Creates every missing directory of an absolute or relative path.
Result<void> make_dirs(const std::string& path, mode_t mode = 0755);
/// Removes `dirfd/name` and everything under it, never following symlinks,
/// making read-only directories writable as it goes. Missing is not an error.
Result<void> remove_tree(int dirfd, const std::string& name);
/// The names in a directory (no "." or ".."), in the order readdir gives.
Result<std::vector<std::string>> read_dir(int dirfd);
/// read_dir, with an empty list if the directory cannot be read.
std::vector<std::string> list_dir(int dirfd);
/// Size in bytes of all regular files under a directory (hardlinks once).
Result<unsigned long long> tree_size(int dirfd);

/// Joins path parts with exactly one '/'.
std::string join(std::string_view a, std::string_view b);
/// The absolute form of `path` against the current directory (no symlink
/// resolution, `.` and `..` folded lexically).
std::string absolute(std::string_view path);

/// The first `dir/name` for the directories of `search_path` (':'-separated,
/// as $PATH) that is a regular file this user may execute; "" if none. Only
/// absolute directories are searched: a relative one ("", ".") would run
/// whatever the working directory holds. `name` is one component.
std::string find_program(std::string_view name, std::string_view search_path);

}  // namespace togo::fs
