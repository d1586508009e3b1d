#include "image/tar_path.h"

#include <cstdio>

namespace togo::image {

Result<std::string> clean_entry_path(std::string_view raw) {
  if (raw.empty()) return error(ErrorKind::kBadInput, "empty name");
  if (raw.find('\0') != std::string_view::npos)
    return error(ErrorKind::kBadInput, "name contains a NUL byte");
  // SECURITY: a name is always taken relative to the image root.
  if (raw.front() == '/') return error(ErrorKind::kBadInput, "absolute path");

  std::string out;
  out.reserve(raw.size());
  std::string_view rest = raw;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    // SECURITY: no "..", not even one that would fold back inside ("a/../b"):
    // the parent directory is opened by the kernel, which must never be
    // asked to go up.
    if (part == "..") return error(ErrorKind::kBadInput, "path leaves the image root");
    if (!out.empty()) out += '/';
    out += part;
  }
  if (out.empty()) return std::string(".");
  return out;
}

PathParts split_entry_path(std::string_view clean) {
  size_t slash = clean.rfind('/');
  if (slash == std::string_view::npos) return {".", std::string(clean)};
  return {std::string(clean.substr(0, slash)), std::string(clean.substr(slash + 1))};
}

std::string printable_name(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (unsigned char c : raw) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace togo::image
