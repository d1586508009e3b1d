// Layers stored packed: `togo image pull` keeps each new layer as its blob
// alone, verified against its digest, and the first command that needs the
// files (create, env import, pull --unpack, fsck --repair of an env's
// image) unpacks it here, through the same stage, verify and place steps
// as an import.
#pragma once

#include <functional>

#include "base/error.h"
#include "image/layer_store.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::image {

/// Unpacks every layer of `image` that the catalog records as packed, from
/// its stored blob: several at a time, each held to the limits against
/// decompression bombs and checked against its digest and diff_id (which
/// must be the one the image's config gives), then made durable, moved into
/// place, and recorded as unpacked in one catalog transaction. An image
/// whose layers are all unpacked costs one catalog query. The caller holds
/// the writer lock.
/// Errors name the image and the layer ("image NAME: layer 2/3 (sha256:...):
/// <why>"), and leave the store as it was. `on_layer(index)` is called
/// before each layer is unpacked.
Result<void> unpack_image(store::Store& st, const store::ImageRecord& image, const Notice& notice,
                          const std::function<void(size_t index)>& on_layer = {});

}  // namespace togo::image
