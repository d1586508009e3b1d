#include "image/unpack_image.h"

#include <algorithm>
#include <map>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "base/parallel.h"
#include "image/oci.h"

namespace togo::image {

Result<void> unpack_image(store::Store& st, const store::ImageRecord& img, const Notice& notice,
                          const std::function<void(size_t)>& on_layer) {
  std::string name = "image " + (img.name == img.id ? img.id.substr(7, 12) : img.name);
  std::vector<std::string> diff_ids;
  if (auto config = oci::parse_config(img.config)) diff_ids = config->diff_ids;
  size_t count = img.layers.size();
  std::map<std::string, store::LayerRecord> rows;  // one query, whatever the number of layers
  for (auto& l : TRY(st.catalog().image_layers(img.id))) rows.emplace(l.digest, l);
  std::vector<store::LayerRecord> todo;
  std::vector<size_t> index;
  std::vector<std::string> whats;
  for (size_t i = 0; i < count; i++) {
    const std::string& digest = img.layers[i];
    std::string what = name + ": layer " + std::to_string(i + 1) + "/" + std::to_string(count) +
                       " (" + digest.substr(0, 19) + ")";
    auto row = rows.find(digest);
    if (row == rows.end()) return error(ErrorKind::kFailed, what + ": missing from the catalog", "run `togo fsck`");
    const store::LayerRecord& rec = row->second;
    // SECURITY: the stored layer is the one the config names; a layer row
    // carries the claim of the image that brought it.
    if (diff_ids.size() == count && !rec.diff_id.empty() && rec.diff_id != diff_ids[i])
      return error(ErrorKind::kBadInput, what + ": the image config gives diff_id " + diff_ids[i] +
                                             ", the stored layer has " + rec.diff_id);
    bool twice = std::any_of(todo.begin(), todo.end(), [&](auto& t) { return t.digest == digest; });
    if (rec.unpacked || twice) continue;
    todo.push_back(rec);
    index.push_back(i);
    whats.push_back(std::move(what));
  }
  if (todo.empty()) return {};

  std::string stage = TRY(st.make_staging_dir());
  auto work = [&]() -> Result<void> {
    std::vector<StagedLayer> staged(todo.size());
    size_t workers = std::max(1u, std::thread::hardware_concurrency());
    TRY(in_parallel(todo.size(), workers, [&](size_t, size_t j) -> Result<void> {
      if (on_layer) on_layer(index[j]);
      staged[j] = TRY(stage_stored_layer(st, stage, static_cast<int>(j), todo[j], whats[j], notice));
      return {};
    }));
    TRY(place_layers(st, stage, staged));
    auto recorded = st.catalog().transaction([&]() -> Result<void> {
      for (auto& l : staged) TRY(st.catalog().put_layer(l.record));
      return {};
    });
    // Nothing records the trees just placed: they go, the blobs stay.
    if (!recorded) discard_placed(st, staged);
    return recorded;
  }();
  (void)fs::remove_tree(st.fd(), stage);
  return work;
}

}  // namespace togo::image
