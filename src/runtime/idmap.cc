#include "runtime/idmap.h"

#include <algorithm>

#include "runtime/userdb.h"

namespace togo::runtime {

namespace {

// Calls fn(owner, range) for each well-formed subuid line.
template <typename Fn>
void for_each_subid(std::string_view text, Fn&& fn) {
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (line.empty() || line.front() == '#') continue;
    size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos || line.find(':', c2 + 1) != std::string_view::npos) continue;
    std::string_view owner = line.substr(0, c1);
    auto start = parse_decimal_id(line.substr(c1 + 1, c2 - c1 - 1));
    auto count = parse_decimal_id(line.substr(c2 + 1));
    if (owner.empty() || !start || !count || *count == 0) continue;
    // A range that runs past 2^32 is refused by newuidmap as a whole.
    if (uint64_t{*start} + *count > (uint64_t{1} << 32)) continue;
    fn(owner, IdRange{*start, *count});
  }
}

uint64_t end_of(IdRange r) { return uint64_t{r.start} + r.count; }

}  // namespace

std::vector<IdRange> parse_subids(std::string_view text, std::string_view user, uint32_t uid) {
  std::string uid_text = std::to_string(uid);
  std::vector<IdRange> out;
  for_each_subid(text, [&](std::string_view owner, IdRange r) {
    if ((!user.empty() && owner == user) || owner == uid_text) out.push_back(r);
  });
  return out;
}

std::vector<IdRange> parse_all_subids(std::string_view text) {
  std::vector<IdRange> out;
  for_each_subid(text, [&](std::string_view, IdRange r) { out.push_back(r); });
  return out;
}

std::vector<IdRange> normalize_ranges(std::vector<IdRange> ranges, uint32_t own) {
  std::sort(ranges.begin(), ranges.end(), [](IdRange a, IdRange b) {
    return a.start != b.start ? a.start < b.start : a.count < b.count;
  });
  // Merge into [first, last) pairs in 64 bits, then cut.
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (IdRange r : ranges) {
    if (r.count == 0) continue;
    uint64_t first = r.start, last = std::min(end_of(r), uint64_t{kNoId});
    if (first >= last) continue;
    if (!merged.empty() && first <= merged.back().second)
      merged.back().second = std::max(merged.back().second, last);
    else
      merged.emplace_back(first, last);
  }
  std::vector<IdRange> out;
  auto add = [&](uint64_t first, uint64_t last) {
    if (first < last)
      out.push_back(IdRange{static_cast<uint32_t>(first), static_cast<uint32_t>(last - first)});
  };
  for (auto [first, last] : merged) {
    if (own >= first && own < last) {
      add(first, own);
      add(uint64_t{own} + 1, last);
    } else {
      add(first, last);
    }
  }
  return out;
}

uint64_t count_ids(const std::vector<IdRange>& ranges) {
  uint64_t n = 0;
  for (IdRange r : ranges) n += r.count;
  return n;
}

std::vector<IdMapping> rootless_map(uint32_t own, const std::vector<IdRange>& ranges,
                                    bool keep_id) {
  std::vector<IdRange> subs = normalize_ranges(ranges, own);
  // Each range can be split once around `own`: two lines are kept free for
  // that split and for `own` itself.
  if (subs.size() > kMaxMapLines - 2) subs.resize(kMaxMapLines - 2);

  const uint64_t own_inside = keep_id ? own : 0;
  std::vector<IdMapping> map;
  bool own_done = false;
  auto place_own = [&] {
    map.push_back(IdMapping{static_cast<uint32_t>(own_inside), own, 1});
    own_done = true;
  };
  uint64_t inside = 0;
  for (IdRange r : subs) {
    uint64_t outside = r.start, left = r.count;
    while (left > 0) {
      if (!own_done && inside == own_inside) {
        place_own();
        inside++;
      }
      uint64_t room = own_done ? uint64_t{kNoId} - inside : own_inside - inside;
      uint64_t take = std::min(left, room);
      if (take == 0) break;  // the inside id space is full
      map.push_back(IdMapping{static_cast<uint32_t>(inside), static_cast<uint32_t>(outside),
                              static_cast<uint32_t>(take)});
      inside += take;
      outside += take;
      left -= take;
    }
  }
  if (!own_done) place_own();  // fewer subordinate ids than `own`: a gap below it
  return map;
}

