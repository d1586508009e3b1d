// Entry names of tar archives, made safe before anything touches the disk.
// Pure string logic: no file system access, so every rule is unit-tested.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace togo::image {

/// Normalizes a tar entry name to a relative path with no empty, "." or ".."
/// components and no leading or trailing '/': "./usr//bin/./ls/" becomes
/// "usr/bin/ls". The archive root itself ("./", ".", "././") becomes ".".
/// SECURITY: refuses, with ErrorKind::kBadInput, everything that could name a
/// place outside the directory being filled: absolute paths ("absolute
/// path"), any ".." component ("path leaves the image root"), and empty names
/// or names containing a NUL byte. The message does not repeat the name.
Result<std::string> clean_entry_path(std::string_view raw);

/// A clean path cut at its last '/': "a/b/c" is {"a/b", "c"}, "c" is
/// {".", "c"}. Precondition: `clean` came from clean_entry_path and is not ".".
struct PathParts {
  std::string parent;  // "." for a name directly in the root
  std::string base;    // one component, never empty, "." or ".."
};
PathParts split_entry_path(std::string_view clean);

/// A name from an archive made safe to print in one line of an error message:
/// bytes below 0x20 and 0x7f appear as "\xNN", a backslash as "\\".
std::string printable_name(std::string_view raw);

}  // namespace togo::image
