// `togo image push`: an image of the store to an OCI distribution registry,
// as an OCI image manifest whose layers are the stored blobs.
#pragma once

#include <string>

#include "base/error.h"
#include "image/pull.h"
#include "image/reference.h"
#include "store/store.h"

namespace togo::image {

struct PushOptions : TransferOptions {};

/// Uploads the image called `image` to `ref` (under its tag, or its digest
/// when it has no tag): each layer blob the repository lacks, byte for byte
/// as stored and verified against its digest while it is read to be sent
/// (read once; a damaged blob fails the push before any manifest names
/// it), then the config, then an OCI manifest. Blobs stored xz- or bzip2-compressed (no
/// OCI media type) are sent decompressed, as plain tar layers whose digest
/// is their diff_id, which the image config already names. Returns the
/// manifest's digest. Errors read "pushing <registry>/<repository>: ...".
Result<std::string> push(store::Store& st, const std::string& image, const Reference& ref,
                         const PushOptions& opts);

}  // namespace togo::image
