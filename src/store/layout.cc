#include "store/layout.h"

#include <charconv>

namespace togo::store {

std::string_view digest_hex(std::string_view digest) {
  size_t colon = digest.find(':');
  return colon == std::string_view::npos ? digest : digest.substr(colon + 1);
}

std::string blob_path(std::string_view digest) {
  return std::string(kBlobs) + "/" + std::string(digest_hex(digest));
}

std::string layer_dir(std::string_view digest) {
  return std::string(kLayers) + "/" + std::string(digest_hex(digest));
}

std::string layer_root(std::string_view digest) { return layer_dir(digest) + "/root"; }
std::string layer_files(std::string_view digest) { return layer_dir(digest) + "/files"; }

EnvPaths env_paths(std::string_view env_id) {
  std::string dir = std::string(kEnvs) + "/" + std::string(env_id);
  return {dir,           dir + "/upper", dir + "/work", dir + "/rootfs",
          dir + "/mount", dir + "/run",  dir + "/lock"};
}

std::string marker_text(int format) {
  return "togo-store\nformat " + std::to_string(format) + "\n";
}

int parse_marker(std::string_view text) {
  constexpr std::string_view head = "togo-store\nformat ";
  if (text.substr(0, head.size()) != head) return -1;
  std::string_view rest = text.substr(head.size());
  int format = -1;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), format);
  if (ec != std::errc() || end == rest.data() || format < 1) return -1;
  return format;
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name.front())) return false;
  for (char c : name)
    if (!alnum(c) && c != '_' && c != '.' && c != '-' && c != ':' && c != '/') return false;
  return name.find("..") == std::string_view::npos && name.back() != '/' && name.back() != ':';
}

bool valid_env_name(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.find(':') != std::string_view::npos ||
      name.find('/') != std::string_view::npos)
    return false;
  return valid_name(name);
}

}  // namespace togo::store
