// `togo image import`: images from OCI image layouts (a directory or its
// tar), `docker save` / `podman save` archives, and root filesystem
// tarballs, told apart by what they contain.
#pragma once

#include <string>

#include "base/error.h"
#include "image/import.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::image {

struct ArchiveImportOptions {
  ImportOptions base;     // base.name may be empty: then the archive's own name
  std::string ref;        // which image of several (a tag or ref name); empty: the only one
  std::string platform;   // "os/arch[/variant]" for multi-arch layouts; empty: this host's
  std::string fallback_name;  // the name when neither --name nor the archive gives one
};

/// Imports what `path` holds ("-" reads `fd`, i.e. stdin). A directory must
/// be an OCI layout or an unpacked docker archive; a file or stream may be
/// either of those as a tar (compressed or not), or else a root filesystem
/// tarball. The store is unchanged unless the whole import succeeds.
Result<store::ImageRecord> import_any(store::Store& st, const std::string& path, int fd,
                                      const ArchiveImportOptions& opts);

}  // namespace togo::image
