// OCI image spec documents (and Docker's schema 2 equivalents): manifests,
// indexes, image configs, `docker save` archive manifests and OCI layout
// files, parsed strictly from untrusted bytes and written back as valid JSON.
// Pure logic apart from host_platform(); every rule is unit-tested.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/error.h"
#include "base/json.h"

namespace togo::image::oci {

// ---- Media types ----

inline constexpr std::string_view kMediaTypeManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kMediaTypeIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kMediaTypeConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kMediaTypeLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kMediaTypeLayerGzip =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kMediaTypeLayerZstd =
    "application/vnd.oci.image.layer.v1.tar+zstd";
/// Deprecated by OCI; the blob may not be served by registries.
inline constexpr std::string_view kMediaTypeLayerNondistributable =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
inline constexpr std::string_view kMediaTypeLayerNondistributableGzip =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
inline constexpr std::string_view kMediaTypeLayerNondistributableZstd =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
inline constexpr std::string_view kMediaTypeEmpty = "application/vnd.oci.empty.v1+json";

inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kDockerLayer = "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr std::string_view kDockerForeignLayerGzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Refused: Docker's schema 1 (unsigned and signed).
inline constexpr std::string_view kDockerSchema1 =
    "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerSchema1Signed =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// True for the OCI and Docker image manifest / index (manifest list) types.
bool is_manifest_media_type(std::string_view media_type);
bool is_index_media_type(std::string_view media_type);
/// True for the OCI and Docker image config types.
bool is_config_media_type(std::string_view media_type);

enum class Compression { kNone, kGzip, kZstd };
std::string_view compression_name(Compression c);  // "none", "gzip", "zstd"

/// How a layer of this media type is compressed; kBadInput "unsupported layer
/// media type \"...\"" for anything else (including "+bzip2" and artifacts).
/// Non-distributable (foreign) layers are classified too: see below.
Result<Compression> layer_compression(std::string_view media_type);
/// True for OCI non-distributable and Docker foreign layers, whose blobs
/// registries need not serve: usable only if the blob is at hand.
bool is_non_distributable_layer(std::string_view media_type);

/// kBadInput unless `digest` is "sha256:" and 64 lowercase hex digits.
Result<void> check_digest(std::string_view digest);

// ---- Documents ----

struct Platform {
  std::string os;            // "linux"
  std::string architecture;  // "amd64", "arm64", "arm", "386", ...
  std::string variant;       // "" or "v8", "v7", ...
  std::string os_version;    // "" (Windows only)
  std::vector<std::string> os_features;

  /// "linux/arm64/v8", "linux/amd64".
  std::string str() const;
  bool operator==(const Platform&) const = default;
};

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<64 hex>"
  int64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
  std::string artifact_type;
  bool operator==(const Descriptor&) const = default;
};

struct Manifest {
  int schema_version = 2;
  std::string media_type;  // kMediaTypeManifest or kDockerManifest
  std::string artifact_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;
};

struct Index {
  int schema_version = 2;
  std::string media_type;  // kMediaTypeIndex or kDockerManifestList
  std::vector<Descriptor> manifests;
  std::map<std::string, std::string> annotations;
};

struct HistoryEntry {
  std::string created;
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;
};

struct ImageConfig {
  std::string architecture;
  std::string os;
  std::string variant;
  std::string os_version;
  std::string created;  // RFC 3339, as written
  std::string author;
  // The runtime defaults ("config" in the document). An empty Entrypoint or
  // Cmd is written as absent, which means the same to every runtime.
  std::string user;
  std::vector<std::string> env;  // "KEY=value"
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string working_dir;
  std::vector<std::string> exposed_ports;  // "80/tcp", sorted
  std::vector<std::string> volumes;        // "/data", sorted
  std::map<std::string, std::string> labels;
  std::string stop_signal;

  std::vector<std::string> diff_ids;  // rootfs.diff_ids: digests of the uncompressed layers
  std::vector<HistoryEntry> history;
  /// The whole document as parsed, so fields not modelled here survive
  /// to_json(); null for a config built from scratch.
  json::Value raw;
};

enum class DocumentKind { kManifest, kIndex };

/// Which document a manifest response is: by its "mediaType" field, else by
/// `content_type` (parameters ignored), else by shape ("manifests" or
/// "config"/"layers"). Docker schema 1 and unknown media types are kBadInput.
Result<DocumentKind> detect_manifest_kind(std::string_view bytes,
                                         std::string_view content_type = {});

