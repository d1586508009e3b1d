#include "image/gc.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "base/fs.h"
#include "base/sys.h"
#include "image/import.h"
#include "image/pull.h"
#include "store/layout.h"
#include "store/recovery.h"

namespace togo::image {

namespace {

std::string hex_of(const std::string& digest) { return std::string(store::digest_hex(digest)); }

}  // namespace

Result<GcReport> collect_garbage(store::Store& st) {
  auto lock = TRY(st.lock_for_writing("gc"));
  GcReport report;
  auto& cat = st.catalog();

  // Content only its id names, that no env uses.
  std::set<std::string> used;
  for (auto& e : TRY(cat.envs())) used.insert(e.image_id);
  std::vector<std::string> nameless;
  for (auto& img : TRY(cat.images()))
    if (img.name == img.id && !used.count(img.id)) nameless.push_back(img.id);
  if (!nameless.empty())
    TRY(cat.transaction([&]() -> Result<void> {
      for (auto& id : nameless) TRY(cat.delete_image_name(id));
      return {};
    }));
  for (auto& id : nameless)
    report.removed.push_back("image " + id.substr(7, 12) + " (no name, no environment)");
  std::set<std::string> unused;
  for (auto& d : TRY(cat.unused_layers())) unused.insert(d);
  for (auto& rec : TRY(cat.layers()))
    if (unused.count(rec.digest)) {
      report.removed.push_back("layer " + hex_of(rec.digest).substr(0, 12));
      report.bytes += rec.size + rec.blob_size;
    }
  TRY(remove_unused_layers(st));
  // Then whatever the catalog does not name, stale partial downloads too.
  store::Swept swept = TRY(store::sweep_unnamed(st, true));
  for (auto& item : swept.removed) report.removed.push_back(item.line());
  report.bytes += swept.bytes;
  return report;
}

}  // namespace togo::image
