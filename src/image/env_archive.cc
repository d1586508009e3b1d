// The export format's own document, togo-export.json, both ways.
#include "image/env_archive.h"

#include "base/json.h"
#include "base/sha256.h"
#include "store/layout.h"

namespace togo::image {

Result<ExportCompression> parse_export_compression(std::string_view name) {
  if (name == "zstd") return ExportCompression::kZstd;
  if (name == "gzip") return ExportCompression::kGzip;
  if (name == "none") return ExportCompression::kNone;
  return error(ErrorKind::kUsage, "--compression " + std::string(name) + ": unknown",
               "use zstd, gzip or none");
}

std::vector<std::string> settings_lines(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty()) out.emplace_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

std::string settings_text(const std::vector<std::string>& lines) {
  std::string out;
  for (auto& l : lines) out += l + "\n";
  return out;
}

std::string header_json(const ExportHeader& h) {
  json::Value image = json::Value::object();
  image.set("name", h.image_name);
  image.set("id", h.image_id);
  image.set("included", h.image_included);
  json::Value v = json::Value::object();
  v.set("format", kExportFormat);
  v.set("version", kExportVersion);
  v.set("name", h.name);
  v.set("rootfs", h.rootfs);
  v.set("settings", json::string_array(h.settings));
  v.set("image", std::move(image));
  v.set("created", h.created);
  v.set("writer", h.writer);
  return json::dump(v) + "\n";
}

Result<ExportHeader> parse_header(std::string_view text) {
  json::Value v = TRY(json::parse(text, {.max_depth = 8, .max_size = 1u << 20}));
  TRY(json::expect_object(v, "the document"));
  if (TRY(json::get_string(v, "format")) != kExportFormat)
    return error(ErrorKind::kBadInput, "not a togo environment export (format is not " +
                                           std::string(kExportFormat) + ")");
  int64_t version = TRY(json::get_int(v, "version"));
  if (version > kExportVersion)
    return error(ErrorKind::kBadInput,
                 "export format version " + std::to_string(version) + ": this togo reads " +
                     std::to_string(kExportVersion),
                 "a newer togo wrote it; import it with that one");
  if (version < 1)
    return error(ErrorKind::kBadInput, "export format version " + std::to_string(version));
  ExportHeader h;
  h.name = TRY(json::get_string(v, "name"));
  if (!store::valid_env_name(h.name))
    return error(ErrorKind::kBadInput, "name: not a valid environment name");
  h.rootfs = TRY(json::get_string(v, "rootfs"));
  if (h.rootfs != "overlay" && h.rootfs != "copy")
    return error(ErrorKind::kBadInput, "rootfs: \"" + h.rootfs + "\" is neither overlay nor copy");
  h.settings = TRY(json::get_string_array(v, "settings"));
  for (auto& line : h.settings)
    if (line.empty() || line.find_first_of("\n\r") != std::string::npos)
      return error(ErrorKind::kBadInput, "settings: a line is empty or holds a line break");
  const json::Value* image = TRY(json::get_object(v, "image"));
  h.image_name = TRY(json::get_string_or_empty(*image, "name"));
  h.image_id = TRY_CTX(json::get_string(*image, "id"), "image");
  h.image_included = TRY(json::get_optional_bool(*image, "included")).value_or(true);
  if (!is_sha256_digest(h.image_id))
    return error(ErrorKind::kBadInput, "image: id is not a sha256 digest");
  if (!h.image_name.empty() && !store::valid_name(h.image_name))
    return error(ErrorKind::kBadInput, "image: name is not a valid image name");
  h.created = TRY(json::get_optional_int(v, "created")).value_or(0);
  h.writer = TRY(json::get_string_or_empty(v, "writer"));
  return h;
}

std::string trailer_json(uint64_t entries, uint64_t bytes, const std::string& digest) {
  json::Value v = json::Value::object();
  v.set("entries", entries);
  v.set("bytes", bytes);
  v.set("sha256", digest);
  return json::dump(v) + "\n";
}

Result<ExportTrailer> parse_trailer(std::string_view text) {
  json::Value v = TRY(json::parse(text, {.max_depth = 4, .max_size = 4096}));
  TRY(json::expect_object(v, "the document"));
  int64_t entries = TRY(json::get_int(v, "entries"));
  int64_t bytes = TRY(json::get_int(v, "bytes"));
  ExportTrailer t;
  t.digest = TRY(json::get_string(v, "sha256"));
  if (entries < 0 || bytes < 0 || !is_sha256_digest(t.digest))
    return error(ErrorKind::kBadInput, "entries, bytes or sha256 out of range");
  t.entries = static_cast<uint64_t>(entries);
  t.bytes = static_cast<uint64_t>(bytes);
  return t;
}

}  // namespace togo::image
