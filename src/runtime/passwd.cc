#include "runtime/passwd.h"

#include <cstring>

namespace togo::runtime {

namespace {

void copy_field(char* dst, size_t cap, const char* src, size_t len) {
  if (len >= cap) len = cap - 1;
  std::memcpy(dst, src, len);
  dst[len] = '\0';
}

void set_defaults(unsigned uid, PasswdEntry* out) {
  copy_field(out->name, sizeof out->name, uid == 0 ? "root" : "user", 4);
  if (uid == 0)
    copy_field(out->home, sizeof out->home, "/root", 5);
  else
    copy_field(out->home, sizeof out->home, "/", 1);
  copy_field(out->shell, sizeof out->shell, "/bin/sh", 7);
}

}  // namespace

bool find_passwd_uid(const char* text, size_t len, unsigned uid, PasswdEntry* out) {
  set_defaults(uid, out);
  const char* end = text + len;
  for (const char* line = text; line < end;) {
    const char* eol = static_cast<const char*>(std::memchr(line, '\n', end - line));
    if (!eol) eol = end;
    // name:passwd:uid:gid:gecos:home:shell
    const char* f[7];
    size_t flen[7];
    int n = 0;
    const char* p = line;
    while (n < 7) {
      const char* colon = static_cast<const char*>(std::memchr(p, ':', eol - p));
      const char* stop = colon && n < 6 ? colon : eol;
      f[n] = p;
      flen[n] = static_cast<size_t>(stop - p);
      n++;
      if (stop == eol) break;
      p = stop + 1;
    }
    bool match = false;
    // Digits only and no leading zero, as the user database reads ids.
    if (n == 7 && flen[2] > 0 && flen[2] < 11 && !(flen[2] > 1 && f[2][0] == '0')) {
      unsigned long v = 0;
      match = true;
      for (size_t i = 0; i < flen[2]; i++) {
        char c = f[2][i];
        if (c < '0' || c > '9') {
          match = false;
          break;
        }
        v = v * 10 + static_cast<unsigned long>(c - '0');
      }
      match = match && v == uid;
    }
    if (match) {
      copy_field(out->name, sizeof out->name, f[0], flen[0]);
      if (flen[5] > 0 && f[5][0] == '/') copy_field(out->home, sizeof out->home, f[5], flen[5]);
      if (flen[6] > 0 && f[6][0] == '/') copy_field(out->shell, sizeof out->shell, f[6], flen[6]);
      return true;
    }
    line = eol + 1;
  }
  return false;
}

}  // namespace togo::runtime
