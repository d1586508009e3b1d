// `togo fsck`: proves the store whole, or says what is not, and repairs what
// can be rebuilt.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "store/store.h"

namespace togo::image {

/// One thing fsck found, in words for people.
struct Finding {
  enum class Kind {
    kDamage,    // content that is not what was recorded, or is missing
    kLeftover,  // garbage nothing names (removed by --repair)
  };
  Kind kind = Kind::kDamage;
  std::string object;   // "catalog", "blob sha256:<hex>", "layer sha256:<hex>", "environment dev"
  std::string problem;  // what is wrong
  std::string outcome;  // with --repair: what was done ("rebuilt from its blob", "marked damaged")
  bool fixed = false;   // repaired: the object is whole again (or the garbage gone)
};

struct FsckReport {
  std::vector<Finding> findings;
  uint64_t pages = 0, blobs = 0, layers = 0, envs = 0;  // how much was checked
  uint64_t packed = 0;  // of the layers, those stored as their blob alone (image pull)
  /// True if something is still damaged (found without --repair, or not
  /// repairable).
  bool damaged() const;
};

/// Checks the catalog file page by page against the checksums kept in each
/// page, without SQLite, so a catalog too damaged to open is still
/// reported. With `repair`, free pages (which hold no data) are resealed.
/// `store_fd` is the store directory. Adds to `report`.
Result<void> check_catalog_pages(int store_fd, bool repair, FsckReport& report);

/// Checks blobs against the digests that name them, without the catalog:
/// what can be said of a store whose catalog cannot be read.
Result<void> check_blob_names(int store_fd, FsckReport& report);

/// The whole check, under the writer lock (taken here; its automatic
/// recovery runs first): the catalog's structure and references, every
/// blob against its digest and size, every unpacked layer against its
/// recorded listing (a packed one has only its blob), every environment's
/// directory, and leftovers. With
/// `repair`: rebuilds unpacked layers from their blobs, rewrites lost
/// listings, removes garbage, and marks in the catalog what cannot be
/// rebuilt. Blobs are checked here, not by check_blob_names.
Result<FsckReport> fsck(store::Store& st, bool repair);

}  // namespace togo::image
