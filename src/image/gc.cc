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

namespace togo::image {

namespace {

// Deletes `path` (relative to the store) and adds it to the report.
Result<void> remove(store::Store& st, const std::string& path, const std::string& what,
                    GcReport& report) {
  uint64_t size = 0;
  if (auto s = sys::stat_at(st.fd(), path, AT_SYMLINK_NOFOLLOW)) {
    if (S_ISDIR(s->st_mode)) {
      if (auto sub = sys::open_at(st.fd(), path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW))
        if (auto t = fs::tree_size(sub->get())) size = *t;
    } else {
      size = static_cast<uint64_t>(s->st_size);
    }
  }
  TRY(fs::remove_tree(st.fd(), path));
  report.removed.push_back(what);
  report.bytes += size;
  return {};
}

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

  // Files the catalog does not name.
  std::set<std::string> layers;
  for (auto& img : TRY(cat.images()))
    for (auto& l : img.layers) layers.insert(hex_of(l));
  if (auto blobs = sys::open_at(st.fd(), store::kBlobs, O_RDONLY | O_DIRECTORY))
    for (auto& name : fs::list_dir(blobs->get()))
      if (!layers.count(name))
        TRY(remove(st, std::string(store::kBlobs) + "/" + name,
                   "blob " + name.substr(0, 12) + " (no layer names it)", report));
  if (auto dir = sys::open_at(st.fd(), store::kLayers, O_RDONLY | O_DIRECTORY))
    for (auto& name : fs::list_dir(dir->get()))
      if (!layers.count(name))
        TRY(remove(st, std::string(store::kLayers) + "/" + name,
                   "unpacked layer " + name.substr(0, 12) + " (not in the catalog)", report));
  std::set<std::string> envs;
  for (auto& e : TRY(cat.envs())) envs.insert(e.id);
  if (auto dir = sys::open_at(st.fd(), store::kEnvs, O_RDONLY | O_DIRECTORY))
    for (auto& name : fs::list_dir(dir->get()))
      if (!envs.count(name))
        TRY(remove(st, std::string(store::kEnvs) + "/" + name,
                   "environment directory " + name + " (no environment has it)", report));
  // Staging: the writer lock is ours, so nothing is being staged. Partial
  // downloads are written without the lock: those a running pull holds
  // (flock) stay, those of interrupted pulls go.
  if (auto dir = sys::open_at(st.fd(), kDownloadsDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW))
    for (auto& name : fs::list_dir(dir->get())) {
      auto f = sys::open_at(dir->get(), name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      if (f && ::flock(f->get(), LOCK_EX | LOCK_NB) < 0) continue;
      TRY(remove(st, std::string(kDownloadsDir) + "/" + name,
                 "partial download " + name.substr(0, std::min<size_t>(name.find('.'), 12)) +
                     " (of an interrupted pull)", report));
    }
  if (auto dir = sys::open_at(st.fd(), store::kTmp, O_RDONLY | O_DIRECTORY))
    for (auto& name : fs::list_dir(dir->get()))
      if (std::string(store::kTmp) + "/" + name != kDownloadsDir)
        TRY(remove(st, std::string(store::kTmp) + "/" + name, "staging leftover " + name, report));
  return report;
}

}  // namespace togo::image