bool is_single_own(const std::vector<IdMapping>& map, uint32_t own) {
  return map.size() == 1 && map[0].count == 1 && map[0].outside == own;
}

bool valid_map(const std::vector<IdMapping>& map) {
  if (map.empty() || map.size() > 340 || map_text(map).size() > kMaxMapText) return false;
  for (size_t i = 0; i < map.size(); i++) {
    const IdMapping& a = map[i];
    if (a.count == 0 || uint64_t{a.inside} + a.count > kNoId ||
        uint64_t{a.outside} + a.count > kNoId)
      return false;
    for (size_t j = 0; j < i; j++) {
      const IdMapping& b = map[j];
      auto overlap = [](uint64_t s1, uint64_t n1, uint64_t s2, uint64_t n2) {
        return s1 < s2 + n2 && s2 < s1 + n1;
      };
      if (overlap(a.inside, a.count, b.inside, b.count) ||
          overlap(a.outside, a.count, b.outside, b.count))
        return false;
    }
  }
  return true;
}

std::string map_text(const std::vector<IdMapping>& map) {
  std::string out;
  for (const IdMapping& m : map)
    out += std::to_string(m.inside) + " " + std::to_string(m.outside) + " " +
           std::to_string(m.count) + "\n";
  return out;
}

std::vector<std::string> map_args(const std::vector<IdMapping>& map) {
  std::vector<std::string> out;
  for (const IdMapping& m : map) {
    out.push_back(std::to_string(m.inside));
    out.push_back(std::to_string(m.outside));
    out.push_back(std::to_string(m.count));
  }
  return out;
}

std::optional<std::vector<IdMapping>> parse_map_text(std::string_view text) {
  std::vector<IdMapping> map;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    uint32_t v[3];
    int n = 0;
    while (!line.empty()) {
      size_t skip = line.find_first_not_of(' ');
      if (skip == std::string_view::npos) break;
      line.remove_prefix(skip);
      size_t stop = line.find(' ');
      auto id = parse_decimal_id(line.substr(0, stop));
      if (!id || n == 3) return std::nullopt;
      v[n++] = *id;
      line = stop == std::string_view::npos ? std::string_view() : line.substr(stop);
    }
    if (n == 0) continue;
    if (n != 3) return std::nullopt;
    map.push_back(IdMapping{v[0], v[1], v[2]});
  }
  return map;
}

std::optional<uint32_t> to_inside(const std::vector<IdMapping>& map, uint32_t outside) {
  for (const IdMapping& m : map)
    if (outside >= m.outside && uint64_t{outside} < uint64_t{m.outside} + m.count)
      return m.inside + (outside - m.outside);
  return std::nullopt;
}

std::optional<uint32_t> to_outside(const std::vector<IdMapping>& map, uint32_t inside) {
  for (const IdMapping& m : map)
    if (inside >= m.inside && uint64_t{inside} < uint64_t{m.inside} + m.count)
      return m.outside + (inside - m.inside);
  return std::nullopt;
}

IdRange suggest_range(std::string_view subuid_text, std::string_view subgid_text) {
  uint64_t start = 100000;
  for (std::string_view text : {subuid_text, subgid_text})
    for (IdRange r : parse_all_subids(text)) start = std::max(start, end_of(r));
  if (start + kSuggestedCount > kNoId) start = 100000;  // full: the admin must choose
  return IdRange{static_cast<uint32_t>(start), kSuggestedCount};
}

std::string range_arg(IdRange r) {
  return std::to_string(r.start) + "-" + std::to_string(uint64_t{r.start} + r.count - 1);
}

}  // namespace togo::runtime
