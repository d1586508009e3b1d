#include "image/fsck.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <optional>
#include <set>

#include "base/fs.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "image/layer_store.h"
#include "store/envs.h"
#include "store/layout.h"
#include "store/page_check.h"
#include "store/recovery.h"
#include "store/tree_listing.h"

namespace togo::image {

bool FsckReport::damaged() const {
  for (auto& f : findings)
    if (f.kind == Finding::Kind::kDamage && !f.fixed) return true;
  return false;
}

namespace {

using Kind = Finding::Kind;

uint32_t be32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

// Free-list leaf pages hold no data: damage there is harmless, and they can
// be resealed. Trunk pages hold the list itself and are not free to reseal.
std::set<uint32_t> free_leaf_pages(const std::string& db, uint32_t page_size) {
  std::set<uint32_t> out, seen;
  auto p = reinterpret_cast<const unsigned char*>(db.data());
  uint32_t pages = static_cast<uint32_t>(db.size() / page_size);
  for (uint32_t trunk = be32(p + 32); trunk && trunk <= pages && seen.insert(trunk).second;) {
    if (!store::page_checksum_ok(p + (trunk - 1) * static_cast<size_t>(page_size), page_size)) break;
    const unsigned char* t = p + (trunk - 1) * static_cast<size_t>(page_size);
    uint32_t n = be32(t + 4);
    for (uint32_t i = 0; i < n && 8 + 4 * (i + 1) <= page_size; i++) out.insert(be32(t + 8 + 4 * i));
    trunk = be32(t);
  }
  return out;
}

// "a, b" of the names of images that use a layer.
std::string users_of(const std::map<std::string, std::vector<std::string>>& users,
                     const std::string& layer) {
  auto it = users.find(layer);
  if (it == users.end()) return "no image";
  std::string s;
  for (auto& n : it->second) s += (s.empty() ? "" : ", ") + n;
  return (it->second.size() > 1 ? "images " : "image ") + s;
}

class Checker {
 public:
  Checker(store::Store& st, bool repair, FsckReport& r) : st_(st), repair_(repair), r_(r) {}

  Result<void> run() {
    auto& cat = st_.catalog();
    // The log written back first, so the file alone holds every commit.
    (void)cat.checkpoint();  // fails on a damaged catalog, which the next check names
    size_t before = r_.findings.size();
    TRY(check_catalog_pages(st_.fd(), repair_, r_));
    if (r_.findings.size() > before && !r_.findings.back().fixed) {
      // Nothing the catalog says can be trusted: check what needs no catalog.
      return check_blob_names(st_.fd(), r_);
    }
    if (std::string bad = TRY(cat.integrity_check()); !bad.empty())
      add(Kind::kDamage, "catalog", bad);
    for (auto& img : TRY(cat.images()))
      for (auto& l : img.layers) users_[l].push_back(img.name);
    for (auto& l : TRY(cat.layers())) TRY(check_layer(l));
    TRY(check_envs());
    store::Swept left = TRY(store::sweep_unnamed(st_, true, !repair_));
    for (auto& item : left.removed) {
      add(Kind::kLeftover, item.what, item.why);
      if (repair_) done("removed", true);
    }
    if (repair_) TRY(record_marks());
    return {};
  }

 private:
  void add(Kind k, std::string object, std::string problem) {
    r_.findings.push_back({k, std::move(object), std::move(problem), "", false});
  }
  void done(std::string outcome, bool fixed) {
    r_.findings.back().outcome = std::move(outcome);
    r_.findings.back().fixed = fixed;
  }

  Result<bool> check_blob(const store::LayerRecord& l, const std::string& obj) {
    bool ok = TRY(blob_intact(l, obj));
    // A blob is the image's own bytes: nothing in the store can make it again.
    if (!ok && repair_) done("marked damaged: pull or import " + users_of(users_, l.digest) + " again", false);
    return ok;
  }

  Result<bool> blob_intact(const store::LayerRecord& l, const std::string& obj) {
    r_.blobs++;
    auto fd = sys::open_at(st_.fd(), store::blob_path(l.digest), O_RDONLY | O_NOFOLLOW);
    if (!fd) {
      add(Kind::kDamage, obj, "missing (" + fd.error().message + "); used by " + users_of(users_, l.digest));
      return false;
    }
    uint64_t size = 0;
    std::string got = TRY(Sha256::digest_of_fd(fd->get(), size, obj));
    if (size != l.blob_size || got != l.digest) {
      add(Kind::kDamage, obj,
          "damaged: " + std::to_string(size) + " bytes hashing to " + got.substr(0, 19) +
              "..., recorded " + std::to_string(l.blob_size) + " bytes; used by " +
              users_of(users_, l.digest));
      return false;
    }
    return true;
  }

