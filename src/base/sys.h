// Syscalls wrapped once: each wrapper puts the call's name and key argument
// in the error, so callers add only their own context.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <string>
#include <string_view>

#include "base/error.h"
#include "base/fd.h"

namespace togo::sys {

/// openat(2); O_CLOEXEC is always added.
Result<Fd> open_at(int dirfd, const std::string& path, int flags, mode_t mode = 0);
/// openat2(2) with RESOLVE_* flags; O_CLOEXEC is always added.
Result<Fd> open_at2(int dirfd, const std::string& path, int flags, mode_t mode,
                    unsigned long long resolve);
/// SECURITY: opens `path` as a directory beneath `root`, refusing any symlink
/// and any `..` on the way (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).
Result<Fd> open_dir_beneath(int root, const std::string& path);
Result<void> mkdir_at(int dirfd, const std::string& name, mode_t mode);
/// mkdir that succeeds if a directory is already there.
Result<void> ensure_dir_at(int dirfd, const std::string& name, mode_t mode);
Result<void> unlink_at(int dirfd, const std::string& name, int flags = 0);
Result<void> rename_at(int olddir, const std::string& oldname, int newdir,
                       const std::string& newname, unsigned flags = 0);
Result<struct stat> stat_at(int dirfd, const std::string& path, int flags);
Result<void> fsync(int fd, const std::string& what);
/// Writes all of `data`, retrying on short writes and EINTR.
Result<void> write_all(int fd, std::string_view data, const std::string& what);
/// Reads until EOF.
Result<std::string> read_all(int fd, const std::string& what);
/// Creates a close-on-exec pipe.
Result<void> pipe(int fds[2]);

}  // namespace togo::sys
