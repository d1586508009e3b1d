// Every name in a store directory, in one place. docs/store-format.md
// describes the same layout for people.
#pragma once

#include <string>
#include <string_view>

namespace togo::store {

/// The format this togo writes; a store with a larger number is refused.
inline constexpr int kFormat = 1;

inline constexpr const char* kMarker = "togo-store";     // "togo-store\nformat N\n"
inline constexpr const char* kCatalog = "catalog.db";    // SQLite, WAL mode
inline constexpr const char* kLock = "lock";             // flock: one writer at a time
inline constexpr const char* kBlobs = "blobs/sha256";    // blobs/sha256/<hex>
inline constexpr const char* kLayers = "layers";         // layers/<hex>/root
inline constexpr const char* kEnvs = "envs";             // envs/<id>/...
inline constexpr const char* kTmp = "tmp";               // staging; garbage after a crash
inline constexpr const char* kDownloads = "tmp/downloads";  // partial pulls, resumable
inline constexpr const char* kRunCache = "cache/run";    // cache/run/<env name>: run_cache.h

/// The hex part of a "sha256:<hex>" digest (the whole string if it has no ':').
std::string_view digest_hex(std::string_view digest);
/// Path of a blob, relative to the store root, for a "sha256:<hex>" digest.
std::string blob_path(std::string_view digest);
/// Directory of an unpacked layer, relative to the store root.
std::string layer_dir(std::string_view digest);
/// The layer's root filesystem tree inside layer_dir.
std::string layer_root(std::string_view digest);
/// The listing of what layer_root held when it was unpacked (tree_listing.h).
std::string layer_files(std::string_view digest);

/// Files of one environment, relative to the store root.
struct EnvPaths {
  std::string dir;     // envs/<id>
  std::string upper;   // overlay upper layer: what the env wrote
  std::string work;    // overlay work directory
  std::string rootfs;  // a private full copy, when overlayfs is not used
  std::string mount;   // where the env's root is assembled at run time
  std::string run;     // generated files (resolv.conf, ...)
  std::string lock;    // held while the env runs
};
EnvPaths env_paths(std::string_view env_id);

/// The marker file's content for a format number.
std::string marker_text(int format);
/// Parses a marker file; returns the format number, or -1 if it is not one.
int parse_marker(std::string_view text);

/// True for image names: [A-Za-z0-9] then [A-Za-z0-9_.:/-], at most 128
/// characters, no "..", not ending in '/' or ':' ("debian:bookworm").
bool valid_name(std::string_view name);
/// True for environment names, which are also their hostnames:
/// [A-Za-z0-9][A-Za-z0-9_.-]{0,62}.
bool valid_env_name(std::string_view name);

}  // namespace togo::store
