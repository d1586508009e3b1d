// `togo commit`: an environment's current files become an image. The env's
// writable layer is packed as one new layer over its image's layers (an
// overlay env), or its whole private copy becomes the only layer (a
// `--rootfs copy` env); the image config is the base's, extended.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "image/import.h"
#include "image/oci.h"
#include "image/pack.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::image {

/// How the new layer's blob is compressed. zstd by default: several times
/// faster than gzip at a better ratio, and read by Podman (>= 3), containerd
/// (>= 1.5, so Kubernetes), CRI-O and Docker (>= 23). gzip is for older
/// Docker engines and registries that refuse zstd.
enum class LayerCompression { kZstd, kGzip };
/// "zstd" or "gzip"; kUsage for anything else.
Result<LayerCompression> parse_layer_compression(std::string_view s);

struct CommitOptions {
  std::string name;                  // the new image's name
  std::string message;               // the history entry's comment
  std::vector<std::string> changes;  // --change KEY=VALUE, applied in order
  LayerCompression compression = LayerCompression::kZstd;
  Notice notice;
  /// Called after the layer tar is read to its end and before anything is
  /// committed: the producer's exit status.
  std::function<Result<void>()> before_commit;
};

/// Whether the env's writable tree is an overlay upper directory (the new
/// layer goes over the image's) or a full copy (it replaces them).
bool commit_replaces_layers(const store::EnvRecord& env);

/// Writes the env's writable tree as an uncompressed tar to `out`: upper/
/// with overlay whiteouts and opaque directories in OCI form, or the whole
/// rootfs/ of a copy env. Runs in a child that sees the env's files with the
/// ids the env sees them (see cli/commit_export_cmds.cc).
Result<PackStats> write_env_layer(int store_fd, const store::EnvRecord& env, int out);

/// Reads the tar write_env_layer produced from `tar`, compresses it into a
/// blob under the store's staging directory while hashing both forms,
/// stages it as a store layer (unpacked and verified against both hashes),
/// and commits the image `opts.name` whose config is `base`'s extended by
/// commit_config. The caller holds the store's writer lock.
Result<store::ImageRecord> commit_env(store::Store& st, const store::EnvRecord& env,
                                      const store::ImageRecord& base, int tar,
                                      const CommitOptions& opts);

/// The committed image's config: `base_config` (a rootfs config for this
/// host when it cannot be parsed) with the new layer's diff_id appended (or
/// as the only one when `replace`), a history entry {created, "togo commit",
/// message} (entries padded so each layer has one), `created`, and the
/// changes applied. `base_diff_ids` are the base layers' diff_ids from the
/// catalog. Pure.
Result<std::string> commit_config(std::string_view base_config,
                                  const std::vector<std::string>& base_diff_ids, bool replace,
                                  const std::string& diff_id, const std::string& created,
                                  const CommitOptions& opts);

/// Applies one change in Dockerfile form, "KEY=VALUE" or "KEY VALUE": CMD,
/// ENTRYPOINT (a JSON array, else a shell command run by /bin/sh -c), ENV
/// K=V, LABEL K=V, WORKDIR /path, USER u[:g], EXPOSE port[/proto], VOLUME
/// /path, STOPSIGNAL sig. kUsage for anything else. Pure.
Result<void> apply_change(oci::ImageConfig& config, std::string_view change);

/// Now as RFC 3339 in UTC, "2024-05-01T12:00:00Z".
std::string rfc3339_now();

}  // namespace togo::image
