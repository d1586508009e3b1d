#include "image/import.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <memory>
#include <optional>
#include <vector>

#include "base/fs.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "image/oci.h"
#include "store/layout.h"

namespace togo::image {

namespace {

// True if removing this name would take content away from an env: an env
// uses it and no other name keeps it.
Result<bool> content_in_use(store::Store& st, const store::ImageRecord& img) {
  if (TRY(st.catalog().image_names(img.id)).size() > 1) return false;
  for (auto& e : TRY(st.catalog().envs()))
    if (e.image_id == img.id) return true;
  return false;
}

// The stored layer whose blob is the regular file `fd`, if there is one.
// Reads with pread, so the file's offset is left where it was.
Result<std::optional<store::LayerRecord>> known_layer_of_file(store::Store& st, int fd) {
  struct stat sb;
  if (::fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) return std::nullopt;
  // No stored blob has this size: it is new, and hashing it would only read
  // it twice.
  bool size_known = false;
  for (auto& l : TRY(st.catalog().layers()))
    if (l.blob_size == static_cast<uint64_t>(sb.st_size)) size_known = true;
  if (!size_known) return std::nullopt;
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  for (off_t off = 0;;) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(errno, "reading");
    if (n == 0) break;
    hash.update(buf.data(), static_cast<size_t>(n));
    off += n;
  }
  auto rec = TRY(st.catalog().find_known_layer("sha256:" + hash.hex()));
  // Layers from before diff_ids were recorded are read again for theirs.
  if (rec && rec->diff_id.empty()) return std::nullopt;
  return rec;
}

}  // namespace

Result<store::ImageRecord> commit_image(store::Store& st, const std::string& stage,
                                        const NewImage& image, const ImportOptions& opts) {
  if (opts.before_commit) TRY(opts.before_commit());
  store::ImageRecord img;
  img.name = opts.name;
  img.config = image.config;
  img.source = opts.source;
  img.created = static_cast<int64_t>(::time(nullptr));
  // As in Docker and Podman, an image's id is the digest of its config,
  // which names every layer by its diff_id.
  img.id = Sha256::digest_of(image.config);
  // The same image again, maybe with its layers compressed differently (a
  // docker archive of a pulled image): the content is the same, so the
  // layers already stored stay, and envs running on them keep them.
  auto same = TRY(st.catalog().find_image(img.id));
  bool new_content = !same || same->id != img.id;
  // Unless `togo fsck` marked some of them damaged: this content replaces them.
  if (same)
    for (auto& d : same->layers) new_content = new_content || !TRY(st.catalog().find_known_layer(d));
  auto old = TRY(st.catalog().find_image(img.name));
  if (new_content) {
    TRY(place_layers(st, stage, image.layers));
    for (auto& l : image.layers) img.layers.push_back(l.record.digest);
  } else {
    img.layers = same->layers;
  }
  auto named = st.catalog().transaction([&]() -> Result<void> {
    if (new_content)
      for (auto& l : image.layers)
        if (!l.known) {
          TRY(st.catalog().put_layer(l.record));
          TRY(st.catalog().clear_layer_damaged(l.record.digest));
        }
    // The name moves to the new content. Content an env still uses keeps
    // existing, under its id, if this was its only name.
    if (old && old->id != img.id && TRY(content_in_use(st, *old)))
      TRY(st.catalog().rename_image(old->name, old->id));
    return st.catalog().put_image(img);
  });
  if (!named) {
    // Nothing names the layers just placed: they go, as if never imported.
    if (new_content) discard_placed(st, image.layers);
    return std::unexpected(std::move(named.error()));
  }
  return img;
}

Result<store::ImageRecord> import_rootfs(store::Store& st, int input_fd,
                                         const ImportOptions& opts) {
  TRY(check_image_name(opts.name));
  auto lock = TRY(st.lock_for_writing("image import " + opts.name));
  std::string stage = TRY(st.make_staging_dir());
  auto work = [&]() -> Result<store::ImageRecord> {
    NewImage image;
    // A file the store already holds is recognised by its digest alone: one
    // read instead of unpacking it all again to learn that.
    if (auto known = TRY(known_layer_of_file(st, input_fd)))
      image.layers.push_back({*known, true});
    else
      image.layers.push_back(TRY(stage_layer(st, stage, 0, input_fd, {.what = opts.source},
                                             opts.notice, {}, opts.head)));
    image.config = rootfs_config({image.layers[0].record.diff_id});
    return commit_image(st, stage, image, opts);
  }();
  (void)fs::remove_tree(st.fd(), stage);
  if (!work) return work;
  TRY(remove_unused_layers(st));
  return work;
}

Result<void> check_image_name(const std::string& name) {
  if (!store::valid_name(name))
    return error(ErrorKind::kUsage, "image name '" + name + "' is not valid",
                 "use letters, digits and . _ - : / (e.g. debian:bookworm)");
  return {};
}

std::string rootfs_config(const std::vector<std::string>& diff_ids) {
  oci::ImageConfig config;
  oci::Platform host = oci::host_platform();
  config.os = host.os;
  config.architecture = host.architecture;
  config.variant = host.variant;
  config.diff_ids = diff_ids;
  return oci::to_json(config);
}

Result<void> remove_image(store::Store& st, const std::string& name, bool force,
                          const Notice& notice) {
  auto lock = TRY(st.lock_for_writing("image rm " + name));
  auto img = TRY(st.catalog().find_image(name));
  if (!img)
    return error(ErrorKind::kNotFound, "image " + name + ": no such image",
                 "`togo image ls` lists the images in this store");
  std::vector<std::string> users;  // envs that would lose their image's content
  if (TRY(st.catalog().image_names(img->id)).size() == 1)
    for (auto& e : TRY(st.catalog().envs()))
      if (e.image_id == img->id) users.push_back(e.name);
  std::string list;
  for (auto& u : users) list += (list.empty() ? "" : ", ") + u;
  if (!users.empty() && !force)
    return error(ErrorKind::kConflict, "image " + name + ": in use by environment " + list,
                 "remove those environments first (`togo rm NAME`), or `--force` to drop "
                 "only the name");
  TRY(st.catalog().transaction([&]() -> Result<void> {
    // Forced: the name goes, the content stays under its id for as long as
    // an env uses it.
    if (!users.empty()) return st.catalog().rename_image(img->name, img->id);
    return st.catalog().delete_image_name(img->name);
  }));
  if (!users.empty() && notice)
    notice("warning: image " + name + " is still used by environment " + list +
           "; its layers stay, as " + img->id.substr(7, 12) + ", until " +
           (users.size() > 1 ? "they are" : "it is") + " removed");
  return remove_unused_layers(st);
}

Result<void> remove_unused_layers(store::Store& st) {
  auto unused = TRY(st.catalog().unused_layers());
  if (unused.empty()) return {};
  TRY(st.catalog().transaction([&]() -> Result<void> {
    for (auto& d : unused) TRY(st.catalog().delete_layer(d));
    return {};
  }));
  // The catalog no longer names them: a crash from here on leaves garbage
  // that the next removal or `togo gc` clears, never a dangling reference.
  for (auto& d : unused) {
    TRY(fs::remove_tree(st.fd(), store::layer_dir(d)));
    TRY(fs::remove_tree(st.fd(), store::blob_path(d)));
  }
  return {};
}

}  // namespace togo::image
