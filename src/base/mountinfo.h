// /proc/<pid>/mountinfo, parsed: what is mounted where, from which source.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace togo {

/// One line of mountinfo, with the kernel's \ooo escapes undone.
struct MountEntry {
  std::string root, mount_point, fstype, source;
  std::vector<std::string> options, super_options;
};

/// Every well-formed line of a mountinfo text; malformed lines are skipped.
std::vector<MountEntry> parse_mountinfo(std::string_view text);

/// The mount that holds `path` (an absolute path): the one with the longest
/// mount point that is `path` or one of its parents, the last mounted on a
/// tie; null if none does.
const MountEntry* mount_holding(const std::vector<MountEntry>& mounts, std::string_view path);

}  // namespace togo
