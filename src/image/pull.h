// `togo image pull`: an image from an OCI distribution registry into the
// store. Layers the store lacks are downloaded in parallel, without the
// store's writer lock, into partial files that a later pull resumes; then,
// under the lock, their verified blobs move into the store and the image is
// committed with them packed (unpack_image.h unpacks them on first use), or
// with --unpack, unpacked at once.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "image/http.h"
#include "image/layer_store.h"
#include "image/oci.h"
#include "image/reference.h"
#include "image/registry.h"
#include "store/catalog.h"
#include "store/store.h"

namespace togo::image {

/// Where partial downloads live, relative to the store's root:
/// `tmp/downloads/<hex>.partial`, named by the blob's digest. A pull holds
/// an flock(2) on each while it writes it; `togo gc` removes only those no
/// pull holds. A complete one is used through the pull's open descriptor,
/// so removing it by name takes nothing from that pull.
inline constexpr const char* kPartialSuffix = ".partial";

/// What one blob transfer is doing, for a progress display.
struct TransferEvent {
  enum class Kind {
    kStart,      // the transfer begins; `done` > 0 when it resumes
    kBytes,      // `done` bytes are there now
    kDone,       // complete and verified
    kSkipped,    // nothing to transfer: `note` says why
    kUnpacking,  // pull --unpack: verifying and unpacking into the store
  };
  Kind kind = Kind::kStart;
  size_t index = 0;  // the layer's position, 0 at the bottom
  size_t count = 0;  // layers in the image
  std::string_view digest;
  uint64_t total = 0;  // the blob's size
  uint64_t done = 0;
  std::string_view note;
};

/// Receives TransferEvents. Called from several threads at once, so it must
/// be thread-safe; kBytes comes often and should be cheap.
using TransferProgress = std::function<void(const TransferEvent&)>;

/// What pull and push share.
struct TransferOptions {
  /// Sent to the registry when it asks; when unset, the Docker config's
  /// (credentials_for()) are used.
  std::optional<Credentials> creds;
  /// TLS without verification (and plain HTTP as a fallback) for registries
  /// not on loopback; loopback registries always speak plain HTTP.
  bool insecure = false;
  /// Timeouts of every connection.
  http::ClientOptions http;
  Notice notice;
  TransferProgress progress;
};

struct PullOptions : TransferOptions {
  /// The image's name in the store; empty: the reference's short_name().
  std::string name;
  /// Which image of a multi-arch index. When unset, this host's platform;
  /// a single-platform image for another platform is then pulled with a
  /// warning, while an explicit platform it does not match is an error.
  std::optional<oci::Platform> platform;
  /// Downloads at a time, each on its own connection.
  int jobs = 3;
  /// Unpack every layer now (verifying its diff_id) instead of on first use.
  bool unpack = false;
};

/// Pulls `ref` into the store and names it. Every manifest and blob is
/// verified against its digest and size, and made durable before the
/// catalog names it; new layers are stored packed unless `opts.unpack`
/// (then each layer's uncompressed content is checked against the config's
/// diff_id too). A failure is one error naming the image and the
/// layer, and leaves the store's catalog, blobs and layers as they were.
/// Layers the store already has are not downloaded. Errors read "pulling
/// <registry>/<repository>: [layer N/M: ]<object>: <why>".
Result<store::ImageRecord> pull(store::Store& st, const Reference& ref, const PullOptions& opts);

/// RegistryOptions for a transfer: the given credentials, else those of the
/// Docker config for the reference's registry.
Result<RegistryOptions> registry_options(const Reference& ref, const TransferOptions& opts, bool push);

}  // namespace togo::image
