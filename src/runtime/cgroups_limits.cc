#include "runtime/cgroups_limits.h"

#include <charconv>
#include <string>

namespace togo::runtime {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

/// Splits "12.5xyz" into "12", "5" and "xyz"; false if there is no digit, or
/// a '.' with no digit after it.
bool split_number(std::string_view text, std::string_view& whole, std::string_view& frac,
                  std::string_view& rest) {
  size_t i = 0;
  while (i < text.size() && is_digit(text[i])) i++;
  whole = text.substr(0, i);
  frac = {};
  if (i < text.size() && text[i] == '.') {
    size_t start = ++i;
    while (i < text.size() && is_digit(text[i])) i++;
    frac = text.substr(start, i - start);
    if (frac.empty()) return false;
  }
  rest = text.substr(i);
  return !whole.empty() || !frac.empty();
}

std::unexpected<Error> usage(std::string_view flag, std::string_view text, std::string_view why) {
  return error(ErrorKind::kUsage,
               std::string(flag) + " " + std::string(text) + ": " + std::string(why));
}

/// log2 of the unit's size, or -1 if `unit` is not one.
int unit_shift(std::string_view unit) {
  std::string u;
  for (char c : unit) u += lower(c);
  if (u.empty() || u == "b") return 0;
  static const char kLetters[] = "kmgt";
  for (int i = 0; i < 4; i++) {
    std::string l(1, kLetters[i]);
    if (u == l || u == l + "b" || u == l + "ib") return 10 * (i + 1);
  }
  return -1;
}

}  // namespace

Result<uint64_t> parse_memory(std::string_view text) {
  auto bad = [&] { return usage("--memory", text, "not a size (use e.g. 512m or 2g)"); };
  std::string_view whole, frac, rest;
  if (!split_number(text, whole, frac, rest)) return bad();
  int shift = unit_shift(rest);
  if (shift < 0 || frac.size() > 9) return bad();
  if (whole.size() > 20) return usage("--memory", text, "too large");
  // Exact arithmetic: at most 20 digits (< 2^67) shifted by at most 40 bits.
  unsigned __int128 w = 0, f = 0, scale = 1;
  for (char c : whole) w = w * 10 + static_cast<unsigned>(c - '0');
  for (char c : frac) {
    f = f * 10 + static_cast<unsigned>(c - '0');
    scale *= 10;
  }
  if (shift == 0 && f != 0) return bad();  // a fraction of a byte
  unsigned __int128 bytes = (w << shift) + (f << shift) / scale;
  if (bytes > kMaxMemory) return usage("--memory", text, "too large");
  if (bytes < kMinMemory) return usage("--memory", text, "too small, at least 1m");
  return static_cast<uint64_t>(bytes);
}

Result<double> parse_cpus(std::string_view text) {
  std::string_view whole, frac, rest;
  if (!split_number(text, whole, frac, rest) || !rest.empty())
    return usage("--cpus", text, "not a number of CPUs (use e.g. 1.5 or 2)");
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    return usage("--cpus", text, "not a number of CPUs (use e.g. 1.5 or 2)");
  if (v <= 0) return usage("--cpus", text, "must be more than 0 (use e.g. 0.5 or 2)");
  if (v < kMinCpus) return usage("--cpus", text, "too small, at least 0.01");
  if (v > kMaxCpus) return usage("--cpus", text, "too large, at most 1024");
  return v;
}

Result<uint64_t> parse_pids(std::string_view text) {
  bool digits = !text.empty();
  for (char c : text) digits = digits && is_digit(c);
  if (!digits) return usage("--pids", text, "not a number of processes (use e.g. 100)");
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || v > kMaxPids)
    return usage("--pids", text, "too large, at most " + std::to_string(kMaxPids));
  if (v == 0) return usage("--pids", text, "must be at least 1");
  return v;
}

}  // namespace togo::runtime
