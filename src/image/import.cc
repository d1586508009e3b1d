#include "image/import.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <memory>

#include "base/fs.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "image/unpack.h"
#include "store/layout.h"

namespace togo::image {

namespace {

// Reads the input for libarchive while keeping a copy of every byte in the
// blob file and feeding the digest: one pass over the data.
struct Tee {
  int in = -1;
  int blob = -1;
  Sha256 hash;
  uint64_t size = 0;
  int err = 0;  // errno of the first failed read or write
  char buf[1 << 20];
};

la_ssize_t tee_read(struct archive*, void* data, const void** out) {
  auto* t = static_cast<Tee*>(data);
  ssize_t n;
  do n = ::read(t->in, t->buf, sizeof t->buf);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    t->err = errno;
    return -1;
  }
  if (n > 0) {
    t->hash.update(t->buf, static_cast<size_t>(n));
    t->size += static_cast<uint64_t>(n);
    if (t->blob >= 0) {
      if (auto r = sys::write_all(t->blob, std::string_view(t->buf, static_cast<size_t>(n)), "blob");
          !r) {
        t->err = r.error().err;
        return -1;
      }
    }
  }
  *out = t->buf;
  return n;
}

using ArchivePtr = std::unique_ptr<struct archive, decltype(&archive_read_free)>;

ArchivePtr new_tar_reader() {
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_xz(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_filter_bzip2(a.get());
  return a;
}

// Reads `in` as a tarball and unpacks it into `root`, copying the raw bytes
// to `blob_fd` (or -1) as they go. Returns the digest and size of the input.
Result<std::pair<std::string, uint64_t>> read_and_unpack(int in, int blob_fd, int root,
                                                         const Notice& notice,
                                                         uint64_t* unpacked) {
  auto tee = std::make_unique<Tee>();
  tee->in = in;
  tee->blob = blob_fd;
  ArchivePtr a = new_tar_reader();
  if (archive_read_open(a.get(), tee.get(), nullptr, tee_read, nullptr) != ARCHIVE_OK) {
    if (tee->err) return sys_error(tee->err, "reading input");
    return error(ErrorKind::kBadInput,
                 std::string("not a tar archive: ") + archive_error_string(a.get()));
  }
  UnpackOptions opts;
  opts.rootless = ::geteuid() != 0;
  opts.warn = notice;
  auto stats = unpack(a.get(), root, opts);
  if (!stats) {
    if (tee->err) return sys_error(tee->err, "reading input");
    return std::unexpected(std::move(stats.error()));
  }
  if (stats->entries == 0)
    return error(ErrorKind::kBadInput, "the archive has no entries");
  // Drain what follows the tar's end so the digest covers the whole input.
  const void* p;
  while (tee_read(a.get(), tee.get(), &p) > 0) {
  }
  if (tee->err) return sys_error(tee->err, "reading input");
  *unpacked = stats->bytes;
  return std::pair{"sha256:" + tee->hash.hex(), tee->size};
}

// True if removing this name would take content away from an env: an env
// uses it and no other name keeps it.
Result<bool> content_in_use(store::Store& st, const store::ImageRecord& img) {
  if (TRY(st.catalog().image_names(img.id)).size() > 1) return false;
  for (auto& e : TRY(st.catalog().envs()))
    if (e.image_id == img.id) return true;
  return false;
}

std::string image_id(const std::vector<std::string>& layers, const std::string& config) {
  std::string text = "config " + config + "\n";
  for (auto& l : layers) text += "layer " + l + "\n";
  return Sha256::digest_of(text);
}

// Makes a staged tree durable: one syncfs flushes every file in it.
Result<void> sync_store(int store_fd) {
  if (::syncfs(store_fd) < 0) return sys_error(errno, "syncing the store's filesystem");
  return {};
}

}  // namespace

Result<store::ImageRecord> import_rootfs(store::Store& st, int input_fd,
                                         const ImportOptions& opts) {
  const std::string& name = opts.name;
  const std::string& source = opts.source;
  const Notice& notice = opts.notice;
  if (!store::valid_name(name))
    return error(ErrorKind::kUsage, "image name '" + name + "' is not valid",
                 "use letters, digits and . _ - : / (e.g. debian:bookworm)");
  auto lock = TRY(st.lock_for_writing("image import " + name));
  std::string stage = TRY(st.make_staging_dir());
  auto work = [&]() -> Result<store::ImageRecord> {
    int s = st.fd();
    Fd blob = TRY(sys::open_at(s, stage + "/blob", O_WRONLY | O_CREAT | O_EXCL, 0444));
    TRY(sys::mkdir_at(s, stage + "/root", 0755));
    Fd root = TRY(sys::open_at(s, stage + "/root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    uint64_t unpacked = 0;
    auto [digest, blob_size] =
        TRY_CTX(read_and_unpack(input_fd, blob.get(), root.get(), notice, &unpacked), source);
    TRY(sys::fsync(blob.get(), "blob"));
    blob.reset();
    root.reset();
    if (opts.before_commit) TRY(opts.before_commit());

    auto known = TRY(st.catalog().find_layer(digest));
    if (!known) {
      TRY(sync_store(s));
      std::string ldir = store::layer_dir(digest);
      TRY(fs::remove_tree(s, ldir));  // leftovers of an import that crashed
      TRY(sys::mkdir_at(s, ldir, 0755));
      TRY(sys::rename_at(s, stage + "/root", s, store::layer_root(digest)));
      TRY(sys::rename_at(s, stage + "/blob", s, store::blob_path(digest)));
      TRY(fs::sync_dir(s, "layers"));
      Fd blobs = TRY(sys::open_at(s, store::kBlobs, O_RDONLY | O_DIRECTORY));
      TRY(fs::sync_dir(blobs.get(), store::kBlobs));
      Fd ld = TRY(sys::open_at(s, ldir, O_RDONLY | O_DIRECTORY));
      TRY(fs::sync_dir(ld.get(), ldir));
    }
    store::ImageRecord img;
    img.name = name;
    img.layers = {digest};
    img.config = "{}";
    img.source = source;
    img.created = static_cast<int64_t>(::time(nullptr));
    img.id = image_id(img.layers, img.config);
    auto old = TRY(st.catalog().find_image(name));
    TRY(st.catalog().transaction([&]() -> Result<void> {
      if (!known) TRY(st.catalog().put_layer({digest, blob_size, unpacked}));
      // The name moves to the new content. Content an env still uses keeps
      // existing, under its id, if this was its only name.
      if (old && old->id != img.id && TRY(content_in_use(st, *old)))
        TRY(st.catalog().rename_image(old->name, old->id));
      return st.catalog().put_image(img);
    }));
    return img;
  }();
  (void)fs::remove_tree(st.fd(), stage);
  if (!work) return work;
  TRY(remove_unused_layers(st));
  return work;
}

Result<void> unpack_blob(store::Store& st, const std::string& digest, int dirfd,
                         const std::string& name, const Notice& notice) {
  Fd in = TRY(sys::open_at(st.fd(), store::blob_path(digest), O_RDONLY));
  TRY(sys::mkdir_at(dirfd, name, 0755));
  Fd root = TRY(sys::open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  uint64_t unpacked = 0;
  auto [got, size] = TRY_CTX(read_and_unpack(in.get(), -1, root.get(), notice, &unpacked),
                             "layer " + digest);
  // SECURITY: a blob is verified against its digest whenever it is read.
  if (got != digest)
    return error(ErrorKind::kBadInput, "layer " + digest + ": blob is damaged (its content hashes to " +
                                           got + ")",
                 "run `togo fsck`");
  (void)size;
  return {};
}

Result<void> remove_image(store::Store& st, const std::string& name) {
  auto lock = TRY(st.lock_for_writing("image rm " + name));
  auto img = TRY(st.catalog().find_image(name));
  if (!img)
    return error(ErrorKind::kNotFound, "image " + name + ": no such image",
                 "`togo image ls` lists the images in this store");
  std::vector<std::string> users;
  if (TRY(content_in_use(st, *img)))
    for (auto& e : TRY(st.catalog().envs()))
      if (e.image_id == img->id) users.push_back(e.name);
  if (!users.empty()) {
    std::string list;
    for (auto& u : users) list += (list.empty() ? "" : ", ") + u;
    return error(ErrorKind::kConflict, "image " + name + ": in use by environment " + list,
                 "remove those environments first (`togo rm NAME`)");
  }
  TRY(st.catalog().transaction([&] { return st.catalog().delete_image_name(img->name); }));
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