/// Parses an image manifest (OCI or Docker schema 2). kBadInput
/// "invalid image manifest: <field>: <why>" for malformed documents: bad
/// digests, negative sizes, schemaVersion other than 2, missing fields, an
/// index given where a manifest was expected. A missing mediaType is taken
/// from `content_type` when it names a manifest type, else OCI's.
Result<Manifest> parse_manifest(std::string_view bytes, std::string_view content_type = {});
/// Parses an image index or Docker manifest list, as strictly.
Result<Index> parse_index(std::string_view bytes, std::string_view content_type = {});
/// Either of the above, as detect_manifest_kind says.
Result<std::variant<Manifest, Index>> parse_any_manifest(std::string_view bytes,
                                                         std::string_view content_type = {});
/// Parses an image config (OCI or Docker). os, architecture and rootfs
/// (type "layers", valid diff_ids) are required; null fields read as absent.
Result<ImageConfig> parse_config(std::string_view bytes);

/// Compact JSON with schemaVersion 2 and mediaType set (OCI's when empty).
std::string to_json(const Manifest& m);
std::string to_json(const Index& idx);
/// The raw document with the modelled fields replaced by the struct's (empty
/// ones removed); a fresh document when `raw` is not an object.
std::string to_json(const ImageConfig& c);
json::Value to_value(const Descriptor& d);
json::Value to_value(const Platform& p);

// ---- Platforms ----

/// The platform for a `uname -m` machine name: x86_64 -> amd64, aarch64 ->
/// arm64/v8, armv7l -> arm/v7, armv6l -> arm/v6, i686 -> 386, others as is.
Platform platform_for_machine(std::string_view machine);
/// This host's platform (os "linux"), from uname(2).
Platform host_platform();
/// "linux/arm64/v8", "linux/amd64" or "arm64" (os linux); architecture
/// aliases (x86_64, aarch64, armhf, i686, ...) are normalized. kBadInput
/// otherwise.
Result<Platform> parse_platform(std::string_view s);
/// The manifest in `idx` that runs on `want`: same os and architecture and a
/// compatible variant (arm64 "" == "v8"; an arm/v7 host also takes v6 and v5,
/// closest first; amd64 likewise by level). Entries without a platform, with
/// os "unknown" (attestations) or that are not image manifests are skipped;
/// ties go to the first. kBadInput "no linux/amd64 image in the index (it has
/// linux/arm64, linux/arm/v7)" when none fits.
Result<Descriptor> pick_platform(const Index& idx, const Platform& want);

// ---- Archives and layouts ----

/// One image of a `docker save` / `podman save` archive's manifest.json.
struct DockerArchiveEntry {
  std::string config;                  // path of the config blob in the archive
  std::vector<std::string> repo_tags;  // "debian:bookworm"; may be empty
  std::vector<std::string> layers;     // paths of the layer tarballs, in order
};
/// Parses manifest.json (a non-empty array). Paths are normalized like tar
/// entries ("./a/layer.tar" -> "a/layer.tar"); absolute paths, ".." and NUL
/// are kBadInput.
Result<std::vector<DockerArchiveEntry>> parse_docker_manifest(std::string_view bytes);
std::string docker_manifest_json(const std::vector<DockerArchiveEntry>& images);

inline constexpr std::string_view kLayoutFile = "oci-layout";
inline constexpr std::string_view kLayoutIndexFile = "index.json";
inline constexpr std::string_view kLayoutVersion = "1.0.0";
/// The tag of a manifest in an OCI layout's index.json.
inline constexpr std::string_view kAnnotationRefName = "org.opencontainers.image.ref.name";
/// The full reference, as containerd and Docker write it in index.json.
inline constexpr std::string_view kAnnotationContainerdName = "io.containerd.image.name";

/// Checks an oci-layout file: {"imageLayoutVersion":"1.0.0"}.
Result<void> parse_layout(std::string_view bytes);
std::string layout_json();
/// "blobs/sha256/<hex>" for a digest that passes check_digest (every digest
/// of a parsed document does); "" for any other string, so a hostile digest
/// never names a path outside blobs/.
std::string blob_path(std::string_view digest);

}  // namespace togo::image::oci