  // The listing of the unpacked tree, or why there is none.
  Result<std::optional<std::string>> listing_of(const std::string& digest, std::string& why) {
    auto root = sys::open_at(st_.fd(), store::layer_root(digest), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!root) {
      why = "its unpacked files are missing";
      return std::nullopt;
    }
    auto listing = store::list_tree(root->get());
    if (!listing) {
      why = "its unpacked files cannot be read (" + listing.error().message + ")";
      return std::nullopt;
    }
    return *listing;
  }

  Result<void> check_layer(const store::LayerRecord& l) {
    r_.layers++;
    std::string hex(store::digest_hex(l.digest));
    bool blob_ok = TRY(check_blob(l, "blob " + l.digest));
    // A packed layer is its blob alone: no tree to check, nor to rebuild
    // before something needs it (a tree left there is a leftover).
    if (!l.unpacked) {
      r_.packed++;
      return {};
    }
    std::string obj = "layer " + l.digest;
    std::string why;
    auto found = TRY(listing_of(l.digest, why));
    auto recorded = fs::read_file(st_.fd(), store::layer_files(l.digest));
    bool recorded_ok = recorded && !l.tree.empty() && Sha256::digest_of(*recorded) == l.tree;
    if (found && l.tree.empty()) {
      // Unpacked by a togo that kept no listing: nothing to check against.
      if (repair_) TRY(record_listing(l, *found));
      return {};
    }
    if (found && Sha256::digest_of(*found) == l.tree) {
      if (!recorded_ok) {
        add(Kind::kDamage, obj, "its recorded listing (" + store::layer_files(l.digest) +
                                    ") is missing or damaged; the files themselves are intact");
        if (repair_) {
          TRY(write_listing(l.digest, *found));
          done("listing rewritten", true);
        }
      }
      return {};
    }
    if (found) {
      why = "its unpacked files are not what was unpacked";
      if (recorded_ok) {
        auto diff = store::listing_differences(*recorded, *found, 5);
        why += ": ";
        for (size_t i = 0; i < diff.size(); i++) why += (i ? ", " : "") + diff[i];
      }
    }
    add(Kind::kDamage, obj, why + "; used by " + users_of(users_, l.digest));
    if (!repair_) return {};
    if (!blob_ok) {
      done("cannot be rebuilt: its blob is damaged too; import or pull " +
               users_of(users_, l.digest) + " again",
           false);
      return {};
    }
    if (std::string busy = TRY(running_users(l.digest)); !busy.empty()) {
      done("not rebuilt: environment " + busy + " is running on it; stop it and repair again", false);
      return {};
    }
    TRY_CTX(rebuild(l), obj);
    done("rebuilt from its blob", true);
    return {};
  }

  // Running envs whose image has the layer, by name.
  Result<std::string> running_users(const std::string& digest) {
    std::string out;
    for (auto& e : TRY(st_.catalog().envs())) {
      auto img = TRY(st_.catalog().find_image(e.image_id));
      if (!img || std::find(img->layers.begin(), img->layers.end(), digest) == img->layers.end())
        continue;
      auto lock = store::try_lock_env(st_, e);
      if (lock && lock->get() < 0) out += (out.empty() ? "" : ", ") + e.name;
    }
    return out;
  }

