// `togo image export`: an image of the store written as a tar stream that
// other engines load: an OCI image layout (skopeo's oci-archive, `podman
// load`, containerd's `ctr import`) or a `docker save` archive (`docker
// load`, `podman load`, skopeo's docker-archive).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "image/layer_store.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::image {

enum class ExportFormat { kOci, kDocker };
/// "oci" or "docker"; kUsage for anything else.
Result<ExportFormat> parse_export_format(std::string_view s);

struct ExportOptions {
  ExportFormat format = ExportFormat::kOci;
  Notice notice;
};

struct ExportStats {
  uint64_t bytes = 0;  // blob bytes written (layers and documents)
  size_t layers = 0;   // distinct layers written
};

/// Writes `img` as a tar to `out` (a file or a pipe; nothing is read back).
///  - OCI: oci-layout, blobs/sha256/<hex> for each layer, the config and an
///    OCI manifest, and index.json naming the manifest with the
///    org.opencontainers.image.ref.name annotation set to the image's name
///    (absent for an image known only by its id). Layers go out as stored;
///    an xz or bzip2 blob, which has no OCI media type, goes out
///    decompressed, as a plain tar whose digest is its diff_id.
///  - docker: `docker save`'s layout: <config hex>.json, <diff_id hex>/layer.tar
///    (each layer decompressed) and manifest.json with RepoTags
///    [archive_tag(name)].
/// The image is planned by plan_layout (layout_export.h): every blob's digest
/// is checked as it is read, and every decompressed layer's against its
/// diff_id; a layer written decompressed is read twice (once to learn its
/// size for the tar header, once to write it) rather than spooled to disk.
/// On error the stream is incomplete: the caller discards it.
Result<ExportStats> export_image(store::Store& st, const store::ImageRecord& img, int out,
                                 const ExportOptions& opts);

/// The RepoTag a docker archive gives the image called `name`. Podman names
/// what it builds from a bare name "localhost/NAME:latest", and `podman
/// load` would turn a bare "dev:latest" into "docker.io/library/dev:latest"
/// (Docker's rule); so a name without a registry gets "localhost/", and one
/// without a tag ":latest": "dev" -> "localhost/dev:latest", "ghcr.io/o/r"
/// -> "ghcr.io/o/r:latest", "team/tool:1" -> "localhost/team/tool:1". Pure.
std::string archive_tag(std::string_view name);

}  // namespace togo::image
