// User and group id maps for user namespaces, as pure functions: reading
// subuid(5)/subgid(5), and building the map a rootless env gets.
//
// Rootless, the caller's own id is the only one the kernel lets an
// unprivileged process map. Subordinate ranges, granted by the administrator
// in /etc/subuid and /etc/subgid and written by the setuid helpers newuidmap
// and newgidmap, give the env the other ids an image uses (apt's _apt,
// nobody, daemons). The layout follows podman's rootless convention:
//   root inside (default):   0 -> caller, 1..N -> the subordinate ranges
//   --user (keep-id):        0..uid-1 -> subordinate ids, uid -> uid,
//                            uid+1.. -> the rest of the subordinate ids
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace togo::runtime {

/// Host ids [start, start + count).
struct IdRange {
  uint32_t start = 0, count = 0;
  bool operator==(const IdRange&) const = default;
};

/// One line of /proc/<pid>/uid_map: `count` ids from `inside` (in the
/// namespace) are `outside` (in togo's namespace) onwards.
struct IdMapping {
  uint32_t inside = 0, outside = 0, count = 0;
  bool operator==(const IdMapping&) const = default;
};

/// (uid_t)-1 means "no change" to setresuid and can never be mapped.
inline constexpr uint32_t kNoId = 0xFFFFFFFFu;
/// Lines togo puts in one map. The kernel takes up to 340 lines (Linux 4.15
/// and later) but only in one write of less than a page (4096 bytes); 122
/// lines of the longest form ("4294967294 4294967294 4294967294\n") fit.
inline constexpr size_t kMaxMapLines = 122;
/// The kernel's limit on the text of one map write.
inline constexpr size_t kMaxMapText = 4095;
/// The range size people are told to add, and what podman expects.
inline constexpr uint32_t kSuggestedCount = 65536;

/// The ranges that subuid/subgid-format `text` grants to the user named
/// `user` or to the decimal `uid` (both forms are valid owners; subgid lines
/// are also owned by user names or uids, not groups). Lines are
/// "owner:start:count"; comments, blank lines and anything shadow's own
/// parser would read differently (signs, spaces, leading zeros, a zero
/// count, ids past 2^32) are skipped. File order is kept.
std::vector<IdRange> parse_subids(std::string_view text, std::string_view user, uint32_t uid);

/// Every well-formed range in `text`, whoever owns it.
std::vector<IdRange> parse_all_subids(std::string_view text);

/// The ranges sorted, overlapping and adjacent ones merged, `own` cut out
/// (it is mapped on its own; the kernel refuses overlaps) and ids from
/// kNoId on cut off. What remains can be passed to newuidmap: each id is
/// still inside some line the user owns.
std::vector<IdRange> normalize_ranges(std::vector<IdRange> ranges, uint32_t own);

/// Number of ids in the ranges.
uint64_t count_ids(const std::vector<IdRange>& ranges);

/// The map for a rootless run of a caller whose id is `own` (uid or gid).
/// `ranges` are that caller's subordinate ranges (normalized here).
///  - keep_id false: 0 -> own; 1.. -> the ranges, in order.
///  - keep_id true:  own -> own; 0..own-1 and own+1.. -> the ranges, in order.
/// Without ranges this is the single line the kernel allows unprivileged:
/// {0, own, 1} or {own, own, 1}. Inside ids never reach kNoId and the map
/// never has more than kMaxMapLines lines (extra ranges are dropped).
std::vector<IdMapping> rootless_map(uint32_t own, const std::vector<IdRange>& ranges, bool keep_id);

/// True if `map` is the one line an unprivileged process may write itself:
/// exactly one id, and it is `own`.
bool is_single_own(const std::vector<IdMapping>& map, uint32_t own);

/// What the kernel checks when a map is written: 1..340 lines whose text
/// fits kMaxMapText, non-zero counts, no range past 2^32 - 1, no two lines
/// overlapping on either side.
bool valid_map(const std::vector<IdMapping>& map);

/// "0 1000 1\n1 100000 65536\n": the text for /proc/<pid>/uid_map.
std::string map_text(const std::vector<IdMapping>& map);
/// {"0", "1000", "1", "1", "100000", "65536"}: newuidmap's arguments after
/// the pid.
std::vector<std::string> map_args(const std::vector<IdMapping>& map);
/// Parses /proc/<pid>/uid_map as the kernel prints it (columns padded with
/// spaces); nullopt if a line is malformed.
std::optional<std::vector<IdMapping>> parse_map_text(std::string_view text);

/// The id inside the namespace that host id `outside` appears as; nullopt
/// if unmapped (it then shows as the overflow id, 65534, "nobody").
std::optional<uint32_t> to_inside(const std::vector<IdMapping>& map, uint32_t outside);
/// The host id behind `inside`; nullopt if unmapped.
std::optional<uint32_t> to_outside(const std::vector<IdMapping>& map, uint32_t inside);

/// A range of kSuggestedCount ids to offer an administrator: from 100000,
/// or after the highest id any line of either file already grants.
IdRange suggest_range(std::string_view subuid_text, std::string_view subgid_text);

/// "100000-165535", the FIRST-LAST form `usermod --add-subuids` takes.
std::string range_arg(IdRange r);

}  // namespace togo::runtime
