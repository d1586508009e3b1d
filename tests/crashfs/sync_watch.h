// `togo-crashfs watch`: runs a command so that its syncfs(2) and sync(2)
// calls are recorded in a togo-crashfs log, in order with the operations
// around them.
//
// FUSE does not forward syncfs to the file system (the kernel sends
// FUSE_SYNCFS only to virtiofs, and libfuse 3.14 has no hook for it), and
// sync(2) never reaches a FUSE server. So the command runs under a seccomp
// filter that stops those two calls at entry (SECCOMP_RET_USER_NOTIF); the
// watcher, for a syncfs of a file on the mount or for any sync, reads a signal
// xattr on the mount's root (the daemon logs a `syncfs`/`sync` record when it
// sees it) and only then lets the call go on. Operations the caller finished
// before the call were logged before their replies, so they come first.
#pragma once

#include <string>

namespace togo::crashfs {

/// Runs argv (argv[0] searched in PATH) watched as described above and
/// returns the exit status to use: the command's, or 128+N if signal N killed
/// it; 125 if the watcher itself failed. If descendants that inherited the
/// filter outlive the command (a daemon it started), a background copy of
/// the watcher keeps serving them, detached from our stdio, until they exit.
/// If `uid` >= 0 the command runs as that uid, with the same number as gid
/// and no supplementary groups (the integration harness's convention),
/// switched to after the filter is in place. As root the filter needs no
/// no_new_privs, so setuid helpers such as newuidmap keep working; a watcher
/// that is not root sets no_new_privs, which disables them.
int watch_main(const std::string& mountpoint, char** argv, int uid = -1);

}  // namespace togo::crashfs
