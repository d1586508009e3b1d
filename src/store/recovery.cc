#include "store/recovery.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "base/fs.h"
#include "base/sys.h"
#include "store/layout.h"
#include "store/store.h"

namespace togo::store {

namespace {

// Deletes `path` (relative to the store) and adds it to the report.
Result<void> remove(Store& st, const std::string& path, SweptItem item, Swept& out,
                    bool dry_run) {
  uint64_t size = 0;
  if (auto s = sys::stat_at(st.fd(), path, AT_SYMLINK_NOFOLLOW)) {
    if (S_ISDIR(s->st_mode)) {
      if (auto sub = sys::open_at(st.fd(), path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW))
        if (auto t = fs::tree_size(sub->get())) size = *t;
    } else {
      size = static_cast<uint64_t>(s->st_size);
    }
  }
  if (!dry_run) TRY(fs::remove_tree(st.fd(), path));
  out.removed.push_back(std::move(item));
  out.bytes += size;
  return {};
}

std::vector<std::string> names_in(Store& st, const std::string& dir) {
  auto fd = sys::open_at(st.fd(), dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  return fd ? fs::list_dir(fd->get()) : std::vector<std::string>{};
}

std::string short_hex(const std::string& s) { return s.substr(0, 12); }

}  // namespace

Result<Swept> sweep_unnamed(Store& st, bool downloads, bool dry_run) {
  Swept out;
  auto& cat = st.catalog();
  auto unused = TRY(cat.unused_layers());
  if (!unused.empty() && !dry_run)
    TRY(cat.transaction([&]() -> Result<void> {
      for (auto& d : unused) TRY(cat.delete_layer(d));
      return {};
    }));
  // Blobs of every layer stay; trees only of layers recorded as unpacked (a
  // packed layer's tree is an unpacking that did not finish).
  std::set<std::string> layers, trees;
  for (auto& l : TRY(cat.layers())) {
    layers.insert(std::string(digest_hex(l.digest)));
    if (l.unpacked) trees.insert(std::string(digest_hex(l.digest)));
  }
  if (dry_run)
    for (auto& d : unused) {
      layers.erase(std::string(digest_hex(d)));
      trees.erase(std::string(digest_hex(d)));
    }
  for (auto& d : unused) {
    std::string hex(digest_hex(d));
    out.removed.push_back({"layer " + short_hex(hex), "no image uses it"});
  }

  for (auto& name : names_in(st, kBlobs))
    if (!layers.count(name))
      TRY(remove(st, std::string(kBlobs) + "/" + name,
                 {"blob " + short_hex(name), "no layer names it"}, out, dry_run));
  for (auto& name : names_in(st, kLayers))
    if (!trees.count(name))
      TRY(remove(st, std::string(kLayers) + "/" + name,
                 {"unpacked layer " + short_hex(name),
                  layers.count(name) ? "its unpacking did not finish" : "not in the catalog"},
                 out, dry_run));
  std::set<std::string> envs;
  for (auto& e : TRY(cat.envs())) envs.insert(e.id);
  for (auto& name : names_in(st, kEnvs))
    if (!envs.count(name))
      TRY(remove(st, std::string(kEnvs) + "/" + name,
                 {"environment directory " + name, "no environment has it"}, out, dry_run));
  // Partial downloads are written without the writer lock: those a running
  // pull holds (flock) stay.
  if (downloads)
    for (auto& name : names_in(st, kDownloads)) {
      auto f = sys::open_at(st.fd(), std::string(kDownloads) + "/" + name,
                            O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      if (f && ::flock(f->get(), LOCK_EX | LOCK_NB) < 0) continue;
      TRY(remove(st, std::string(kDownloads) + "/" + name,
                 {"partial download " + short_hex(name.substr(0, name.find('.'))),
                  "of an interrupted pull"},
                 out, dry_run));
    }
  for (auto& name : names_in(st, kTmp))
    if (std::string(kTmp) + "/" + name != kDownloads)
      TRY(remove(st, std::string(kTmp) + "/" + name, {"staging directory " + name, "left by an interrupted command"}, out, dry_run));
  return out;
}

}  // namespace togo::store
