#include "base/mountinfo.h"

#include <algorithm>

#include "base/text.h"

namespace togo {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
        s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> list(std::string_view s) {
  std::vector<std::string> out;
  for (auto& x : text::split(s, ','))
    if (!x.empty()) out.push_back(x);
  return out;
}

}  // namespace

std::vector<MountEntry> parse_mountinfo(std::string_view text) {
  std::vector<MountEntry> out;
  for (auto& line : text::split(text, '\n')) {
    std::vector<std::string> f;
    for (auto& x : text::split(line, ' '))
      if (!x.empty()) f.push_back(x);
    // id parent dev root mount-point options [optional...] - fstype source super-options
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 10 || dash == f.end() || dash - f.begin() < 6 || f.end() - dash < 3) continue;
    MountEntry m;
    m.root = unescape(f[3]);
    m.mount_point = unescape(f[4]);
    m.options = list(f[5]);
    m.fstype = dash[1];
    m.source = unescape(dash[2]);
    if (f.end() - dash > 3) m.super_options = list(dash[3]);
    out.push_back(std::move(m));
  }
  return out;
}

const MountEntry* mount_holding(const std::vector<MountEntry>& mounts, std::string_view path) {
  const MountEntry* best = nullptr;
  for (auto& m : mounts) {
    const std::string& mp = m.mount_point;
    bool under = mp == "/" || path == mp || (path.starts_with(mp) && path.size() > mp.size() &&
                                             path[mp.size()] == '/');
    if (under && (!best || mp.size() >= best->mount_point.size())) best = &m;
  }
  return best;
}

}  // namespace togo
