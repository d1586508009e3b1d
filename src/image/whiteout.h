// OCI whiteouts: entry names that delete from the layers below instead of
// adding a file (image spec, "Representing Changes"). Pure string logic, so
// every naming rule is unit-tested without a file system.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace togo::image {

/// The prefix that makes a name a whiteout: ".wh.NAME" deletes NAME.
inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
/// The entry that makes its directory opaque: everything the layers below
/// put in the directory is hidden, the directory itself stays.
inline constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

enum class WhiteoutKind {
  kNone,    // an ordinary entry
  kRemove,  // "dir/.wh.NAME": NAME in dir is deleted
  kOpaque,  // "dir/.wh..wh..opq": dir is opaque
};

struct Whiteout {
  WhiteoutKind kind = WhiteoutKind::kNone;
  std::string dir;   // the directory it acts in, "." for the root (empty for kNone)
  std::string name;  // kRemove: the one component deleted from `dir`
};

/// What the clean entry path `clean` (from clean_entry_path) means. Only the
/// name counts, not the entry's type.
/// SECURITY: refuses with kBadInput the names that would delete their own
/// directory or its parent, or a name no file system can hold: ".wh."
/// ("whiteout names nothing"), ".wh.." and ".wh..." ("whiteout of . or .."),
/// ".wh..wh.*" other than the opaque marker ("reserved whiteout name"), and a
/// ".wh." name used as a directory of another entry ("whiteout name used as a
/// directory"). Messages do not repeat the name.
Result<Whiteout> parse_whiteout(std::string_view clean);

/// The entry name that deletes `name`: ".wh." + name.
std::string whiteout_name(std::string_view name);

}  // namespace togo::image
