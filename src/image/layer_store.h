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

/// A layer staged under a staging directory as stage/<n>.blob, and unless
/// it stays packed (!record.unpacked) its tree stage/<n>.root and listing
/// stage/<n>.files; not yet in place or in the catalog.
struct StagedLayer {
  store::LayerRecord record;
  bool known = false;  // the catalog already has it (unpacked, if it is here unpacked): nothing to move
  bool blob_placed = false;  // the blob is in the store already: only the tree moves
};

/// Reads a layer blob (a tar, plain or gzip/zstd/xz/bzip2 compressed) from
/// `in`, copies it to `stage/<n>.blob` and unpacks it into `stage/<n>.root`
/// in one pass, hashing both the blob and the uncompressed tar; checks them
/// against `expect`, and writes the listing of the tree (stage/<n>.files).
/// OCI whiteouts become overlayfs whiteouts. Nothing is durable yet:
/// place_layers syncs it all at once. A layer the catalog has packed is
/// staged as new but blob_placed, so that placing it moves its tree only
/// and the caller records it unpacked. The caller holds the store's writer
/// lock.
/// `head`: bytes the caller already read from `in`, which come first.
Result<StagedLayer> stage_layer(store::Store& st, const std::string& stage, int n, int in,
                                const LayerExpect& expect, const Notice& notice,
                                const LayerLimits& limits = {}, std::string_view head = {});

/// Unpacks the stored blob of the packed layer `rec` into stage/<n>.root and
/// its listing stage/<n>.files, checking the blob against rec's digest and
/// size and the uncompressed tar against rec.diff_id, held to `limits` (a
/// packed blob came from outside and was never read). Errors start with
/// `what`. Returns the layer as unpacked, with blob_placed set. Touches no
/// catalog, so several may run at once.
Result<StagedLayer> stage_stored_layer(store::Store& st, const std::string& stage, int n,
                                       const store::LayerRecord& rec, const std::string& what,
                                       const Notice& notice, const LayerLimits& limits = {});

/// The OCI media type of a layer blob that starts with `head` (its first
/// bytes; 6 are enough): tar, tar+gzip or tar+zstd, and "" for xz and
/// bzip2, which OCI has no type for (as stage_layer records them).
std::string sniff_media_type(std::string_view head);

/// Moves the staged layers (stage/<index>, bottom first) that are not
/// `known` into place (blobs/, layers/), durably: one syncfs for all their
/// trees (the blob of a packed layer must be durable already: nothing else
/// syncs it).
/// On failure, what it moved is removed again. The catalog rows are the
/// caller's to write, in the transaction that names the image; if that
/// fails, discard_placed() takes the files back out.
Result<void> place_layers(store::Store& st, const std::string& stage,
                          const std::vector<StagedLayer>& layers);
/// Removes the files of the layers place_layers moved (those not `known`;
/// a blob only where it was not `blob_placed`),
/// for an import whose catalog transaction did not happen. Best effort:
/// what stays is garbage that `togo gc` removes.
void discard_placed(store::Store& st, const std::vector<StagedLayer>& layers);

/// Unpacks a stored layer blob into `dirfd/name` (a new directory) applying
/// its whiteouts to what is already there when `merge` (a private copy of a
/// whole image, layer over layer), verifying the blob's digest.
Result<void> unpack_blob(store::Store& st, const std::string& digest, int dirfd,
                         const std::string& name, bool merge, const Notice& notice);

}  // namespace togo::image
