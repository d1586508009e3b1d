#include "image/whiteout.h"

namespace togo::image {

Result<Whiteout> parse_whiteout(std::string_view clean) {
  if (clean == ".") return Whiteout{};
  size_t slash = clean.rfind('/');
  std::string_view dir = slash == std::string_view::npos ? "." : clean.substr(0, slash);
  std::string_view base = slash == std::string_view::npos ? clean : clean.substr(slash + 1);

  // A directory cannot be named ".wh.*": an entry inside one would follow a
  // name that a whiteout entry already gave its meaning.
  std::string_view rest = dir;
  while (dir != "." && !rest.empty()) {
    size_t cut = rest.find('/');
    if (rest.substr(0, cut).starts_with(kWhiteoutPrefix))
      return error(ErrorKind::kBadInput, "whiteout name used as a directory");
    rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
  }

  if (!base.starts_with(kWhiteoutPrefix)) return Whiteout{};
  if (base == kOpaqueMarker) return Whiteout{WhiteoutKind::kOpaque, std::string(dir), {}};
  std::string_view target = base.substr(kWhiteoutPrefix.size());
  // SECURITY: each of these would name the directory holding the whiteout or
  // its parent, i.e. delete a whole tree the layer does not own.
  if (target.empty()) return error(ErrorKind::kBadInput, "whiteout names nothing");
  if (target == "." || target == "..")
    return error(ErrorKind::kBadInput, "whiteout of . or ..");
  // ".wh..wh.x" would delete ".wh.x", a name that cannot exist in an image;
  // the prefix is reserved for markers like the opaque one.
  if (target.starts_with(kWhiteoutPrefix))
    return error(ErrorKind::kBadInput, "reserved whiteout name");
  return Whiteout{WhiteoutKind::kRemove, std::string(dir), std::string(target)};
}

std::string whiteout_name(std::string_view name) {
  return std::string(kWhiteoutPrefix) + std::string(name);
}

}  // namespace togo::image
