// Turning outside data into images in the store: root filesystem tarballs
// now; OCI layouts and registries build on the same steps.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/layer_store.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::image {

struct ImportOptions {
  std::string name;    // the image's name
  std::string source;  // where it came from, for people
  Notice notice;
  /// Called after the data is read and before anything is committed; an
  /// error here aborts the import (e.g. the producer of a pipe failed).
  std::function<Result<void>()> before_commit;
  /// Bytes already read from the input (to tell what it is), which come first.
  std::string head;
};

/// Imports a root filesystem tarball (tar, optionally gzip, xz, zstd or
/// bzip2 compressed) read from `input_fd`. The store is unchanged unless the
/// whole import succeeds; the same content imported again reuses the
/// stored layer.
Result<store::ImageRecord> import_rootfs(store::Store& store, int input_fd,
                                         const ImportOptions& opts);

/// An image read from outside, its layers staged, ready to be committed.
struct NewImage {
  std::string config;               // the OCI image config, byte for byte
  std::vector<StagedLayer> layers;  // bottom first; staged as stage/<index>
};

/// Moves the staged layers into place and names the image in one catalog
/// transaction; a name already taken moves to the new content. Its id is
/// the config's digest.
Result<store::ImageRecord> commit_image(store::Store& st, const std::string& stage,
                                        const NewImage& image, const ImportOptions& opts);

/// A usage error unless `name` can name an image.
Result<void> check_image_name(const std::string& name);

/// The OCI image config of a single-layer root filesystem for this host.
std::string rootfs_config(const std::vector<std::string>& diff_ids);

/// Removes the image called `name` from the catalog, then the layers no
/// image uses any more. Refused while an environment uses the image, unless
/// `force`: then only the name goes (with a warning through `notice`) and
/// the content stays, named by its id, until no environment uses it.
Result<void> remove_image(store::Store& store, const std::string& name, bool force = false,
                          const Notice& notice = {});

/// Deletes layers (catalog rows first, then files) that no image names.
Result<void> remove_unused_layers(store::Store& store);

}  // namespace togo::image
