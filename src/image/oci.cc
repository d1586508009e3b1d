#include "image/oci.h"

#include <sys/utsname.h>

#include <algorithm>

#include "base/sha256.h"
#include "base/text.h"
#include "image/tar_path.h"

namespace togo::image::oci {

namespace {

// Registries cap manifests at 4 MiB; configs get the JSON default.
constexpr json::ParseLimits kManifestLimits{.max_depth = 32, .max_size = 4u << 20};

std::unexpected<Error> bad(std::string message) {
  return error(ErrorKind::kBadInput, std::move(message));
}

// A value from a document, quoted and cut short for an error message.
std::string quoted(std::string_view s) {
  constexpr size_t kMax = 80;
  std::string out = "\"" + printable_name(s.substr(0, kMax)) + "\"";
  if (s.size() > kMax) out += "...";
  return out;
}

// "application/json; charset=utf-8" -> "application/json".
std::string_view bare_media_type(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  while (!content_type.empty() && content_type.front() == ' ') content_type.remove_prefix(1);
  return content_type;
}

bool is_schema1_type(std::string_view t) { return t == kDockerSchema1 || t == kDockerSchema1Signed; }

std::unexpected<Error> schema1_error() {
  return error(ErrorKind::kBadInput,
               "Docker schema 1 manifests are not supported (the image was pushed by a Docker "
               "older than 1.10)",
               "push the image again with a current Docker or Podman");
}

Result<json::Value> parse_object(std::string_view bytes, json::ParseLimits limits) {
  json::Value doc = TRY(json::parse(bytes, limits));
  TRY(json::expect_object(doc, "document"));
  return doc;
}

Result<void> check_schema_version(const json::Value& doc) {
  int64_t v = TRY(json::get_int(doc, "schemaVersion"));
  if (v == 1) return schema1_error();
  if (v != 2) return bad("schemaVersion: " + std::to_string(v) + " is not 2");
  return {};
}

Result<DocumentKind> kind_of(const json::Value& doc, std::string_view content_type) {
  if (auto* sv = doc.find("schemaVersion"); sv && sv->is_integer() && sv->as_int() == 1)
    return schema1_error();
  auto field = TRY(json::get_optional_string(doc, "mediaType"));
  if (field) {
    if (is_manifest_media_type(*field)) return DocumentKind::kManifest;
    if (is_index_media_type(*field)) return DocumentKind::kIndex;
    if (is_schema1_type(*field)) return schema1_error();
    return bad("mediaType: unsupported manifest type " + quoted(*field));
  }
  std::string_view ct = bare_media_type(content_type);
  if (is_manifest_media_type(ct)) return DocumentKind::kManifest;
  if (is_index_media_type(ct)) return DocumentKind::kIndex;
  if (is_schema1_type(ct)) return schema1_error();
  if (doc.find("manifests")) return DocumentKind::kIndex;
  if (doc.find("config") || doc.find("layers")) return DocumentKind::kManifest;
  return bad("no mediaType, and neither \"manifests\" nor \"config\": not an image manifest");
}

// The mediaType field, else a matching Content-Type, else `fallback`.
Result<std::string> effective_type(const json::Value& doc, std::string_view content_type,
                                   bool (*fits)(std::string_view), std::string_view fallback) {
  auto field = TRY(json::get_optional_string(doc, "mediaType"));
  if (field) return *field;
  std::string_view ct = bare_media_type(content_type);
  return std::string(fits(ct) ? ct : fallback);
}

// ---- Reading ----

Result<Platform> read_platform(const json::Value& v) {
  TRY(json::expect_object(v, "platform"));
  Platform p;
  p.architecture = TRY(json::get_string(v, "architecture"));
  p.os = TRY(json::get_string(v, "os"));
  p.variant = TRY(json::get_string_or_empty(v, "variant"));
  p.os_version = TRY(json::get_string_or_empty(v, "os.version"));
  p.os_features = TRY(json::get_optional_string_array(v, "os.features")).value_or(
      std::vector<std::string>{});
  return p;
}

Result<Descriptor> read_descriptor(const json::Value& v) {
  TRY(json::expect_object(v, "descriptor"));
  Descriptor d;
  d.media_type = TRY(json::get_string(v, "mediaType"));
  if (d.media_type.empty()) return bad("mediaType: empty");
  d.digest = TRY(json::get_string(v, "digest"));
  TRY_CTX(check_digest(d.digest), "digest");
  d.size = TRY(json::get_int(v, "size"));
  if (d.size < 0) return bad("size: " + std::to_string(d.size) + " is negative");
  d.urls = TRY(json::get_optional_string_array(v, "urls")).value_or(std::vector<std::string>{});
  d.annotations = TRY(json::get_string_map(v, "annotations"));
  if (auto* p = TRY(json::get_optional_object(v, "platform")))
    d.platform = TRY_CTX(read_platform(*p), "platform");
  d.artifact_type = TRY(json::get_string_or_empty(v, "artifactType"));
  return d;
}

Result<std::vector<Descriptor>> read_descriptors(const json::Value& doc, std::string_view key) {
  const json::Value* arr = TRY(json::get_array(doc, key));
  std::vector<Descriptor> out;
  out.reserve(arr->size());
  for (size_t i = 0; i < arr->items().size(); i++)
    out.push_back(TRY_CTX(read_descriptor(arr->items()[i]),
                          std::string(key) + "[" + std::to_string(i) + "]"));
  return out;
}

Result<Manifest> read_manifest(const json::Value& doc, std::string_view content_type) {
  Manifest m;
  if (TRY(kind_of(doc, content_type)) == DocumentKind::kIndex)
    return bad("this is an image index, not a manifest");
  TRY(check_schema_version(doc));
  m.media_type = TRY(effective_type(doc, content_type, is_manifest_media_type, kMediaTypeManifest));
  m.artifact_type = TRY(json::get_string_or_empty(doc, "artifactType"));
  m.config = TRY_CTX(read_descriptor(*TRY(json::get_object(doc, "config"))), "config");
  m.layers = TRY(read_descriptors(doc, "layers"));
  if (auto* s = TRY(json::get_optional_object(doc, "subject")))
    m.subject = TRY_CTX(read_descriptor(*s), "subject");
  m.annotations = TRY(json::get_string_map(doc, "annotations"));
  return m;
}

Result<Index> read_index(const json::Value& doc, std::string_view content_type) {
  Index idx;
  if (TRY(kind_of(doc, content_type)) == DocumentKind::kManifest)
    return bad("this is an image manifest, not an index");
  TRY(check_schema_version(doc));
  idx.media_type = TRY(effective_type(doc, content_type, is_index_media_type, kMediaTypeIndex));
  idx.manifests = TRY(read_descriptors(doc, "manifests"));
  idx.annotations = TRY(json::get_string_map(doc, "annotations"));
  return idx;
}

// The keys of an object such as ExposedPorts {"80/tcp": {}}, sorted.
Result<std::vector<std::string>> read_key_set(const json::Value& obj, std::string_view key) {
  std::vector<std::string> out;
  const json::Value* v = TRY(json::get_optional_object(obj, key));
  if (!v) return out;
  for (auto& [k, ignored] : v->members()) {
    if (k.empty()) return bad(std::string(key) + ": empty key");
    out.push_back(k);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<std::string>> read_strings(const json::Value& obj, std::string_view key) {
  return TRY(json::get_optional_string_array(obj, key)).value_or(std::vector<std::string>{});
}

Result<void> read_container_config(const json::Value& c, ImageConfig& out) {
  out.user = TRY(json::get_string_or_empty(c, "User"));
  out.env = TRY(read_strings(c, "Env"));
  out.entrypoint = TRY(read_strings(c, "Entrypoint"));
  out.cmd = TRY(read_strings(c, "Cmd"));
  out.working_dir = TRY(json::get_string_or_empty(c, "WorkingDir"));
  out.exposed_ports = TRY(read_key_set(c, "ExposedPorts"));
  out.volumes = TRY(read_key_set(c, "Volumes"));
  out.labels = TRY(json::get_string_map(c, "Labels"));
  out.stop_signal = TRY(json::get_string_or_empty(c, "StopSignal"));
  return {};
}

Result<HistoryEntry> read_history_entry(const json::Value& h) {
  TRY(json::expect_object(h, "entry"));
  HistoryEntry e;
  e.created = TRY(json::get_string_or_empty(h, "created"));
  e.created_by = TRY(json::get_string_or_empty(h, "created_by"));
  e.author = TRY(json::get_string_or_empty(h, "author"));
  e.comment = TRY(json::get_string_or_empty(h, "comment"));
  e.empty_layer = TRY(json::get_optional_bool(h, "empty_layer")).value_or(false);
  return e;
}

Result<ImageConfig> read_config(json::Value doc) {
  ImageConfig c;
  c.architecture = TRY(json::get_string(doc, "architecture"));
  c.os = TRY(json::get_string(doc, "os"));
  c.variant = TRY(json::get_string_or_empty(doc, "variant"));
  c.os_version = TRY(json::get_string_or_empty(doc, "os.version"));
  c.created = TRY(json::get_string_or_empty(doc, "created"));
  c.author = TRY(json::get_string_or_empty(doc, "author"));
  if (auto* cc = TRY(json::get_optional_object(doc, "config")))
    TRY_CTX(read_container_config(*cc, c), "config");

  const json::Value* rootfs = TRY(json::get_object(doc, "rootfs"));
  std::string type = TRY_CTX(json::get_string(*rootfs, "type"), "rootfs");
  if (type != "layers") return bad("rootfs: type: " + quoted(type) + " is not \"layers\"");
  c.diff_ids = TRY_CTX(json::get_string_array(*rootfs, "diff_ids"), "rootfs");
  for (size_t i = 0; i < c.diff_ids.size(); i++)
    TRY_CTX(check_digest(c.diff_ids[i]), "rootfs: diff_ids[" + std::to_string(i) + "]");

  if (auto* hist = TRY(json::get_optional_array(doc, "history")))
    for (size_t i = 0; i < hist->items().size(); i++)
      c.history.push_back(TRY_CTX(read_history_entry(hist->items()[i]),
                                  "history[" + std::to_string(i) + "]"));
  c.raw = std::move(doc);
  return c;
}

// ---- Writing ----

void set_or_remove(json::Value& obj, const std::string& key, const std::string& value) {
  if (value.empty())
    obj.remove(key);
  else
    obj.set(key, value);
}

json::Value key_set(const std::vector<std::string>& keys) {
  json::Value out = json::Value::object();
  for (auto& k : keys) out.set(k, json::Value::object());
  return out;
}

void set_strings(json::Value& obj, const std::string& key, const std::vector<std::string>& v) {
  if (v.empty())
    obj.remove(key);
  else
    obj.set(key, json::string_array(v));
}

json::Value container_config_value(const ImageConfig& c, json::Value base) {
  if (!base.is_object()) base = json::Value::object();
  set_or_remove(base, "User", c.user);
  if (c.exposed_ports.empty())
    base.remove("ExposedPorts");
  else
    base.set("ExposedPorts", key_set(c.exposed_ports));
  set_strings(base, "Env", c.env);
  set_strings(base, "Entrypoint", c.entrypoint);
  set_strings(base, "Cmd", c.cmd);
  if (c.volumes.empty())
    base.remove("Volumes");
  else
    base.set("Volumes", key_set(c.volumes));
  set_or_remove(base, "WorkingDir", c.working_dir);
  if (c.labels.empty())
    base.remove("Labels");
  else
    base.set("Labels", json::string_map(c.labels));
  set_or_remove(base, "StopSignal", c.stop_signal);
  return base;
}

}  // namespace

// ---- Media types ----

bool is_manifest_media_type(std::string_view t) { return t == kMediaTypeManifest || t == kDockerManifest; }
bool is_index_media_type(std::string_view t) { return t == kMediaTypeIndex || t == kDockerManifestList; }
bool is_config_media_type(std::string_view t) { return t == kMediaTypeConfig || t == kDockerConfig; }

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
  }
  return "?";
}

Result<Compression> layer_compression(std::string_view t) {
  if (t == kMediaTypeLayer || t == kDockerLayer || t == kMediaTypeLayerNondistributable)
    return Compression::kNone;
  if (t == kMediaTypeLayerGzip || t == kDockerLayerGzip || t == kDockerForeignLayerGzip ||
      t == kMediaTypeLayerNondistributableGzip)
    return Compression::kGzip;
  if (t == kMediaTypeLayerZstd || t == kMediaTypeLayerNondistributableZstd)
    return Compression::kZstd;
  return bad("unsupported layer media type " + quoted(t));
}

bool is_non_distributable_layer(std::string_view t) {
  return t == kMediaTypeLayerNondistributable || t == kMediaTypeLayerNondistributableGzip ||
         t == kMediaTypeLayerNondistributableZstd || t == kDockerForeignLayerGzip;
}

Result<void> check_digest(std::string_view digest) {
  if (is_sha256_digest(digest)) return {};
  size_t colon = digest.find(':');
  if (colon != std::string_view::npos && colon > 0 && digest.substr(0, colon) != "sha256")
    return bad("unsupported digest algorithm " + quoted(digest.substr(0, colon)));
  return bad(quoted(digest) + " is not a digest (\"sha256:\" and 64 lowercase hex digits)");
}

// ---- Documents ----

std::string Platform::str() const {
  std::string out = os + "/" + architecture;
  if (!variant.empty()) out += "/" + variant;
  return out;
}

Result<DocumentKind> detect_manifest_kind(std::string_view bytes, std::string_view content_type) {
  json::Value doc = TRY_CTX(parse_object(bytes, kManifestLimits), "invalid image manifest");
  return TRY_CTX(kind_of(doc, content_type), "invalid image manifest");
}

Result<Manifest> parse_manifest(std::string_view bytes, std::string_view content_type) {
  json::Value doc = TRY_CTX(parse_object(bytes, kManifestLimits), "invalid image manifest");
  return TRY_CTX(read_manifest(doc, content_type), "invalid image manifest");
}

Result<Index> parse_index(std::string_view bytes, std::string_view content_type) {
  json::Value doc = TRY_CTX(parse_object(bytes, kManifestLimits), "invalid image index");
  return TRY_CTX(read_index(doc, content_type), "invalid image index");
}

Result<std::variant<Manifest, Index>> parse_any_manifest(std::string_view bytes,
                                                         std::string_view content_type) {
  json::Value doc = TRY_CTX(parse_object(bytes, kManifestLimits), "invalid image manifest");
  if (TRY_CTX(kind_of(doc, content_type), "invalid image manifest") == DocumentKind::kIndex)
    return TRY_CTX(read_index(doc, content_type), "invalid image index");
  return TRY_CTX(read_manifest(doc, content_type), "invalid image manifest");
}

Result<ImageConfig> parse_config(std::string_view bytes) {
  json::Value doc = TRY_CTX(parse_object(bytes, {}), "invalid image config");
  return TRY_CTX(read_config(std::move(doc)), "invalid image config");
}

json::Value to_value(const Platform& p) {
  json::Value v = json::Value::object();
  v.set("architecture", p.architecture).set("os", p.os);
  if (!p.os_version.empty()) v.set("os.version", p.os_version);
  if (!p.os_features.empty()) v.set("os.features", json::string_array(p.os_features));
  if (!p.variant.empty()) v.set("variant", p.variant);
  return v;
}

json::Value to_value(const Descriptor& d) {
  json::Value v = json::Value::object();
  v.set("mediaType", d.media_type).set("digest", d.digest).set("size", d.size);
  if (!d.urls.empty()) v.set("urls", json::string_array(d.urls));
  if (!d.annotations.empty()) v.set("annotations", json::string_map(d.annotations));
  if (d.platform) v.set("platform", to_value(*d.platform));
  if (!d.artifact_type.empty()) v.set("artifactType", d.artifact_type);
  return v;
}

std::string to_json(const Manifest& m) {
  json::Value v = json::Value::object();
  v.set("schemaVersion", 2);
  v.set("mediaType", m.media_type.empty() ? std::string(kMediaTypeManifest) : m.media_type);
  if (!m.artifact_type.empty()) v.set("artifactType", m.artifact_type);
  v.set("config", to_value(m.config));
  json::Value layers = json::Value::array();
  for (auto& l : m.layers) layers.push(to_value(l));
  v.set("layers", std::move(layers));
  if (m.subject) v.set("subject", to_value(*m.subject));
  if (!m.annotations.empty()) v.set("annotations", json::string_map(m.annotations));
  return json::dump(v);
}

std::string to_json(const Index& idx) {
  json::Value v = json::Value::object();
  v.set("schemaVersion", 2);
  v.set("mediaType", idx.media_type.empty() ? std::string(kMediaTypeIndex) : idx.media_type);
  json::Value manifests = json::Value::array();
  for (auto& d : idx.manifests) manifests.push(to_value(d));
  v.set("manifests", std::move(manifests));
  if (!idx.annotations.empty()) v.set("annotations", json::string_map(idx.annotations));
  return json::dump(v);
}

std::string to_json(const ImageConfig& c) {
  json::Value v = c.raw.is_object() ? c.raw : json::Value::object();
  set_or_remove(v, "created", c.created);
  set_or_remove(v, "author", c.author);
  v.set("architecture", c.architecture);
  v.set("os", c.os);
  set_or_remove(v, "os.version", c.os_version);
  set_or_remove(v, "variant", c.variant);

  const json::Value* old = v.find("config");
  json::Value config = container_config_value(c, old ? *old : json::Value());
  if (config.size() > 0 || old)
    v.set("config", std::move(config));

  json::Value rootfs = json::Value::object();
  rootfs.set("type", "layers").set("diff_ids", json::string_array(c.diff_ids));
  v.set("rootfs", std::move(rootfs));

  if (c.history.empty()) {
    v.remove("history");
  } else {
    json::Value hist = json::Value::array();
    for (auto& h : c.history) {
      json::Value e = json::Value::object();
      set_or_remove(e, "created", h.created);
      set_or_remove(e, "created_by", h.created_by);
      set_or_remove(e, "author", h.author);
      set_or_remove(e, "comment", h.comment);
      if (h.empty_layer) e.set("empty_layer", true);
      hist.push(std::move(e));
    }
    v.set("history", std::move(hist));
  }
  return json::dump(v);
}

// ---- Platforms ----

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Architecture aliases: {arch, variant}; the variant is "" unless the alias
// implies one.
std::pair<std::string, std::string> normalize_arch(std::string_view arch_in) {
  std::string arch = lower(arch_in);
  if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") return {"amd64", ""};
  if (arch == "aarch64" || arch == "arm64") return {"arm64", ""};
  if (arch == "armhf") return {"arm", "v7"};
  if (arch == "armel") return {"arm", "v6"};
  if (arch == "i386" || arch == "i486" || arch == "i586" || arch == "i686" || arch == "386")
    return {"386", ""};
  if (arch == "loongarch64") return {"loong64", ""};
  return {arch, ""};
}

// The level of "v7" or "7"; -1 for anything else.
int variant_level(std::string_view v) {
  if (!v.empty() && v.front() == 'v') v.remove_prefix(1);
  if (v.empty() || v.size() > 3 || v.find_first_not_of("0123456789") != std::string_view::npos)
    return -1;
  return std::stoi(std::string(v));
}

struct Normal {
  std::string os, arch, variant;
};

// Platforms made comparable: arm64's variant defaults to v8, arm's to v7,
// amd64's to v1; "7" reads as "v7".
Normal normalize(const Platform& p) {
  Normal n;
  n.os = lower(p.os);
  auto [arch, implied] = normalize_arch(p.architecture);
  n.arch = arch;
  n.variant = lower(p.variant.empty() ? implied : p.variant);
  int level = variant_level(n.variant);
  if (level >= 0) n.variant = "v" + std::to_string(level);
  if (n.variant.empty()) {
    if (n.arch == "arm64") n.variant = "v8";
    if (n.arch == "arm") n.variant = "v7";
    if (n.arch == "amd64") n.variant = "v1";
  }
  return n;
}

// 0 for an exact fit, higher for a worse one, -1 if `have` cannot run on `want`.
int match_rank(const Platform& have, const Platform& want) {
  Normal h = normalize(have), w = normalize(want);
  if (h.os != w.os || h.arch != w.arch) return -1;
  if (h.variant == w.variant) return 0;
  bool leveled = w.arch == "arm" || w.arch == "arm64" || w.arch == "amd64";
  if (leveled) {
    int hl = variant_level(h.variant), wl = variant_level(w.variant);
    if (hl >= 0 && wl >= 0 && hl < wl) return wl - hl;
    return -1;
  }
  return w.variant.empty() ? 1 : -1;
}

bool valid_platform_part(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

}  // namespace

Platform platform_for_machine(std::string_view machine) {
  Platform p;
  p.os = "linux";
  std::string m = lower(machine);
  if (m == "aarch64" || m == "arm64" || m == "armv8b" || m == "aarch64_be") {
    p.architecture = "arm64";
    p.variant = "v8";
  } else if (m.starts_with("armv") && m.size() >= 5 && m[4] >= '5' && m[4] <= '8') {
    // armv5tel, armv6l, armv7l; armv8l is a 32-bit kernel on a v8 CPU.
    p.architecture = "arm";
    p.variant = m[4] == '8' ? "v7" : std::string("v") + m[4];
  } else {
    auto [arch, variant] = normalize_arch(m);
    p.architecture = arch;
    p.variant = variant;
  }
  return p;
}

Platform host_platform() {
  struct utsname u;
  if (uname(&u) != 0) return platform_for_machine("");
  return platform_for_machine(u.machine);
}

Result<Platform> parse_platform(std::string_view s) {
  auto invalid = [&] {
    return bad("invalid platform " + quoted(s) + ": expected os/architecture[/variant]");
  };
  std::vector<std::string> parts = text::split(s, '/');
  if (parts.size() > 3) return invalid();
  for (auto& part : parts)
    if (!valid_platform_part(part)) return invalid();
  Platform p;
  std::string_view arch;
  if (parts.size() == 1) {
    p.os = "linux";
    arch = parts[0];
  } else {
    p.os = lower(parts[0]);
    arch = parts[1];
  }
  auto [a, implied] = normalize_arch(arch);
  p.architecture = a;
  p.variant = parts.size() == 3 ? lower(parts[2]) : implied;
  return p;
}

Result<Descriptor> pick_platform(const Index& idx, const Platform& want) {
  const Descriptor* best = nullptr;
  int best_rank = -1;
  std::vector<std::string> seen;
  for (auto& d : idx.manifests) {
    if (!d.platform || !is_manifest_media_type(d.media_type)) continue;
    if (d.platform->os == "unknown" || d.platform->architecture == "unknown") continue;
    std::string name = d.platform->str();
    if (std::find(seen.begin(), seen.end(), name) == seen.end()) seen.push_back(name);
    int rank = match_rank(*d.platform, want);
    if (rank >= 0 && (!best || rank < best_rank)) {
      best = &d;
      best_rank = rank;
    }
  }
  if (best) return *best;
  std::string has;
  for (auto& s : seen) has += (has.empty() ? "" : ", ") + s;
  if (has.empty()) has = "no platforms listed";
  else has = "it has " + has;
  return bad("no " + want.str() + " image in the index (" + has + ")");
}

// ---- Archives and layouts ----

namespace {

Result<std::string> archive_path(const json::Value& v, const std::string& what) {
  if (!v.is_string())
    return bad(what + ": expected a string, got " + std::string(json::type_name(v.type())));
  std::string p = TRY_CTX(clean_entry_path(v.as_string()), what);
  if (p == ".") return bad(what + ": names the archive root");
  return p;
}

Result<DockerArchiveEntry> read_archive_image(const json::Value& v) {
  TRY(json::expect_object(v, "entry"));
  DockerArchiveEntry img;
  const json::Value* config = v.find("Config");
  if (!config) return bad("Config: missing");
  img.config = TRY(archive_path(*config, "Config"));
  img.repo_tags =
      TRY(json::get_optional_string_array(v, "RepoTags")).value_or(std::vector<std::string>{});
  const json::Value* layers = TRY(json::get_array(v, "Layers"));
  for (size_t i = 0; i < layers->items().size(); i++)
    img.layers.push_back(
        TRY(archive_path(layers->items()[i], "Layers[" + std::to_string(i) + "]")));
  return img;
}

}  // namespace

Result<std::vector<DockerArchiveEntry>> parse_docker_manifest(std::string_view bytes) {
  auto doc = TRY_CTX(json::parse(bytes), "invalid manifest.json");
  if (!doc.is_array())
    return bad("invalid manifest.json: expected an array, got " +
               std::string(json::type_name(doc.type())));
  if (doc.items().empty()) return bad("invalid manifest.json: no images");
  std::vector<DockerArchiveEntry> out;
  for (size_t i = 0; i < doc.items().size(); i++)
    out.push_back(TRY_CTX(read_archive_image(doc.items()[i]),
                          "invalid manifest.json: [" + std::to_string(i) + "]"));
  return out;
}

std::string docker_manifest_json(const std::vector<DockerArchiveEntry>& images) {
  json::Value arr = json::Value::array();
  for (auto& img : images) {
    json::Value v = json::Value::object();
    v.set("Config", img.config);
    v.set("RepoTags", json::string_array(img.repo_tags));
    v.set("Layers", json::string_array(img.layers));
    arr.push(std::move(v));
  }
  return json::dump(arr);
}

Result<void> parse_layout(std::string_view bytes) {
  auto doc = TRY_CTX(json::parse(bytes, kManifestLimits), "invalid oci-layout");
  std::string version = TRY_CTX(json::get_string(doc, "imageLayoutVersion"), "invalid oci-layout");
  if (version != kLayoutVersion)
    return bad("invalid oci-layout: unsupported imageLayoutVersion " + quoted(version));
  return {};
}

std::string layout_json() {
  json::Value v = json::Value::object();
  v.set("imageLayoutVersion", kLayoutVersion);
  return json::dump(v);
}

std::string blob_path(std::string_view digest) {
  // SECURITY: the digest becomes a path; only 64 hex digits get through.
  if (!is_sha256_digest(digest)) return {};
  return "blobs/sha256/" + std::string(digest.substr(7));
}

}  // namespace togo::image::oci
