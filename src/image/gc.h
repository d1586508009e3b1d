// `togo gc`: removes what no name in the catalog reaches.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "store/store.h"

namespace togo::image {

struct GcReport {
  std::vector<std::string> removed;  // one line per thing removed, for people
  uint64_t bytes = 0;                // what that freed, roughly (file sizes)
};

/// Under the writer lock: forgets images that only their id names and no
/// env uses (what `image rm --force` and re-imports leave), then layers no
/// image names; then deletes files the catalog does not name: blobs,
/// unpacked layers, env directories without an env, and staging leftovers.
/// The catalog forgets first and files go after, so a crash at any point
/// leaves at most garbage for the next run.
Result<GcReport> collect_garbage(store::Store& st);

}  // namespace togo::image
