// An image of the store on its way out as an OCI image layout: what each
// stored layer becomes, the documents that name the layers, and the layers'
// bytes, verified as they are read. `togo image export` (image_export.cc)
// and `togo export` (env_export.cc) both write their image through it, each
// in its own entry order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/layer_store.h"
#include "image/oci.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::image {

/// What one stored layer becomes in a layout.
struct LayerOut {
  store::LayerRecord rec;   // as stored
  bool decompress = false;  // written as its uncompressed tar
  oci::Descriptor desc;     // of the bytes written: media type, digest, size
  std::string diff_id;      // "sha256:" of its uncompressed tar
};

/// An image ready to be written as a layout.
struct LayoutOut {
  std::string config;             // the image config, byte for byte
  oci::ImageConfig parsed;        // the same, parsed
  std::vector<LayerOut> layers;   // bottom first, one per layer of the image (repeats kept)
  std::string manifest;           // the manifest's JSON
  oci::Descriptor manifest_desc;  // as index.json names it (platform, ref.name when named)
  std::string index;              // index.json

  /// "blobs/sha256/<hex>" of the manifest and of the config.
  std::string manifest_path() const;
  std::string config_path() const;
};

/// The config to export or push for `img` (its layers' diff_ids given): the
/// stored one, checked against the diff_ids, or for the "{}" of an older
/// store one made for this host (said through `notice`). A config that does
/// not parse is an error. `shown` names the image in messages.
Result<std::string> config_to_send(const store::ImageRecord& img,
                                   const std::vector<std::string>& diff_ids, const std::string& shown,
                                   const Notice& notice);

/// Plans `img`. A layer goes as its stored blob, unless its blob has no OCI
/// media type (xz, bzip2) or `decompress_all` (docker archives hold plain
/// tars) and it is compressed: then as its uncompressed tar, whose digest is
/// its diff_id. The tar's size comes before its data in an archive, so such
/// a layer is decompressed once here to learn it (and checked against its
/// diff_id) and once more when written, rather than spooled to disk. A store
/// from before image configs were kept ("{}") gets a config for this host
/// (said through `notice`); a config whose diff_ids are not the layers' is
/// an error. Layers are read only when they must be decompressed, or when a
/// store from before diff_ids were catalogued does not know a layer's.
Result<LayoutOut> plan_layout(store::Store& st, const store::ImageRecord& img, bool decompress_all,
                              const Notice& notice);

/// Gives the bytes `l` stands for to `sink`, in pieces.
/// SECURITY: the stored blob is checked against its digest and size, and
/// what is given against l.desc (a decompressed layer against its diff_id);
/// no more than l.desc.size bytes are ever given. On a mismatch the error
/// says the store is damaged (with the hint to run `togo fsck`).
Result<void> write_layer_out(int store_fd, const LayerOut& l,
                             const std::function<Result<void>(const void*, size_t)>& sink);

}  // namespace togo::image
