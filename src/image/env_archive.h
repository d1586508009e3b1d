// An environment as one file, for `togo export` and `togo import`: a tar
// (zstd, gzip or plain) holding, in this order,
//   togo-export.json        what the env is: name, rootfs mode, settings, image
//   oci-layout, index.json  its image as an OCI image layout ...
//   blobs/sha256/<hex>      ... manifest, config, then the layer blobs as stored
//                           (left out by --no-image; manifest and config stay)
//   upper/...  or rootfs/...   the env's writable tree (pack(), OCI whiteouts
//                           for an overlay upper; a copy-mode env's whole root)
//   togo-export.end         the tree's number of entries, size and digest
// docs/store-format.md describes it for people.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "image/layer_store.h"
#include "image/pack.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::image {

inline constexpr std::string_view kExportFormat = "togo-env-export";
inline constexpr int kExportVersion = 1;
inline constexpr std::string_view kExportHeader = "togo-export.json";
inline constexpr std::string_view kExportTrailer = "togo-export.end";
inline constexpr std::string_view kExportUpper = "upper";    // an overlay env's writable layer
inline constexpr std::string_view kExportRootfs = "rootfs";  // a copy-mode env's private root

enum class ExportCompression { kZstd, kGzip, kNone };
/// "zstd", "gzip" or "none"; a usage error otherwise.
Result<ExportCompression> parse_export_compression(std::string_view name);

/// What togo-export.json says.
struct ExportHeader {
  std::string name;                   // the env's name
  std::string rootfs;                 // "overlay" or "copy"
  std::vector<std::string> settings;  // KEY=VALUE lines, as the catalog keeps them
  std::string image_name;             // may be empty (an image known only by its id)
  std::string image_id;               // "sha256:<hex>", the digest of its config
  bool image_included = true;         // false: --no-image, the layer blobs are left out
  int64_t created = 0;                // when the env was created (Unix time)
  std::string writer;                 // "togo 0.1.0", for people
};

/// What togo-export.end says about the writable tree before it: how many
/// entries it has, and its bytes in the uncompressed tar with their digest.
struct ExportTrailer {
  uint64_t entries = 0;
  uint64_t bytes = 0;
  std::string digest;  // "sha256:<hex>"
};

std::string trailer_json(uint64_t entries, uint64_t bytes, const std::string& digest);
Result<ExportTrailer> parse_trailer(std::string_view text);

std::string header_json(const ExportHeader& h);
/// Parses and checks a header: the format name, a version this togo reads
/// (a newer one is kBadInput with a hint to upgrade), a valid env name, a
/// known rootfs mode, settings lines without newlines, a sha256 image id.
Result<ExportHeader> parse_header(std::string_view text);

/// The env's settings text (catalog form) as lines, and back.
std::vector<std::string> settings_lines(std::string_view text);
std::string settings_text(const std::vector<std::string>& lines);

struct EnvExportOptions {
  ExportCompression compression = ExportCompression::kZstd;
  bool include_image = true;
  Notice notice;
};

struct EnvExportStats {
  uint64_t layers = 0;       // layer blobs written
  uint64_t layer_bytes = 0;  // their bytes
  PackStats tree;            // the writable tree
};

/// Writes the export of `env` to `out` (a file or a pipe), in one pass.
/// `tree` is the env's writable tree, open as a directory: envs/<id>/upper
/// for an overlay env, envs/<id>/rootfs for a copy. Layer blobs are copied
/// as stored and verified against their digests on the way; a blob stored
/// with a compression OCI has no media type for (xz, bzip2) is written
/// uncompressed instead (its digest is then its diff_id; the image id, the
/// config's digest, does not change). The caller keeps the env from running
/// meanwhile. On error, what was written is incomplete: the caller discards it.
Result<EnvExportStats> write_env_archive(store::Store& st, const store::EnvRecord& env, int tree,
                                         int out, const EnvExportOptions& opts);

struct EnvImportOptions {
  std::string name;  // the new env's name; empty: the one in the file
  std::string what;  // how messages name the input: the file, or "stdin"
  Notice notice;
  /// Called once the header is read, before anything else is: may refuse it
  /// (e.g. settings this togo cannot use) or rewrite its settings lines.
  std::function<Result<void>(ExportHeader&)> check_header;
};

struct EnvImportResult {
  store::EnvRecord env;
  bool image_imported = false;  // false: the store already had the image
  std::string image_name;       // the name the image has in this store
};

/// Recreates an exported env from `in` (a file or a pipe) in the store: a new
/// id, the name from the file or `opts.name`, the image imported unless the
/// store has its id (an export made with --no-image needs it there), the
/// writable tree with its whiteouts as overlay whiteouts. Everything is
/// staged under tmp/, made durable, moved into place, and named by one
/// catalog transaction; on any error the store is left as it was. An env
/// name in use is kConflict. Takes the store's writer lock.
///
/// SECURITY: the file is hostile input. Documents and blobs are read from
/// expected names only, in the expected order, and checked against their
/// digests; layers go through stage_layer and the tree through unpack (the
/// confined unpacker); nothing outside the staging directory is written.
Result<EnvImportResult> import_env_archive(store::Store& st, int in, const EnvImportOptions& opts);

}  // namespace togo::image
