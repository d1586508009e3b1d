// Storing one image layer: its blob kept byte for byte under its digest and
// unpacked once into its own tree, whatever number of images share it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::image {

/// A line for the person running the command ("skipped 3 device nodes ...").
using Notice = std::function<void(const std::string&)>;

/// What the source says the blob is; empty or -1 where it says nothing.
struct LayerExpect {
  std::string digest;   // the blob's "sha256:<hex>"
  int64_t size = -1;    // the blob's size in bytes
  std::string diff_id;  // "sha256:<hex>" of the uncompressed tar
  std::string what;     // how errors name the layer ("layer 2 of debian")
};

/// Limits on what one layer may expand to, against decompression bombs.
/// Defaults: 64 GiB and 5 million entries per layer, and no more than
/// 1000 times the bytes read so far once past the first 256 MiB. Beyond
/// them, staging fails with kBadInput.
struct LayerLimits {
  uint64_t max_bytes = 64ull << 30;
  uint64_t max_entries = 5'000'000;
  uint64_t max_ratio = 1000;

  /// No limits: for layers togo made itself or already accepted.
  static constexpr LayerLimits none() { return {UINT64_MAX, UINT64_MAX, UINT64_MAX}; }
};

/// A layer staged by stage_layer: durable under the staging directory, not
/// yet in place or in the catalog.
struct StagedLayer {
  store::LayerRecord record;
  bool known = false;  // the catalog already has this digest: nothing to move
};

/// Reads a layer blob (a tar, plain or gzip/zstd/xz/bzip2 compressed) from
/// `in`, copies it to `stage/<n>.blob` and unpacks it into `stage/<n>.root`
/// in one pass, hashing both the blob and the uncompressed tar; checks them
/// against `expect`, and writes the listing of the tree (stage/<n>.files).
/// OCI whiteouts become overlayfs whiteouts. Nothing is durable yet:
/// place_layers syncs it all at once. The caller holds the store's writer lock.
/// `head`: bytes the caller already read from `in`, which come first.
Result<StagedLayer> stage_layer(store::Store& st, const std::string& stage, int n, int in,
                                const LayerExpect& expect, const Notice& notice,
                                const LayerLimits& limits = {}, std::string_view head = {});

/// Moves the staged layers (stage/<index>, bottom first) that are not
/// `known` into place (blobs/, layers/), durably, with one syncfs for all.
/// On failure, what it moved is removed again. The catalog rows are the
/// caller's to write, in the transaction that names the image; if that
/// fails, discard_placed() takes the files back out.
Result<void> place_layers(store::Store& st, const std::string& stage,
                          const std::vector<StagedLayer>& layers);
/// Removes the files of the layers place_layers moved (those not `known`),
/// for an import whose catalog transaction did not happen. Best effort:
/// what stays is garbage that `togo gc` removes.
void discard_placed(store::Store& st, const std::vector<StagedLayer>& layers);

/// Unpacks a stored layer blob into `dirfd/name` (a new directory) applying
/// its whiteouts to what is already there when `merge` (a private copy of a
/// whole image, layer over layer), verifying the blob's digest.
Result<void> unpack_blob(store::Store& st, const std::string& digest, int dirfd,
                         const std::string& name, bool merge, const Notice& notice);

}  // namespace togo::image