  Result<void> write_listing(const std::string& digest, const std::string& listing) {
    Fd dir = TRY(sys::open_at(st_.fd(), store::layer_dir(digest), O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    return fs::write_file_atomic(dir.get(), "files", listing, 0444);
  }

  Result<void> record_listing(const store::LayerRecord& l, const std::string& listing) {
    TRY(write_listing(l.digest, listing));
    store::LayerRecord n = l;
    n.tree = Sha256::digest_of(listing);
    return st_.catalog().transaction([&] { return st_.catalog().put_layer(n); });
  }

  // Unpacks the blob again and puts the tree in place of the damaged one
  // as unpacking a packed layer does (durable first, every rename synced on
  // both sides), then records the new tree's listing.
  Result<void> rebuild(const store::LayerRecord& l) {
    std::string stage = TRY(st_.make_staging_dir());
    auto work = [&]() -> Result<void> {
      // The blob was held to the limits when it came in: none again.
      std::vector<StagedLayer> staged = {
          TRY(stage_stored_layer(st_, stage, 0, l, "unpacking its blob", {}, LayerLimits::none()))};
      TRY(place_layers(st_, stage, staged));
      return st_.catalog().transaction([&] { return st_.catalog().put_layer(staged[0].record); });
    }();
    (void)fs::remove_tree(st_.fd(), stage);
    return work;
  }

  Result<void> check_envs() {
    for (auto& e : TRY(st_.catalog().envs())) {
      r_.envs++;
      std::string obj = "environment " + e.name;
      auto p = store::env_paths(e.id);
      std::vector<std::string> need = {p.dir};
      if (e.rootfs == "copy") need.push_back(p.rootfs);
      else need.insert(need.end(), {p.upper, p.work});
      for (auto& d : need)
        if (!sys::stat_at(st_.fd(), d, AT_SYMLINK_NOFOLLOW)) {
          add(Kind::kDamage, obj, d + " is missing: what it wrote is lost");
          break;
        }
      if (!TRY(st_.catalog().find_image(e.image_id)))
        add(Kind::kDamage, obj, "its image " + e.image_id.substr(0, 19) + "... is not in the catalog");
    }
    return {};
  }

  // What stays damaged is marked in the catalog; what is whole again is not.
  Result<void> record_marks() {
    auto& cat = st_.catalog();
    std::set<std::string> still;
    for (auto& f : r_.findings)
      if (f.kind == Kind::kDamage && !f.fixed && f.object != "catalog") still.insert(f.object);
    std::map<std::string, std::string> why;
    for (auto& f : r_.findings) why[f.object] = f.problem;
    return cat.transaction([&]() -> Result<void> {
      for (auto& [obj, reason] : TRY(cat.damaged()))
        if (!still.count(obj)) TRY(cat.clear_damaged(obj));
      for (auto& obj : still) TRY(cat.mark_damaged(obj, why[obj], ::time(nullptr)));
      return {};
    });
  }

  store::Store& st_;
  bool repair_;
  FsckReport& r_;
  std::map<std::string, std::vector<std::string>> users_;
};

}  // namespace

Result<void> check_catalog_pages(int store_fd, bool repair, FsckReport& report) {
  auto fd = sys::open_at(store_fd, store::kCatalog, (repair ? O_RDWR : O_RDONLY) | O_NOFOLLOW);
  if (!fd) {
    report.findings.push_back({Kind::kDamage, "catalog", store::kCatalog + std::string(" cannot be opened: ") + fd.error().message, "", false});
    return {};
  }
  std::string db = TRY_CTX(sys::read_all(fd->get(), store::kCatalog), "checking the catalog");
  auto g = store::page_geometry(reinterpret_cast<const unsigned char*>(db.data()), db.size());
  if (!g.page_size) {
    report.findings.push_back({Kind::kDamage, "catalog", "its header is damaged (not an SQLite database)", "", false});
    return {};
  }
  if (g.reserved != store::kPageCheckBytes) return {};  // made before page checksums: opened, it gets them
  uint32_t pages = static_cast<uint32_t>(db.size() / g.page_size);
  report.pages += pages;
  std::vector<uint32_t> bad;
  auto p = reinterpret_cast<unsigned char*>(db.data());
  for (uint32_t i = 0; i < pages; i++)
    if (!store::page_checksum_ok(p + static_cast<size_t>(i) * g.page_size, g.page_size)) bad.push_back(i + 1);
  if (bad.empty()) return {};
  auto free_pages = free_leaf_pages(db, g.page_size);
  bool all_free = std::all_of(bad.begin(), bad.end(), [&](uint32_t n) { return free_pages.count(n); });
  std::string list;
  for (size_t i = 0; i < bad.size() && i < 8; i++) list += (i ? ", " : "") + std::to_string(bad[i]);
  if (bad.size() > 8) list += ", ...";
  report.findings.push_back({Kind::kDamage, "catalog",
                             std::to_string(bad.size()) + " page(s) damaged (page " + list + ")" +
                                 (all_free ? ", all of them free pages that hold no data" : ""),
                             "", false});
  if (!repair) return {};
  if (!all_free) {
    report.findings.back().outcome =
        "cannot be repaired: those pages hold data; restore " + std::string(store::kCatalog) +
        " from a copy of the store";
    return {};
  }
  for (uint32_t n : bad) {
    unsigned char* page = p + static_cast<size_t>(n - 1) * g.page_size;
    store::seal_page(page, g.page_size);
    if (::pwrite(fd->get(), page, g.page_size, static_cast<off_t>(n - 1) * g.page_size) !=
        static_cast<ssize_t>(g.page_size))
      return sys_error(errno, "rewriting catalog page " + std::to_string(n));
  }
  TRY(sys::fsync(fd->get(), store::kCatalog));
  report.findings.back().outcome = "free pages resealed";
  report.findings.back().fixed = true;
  return {};
}

Result<void> check_blob_names(int store_fd, FsckReport& report) {
  auto dir = sys::open_at(store_fd, store::kBlobs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!dir) return {};
  for (auto& name : fs::list_dir(dir->get())) {
    if (!is_sha256_hex(name)) continue;
    report.blobs++;
    auto fd = sys::open_at(dir->get(), name, O_RDONLY | O_NOFOLLOW);
    if (!fd) continue;
    uint64_t size = 0;
    std::string got = TRY(Sha256::digest_of_fd(fd->get(), size, "blob " + name));
    if (got != "sha256:" + name)
      report.findings.push_back({Kind::kDamage, "blob sha256:" + name,
                                 "damaged: its content hashes to " + got.substr(0, 19) + "...",
                                 "", false});
  }
  return {};
}

Result<FsckReport> fsck(store::Store& st, bool repair) {
  auto lock = TRY(st.lock_for_writing(repair ? "fsck --repair" : "fsck"));
  FsckReport r;
  TRY(Checker(st, repair, r).run());
  return r;
}

}  // namespace togo::image
