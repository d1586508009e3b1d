// Turning outside data into images in the store: root filesystem tarballs
// now; OCI layouts and registries build on the same steps.
#pragma once

#include <functional>
#include <string>

#include "base/error.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::image {

/// A line for the person running the command ("skipped 3 device nodes ...").
using Notice = std::function<void(const std::string&)>;

struct ImportOptions {
  std::string name;    // the image's name
  std::string source;  // where it came from, for people
  Notice notice;
  /// Called after the data is read and before anything is committed; an
  /// error here aborts the import (e.g. the producer of a pipe failed).
  std::function<Result<void>()> before_commit;
};

/// Imports a root filesystem tarball (tar, optionally gzip, xz, zstd or
/// bzip2 compressed) read from `input_fd`. The store is unchanged unless the
/// whole import succeeds; the same content imported again reuses the
/// stored layer.
Result<store::ImageRecord> import_rootfs(store::Store& store, int input_fd,
                                         const ImportOptions& opts);

/// Unpacks a stored layer blob into `dirfd/name` (a new directory), e.g. to
/// give an environment a private copy of its image.
Result<void> unpack_blob(store::Store& store, const std::string& digest, int dirfd,
                         const std::string& name, const Notice& notice);

/// Removes the image called `name` from the catalog, then the layers no
/// image uses any more. Refused while an environment uses the image.
Result<void> remove_image(store::Store& store, const std::string& name);

/// Deletes layers (catalog rows first, then files) that no image names.
Result<void> remove_unused_layers(store::Store& store);

}  // namespace togo::image
