// Finishing or rolling back what an interrupted command left. Every change
// to the store's structure is made under the writer lock, with the data
// durable before the catalog names it and the catalog forgetting before the
// data goes; so whatever a crash leaves behind is exactly what the catalog
// does not name, and removing it rolls an unfinished import or create back
// and finishes an unfinished removal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace togo::store {

class Store;

/// One thing a sweep removed, in words for people.
struct SweptItem {
  std::string what;  // "blob 0123456789ab", "staging directory stage-1-abc"
  std::string why;   // "no layer names it"
  /// "<what> (<why>)".
  std::string line() const { return what + " (" + why + ")"; }
};

/// What a sweep removed, and how many bytes.
struct Swept {
  std::vector<SweptItem> removed;
  uint64_t bytes = 0;
};

/// Removes what the catalog does not name: layer rows no image uses, blobs
/// of no layer row, unpacked layers of no layer row recorded as unpacked
/// (a packed one's tree is an unfinished unpacking), environment directories of no
/// environment, and staging under tmp/. Partial downloads are kept (a pull
/// resumes from them) unless `downloads`, and then only those no running
/// pull holds. With `dry_run`, only says what it would remove. The caller
/// holds the writer lock.
Result<Swept> sweep_unnamed(Store& st, bool downloads, bool dry_run = false);

}  // namespace togo::store
