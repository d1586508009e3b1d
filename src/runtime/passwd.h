// The name, home and login shell of a uid in an env's /etc/passwd, with
// defaults when it has none: what a session starts with. Bounded fields, no
// allocation.
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

}  // namespace togo::runtime
