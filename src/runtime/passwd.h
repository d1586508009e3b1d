// Reading /etc/passwd inside an env without allocating: the child looks up
// the user's home and login shell after it has changed root.
#pragma once

#include <cstddef>

namespace togo::runtime {

struct PasswdEntry {
  char name[64];
  char home[256];
  char shell[256];
};

/// Finds the line for `uid` in passwd-format `text`. Returns false, and
/// fills defaults (root, /root or /, /bin/sh), when there is none.
bool find_passwd_uid(const char* text, size_t len, unsigned uid, PasswdEntry* out);

/// Reads up to 256 KiB of `path` into a static buffer and calls
/// find_passwd_uid. Not reentrant; for the single-threaded child.
bool lookup_passwd_uid(const char* path, unsigned uid, PasswdEntry* out);

}  // namespace togo::runtime
