#include "image/layer_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "base/fs.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "image/oci.h"
#include "image/unpack.h"
#include "store/layout.h"
#include "store/tree_listing.h"

namespace togo::image {

namespace {

using ArchivePtr = std::unique_ptr<struct archive, decltype(&archive_read_free)>;

// The blob as it is read: every byte copied to the blob file (if any) and
// hashed. libarchive's decompressor pulls from here.
struct BlobReader {
  int in = -1;
  std::string_view head;  // bytes already taken from `in`, which come first
  int copy = -1;
  Sha256 hash;
  uint64_t size = 0;
  int err = 0;  // errno of the first failed read or write
  char buf[1 << 20];
};

la_ssize_t blob_read(struct archive*, void* data, const void** out) {
  auto* b = static_cast<BlobReader*>(data);
  ssize_t n;
  if (!b->head.empty()) {
    n = static_cast<ssize_t>(std::min(b->head.size(), sizeof b->buf));
    std::memcpy(b->buf, b->head.data(), static_cast<size_t>(n));
    b->head.remove_prefix(static_cast<size_t>(n));
  } else {
    do n = ::read(b->in, b->buf, sizeof b->buf);
    while (n < 0 && errno == EINTR);
  }
  if (n < 0) {
    b->err = errno;
    return -1;
  }
  if (n > 0) {
    b->hash.update(b->buf, static_cast<size_t>(n));
    b->size += static_cast<uint64_t>(n);
    if (b->copy >= 0) {
      auto r = sys::write_all(b->copy, std::string_view(b->buf, static_cast<size_t>(n)), "blob");
      if (!r) {
        b->err = r.error().err;
        return -1;
      }
    }
  }
  *out = b->buf;
  return n;
}

// The uncompressed tar stream: what the decompressing reader yields, hashed
// for the diff_id and held to the limits before the tar reader sees it.
struct TarReader {
  struct archive* raw = nullptr;
  BlobReader* blob = nullptr;
  LayerLimits limits;
  Sha256 hash;
  uint64_t size = 0;
  std::string failure;  // why the stream stopped, when it was not the data's end
};

la_ssize_t tar_read(struct archive*, void* data, const void** out) {
  auto* t = static_cast<TarReader*>(data);
  size_t n = 0;
  la_int64_t offset = 0;
  int rc = archive_read_data_block(t->raw, out, &n, &offset);
  if (rc == ARCHIVE_EOF) return 0;
  if (rc < ARCHIVE_WARN) {
    const char* why = archive_error_string(t->raw);
    t->failure = std::string("decompressing: ") + (why ? why : "damaged data");
    return -1;
  }
  t->hash.update(*out, n);
  t->size += n;
  const uint64_t kFree = 256ull << 20;
  if (t->size > t->limits.max_bytes ||
      (t->size > kFree && t->size / t->limits.max_ratio > t->blob->size)) {
    t->failure = "expands to more than " +
                 std::to_string(t->size > t->limits.max_bytes ? t->limits.max_bytes >> 20
                                                              : t->size >> 20) +
                 " MiB (" + (t->size > t->limits.max_bytes
                                 ? std::string("the limit per layer")
                                 : std::to_string(t->limits.max_ratio) +
                                       " times its compressed size") +
                 "): refusing a decompression bomb";
    return -1;
  }
  return static_cast<la_ssize_t>(n);
}

std::string media_type_for(int filter) {
  switch (filter) {
    case ARCHIVE_FILTER_NONE: return std::string(oci::kMediaTypeLayer);
    case ARCHIVE_FILTER_GZIP: return std::string(oci::kMediaTypeLayerGzip);
    case ARCHIVE_FILTER_ZSTD: return std::string(oci::kMediaTypeLayerZstd);
    default: return "";  // xz, bzip2: no OCI media type; export recompresses
  }
}

struct ReadResult {
  std::string digest;      // of the blob
  uint64_t blob_size = 0;
  std::string diff_id;     // of the uncompressed tar
  std::string media_type;
  uint64_t unpacked = 0;   // bytes of regular files
};

// Reads a layer blob from `in` (copying it to `copy` if >= 0) and unpacks
// it into `root`.
Result<ReadResult> read_layer(int in, std::string_view head, int copy, int root,
                              WhiteoutMode whiteouts, const Notice& notice,
                              const LayerLimits& limits) {
  auto blob = std::make_unique<BlobReader>();
  blob->in = in;
  blob->head = head;
  blob->copy = copy;
  ArchivePtr raw(archive_read_new(), archive_read_free);
  archive_read_support_filter_gzip(raw.get());
  archive_read_support_filter_zstd(raw.get());
  archive_read_support_filter_xz(raw.get());
  archive_read_support_filter_bzip2(raw.get());
  archive_read_support_format_raw(raw.get());
  if (archive_read_open(raw.get(), blob.get(), nullptr, blob_read, nullptr) != ARCHIVE_OK) {
    if (blob->err) return sys_error(blob->err, "reading");
    return error(ErrorKind::kBadInput,
                 std::string("not a layer: ") + archive_error_string(raw.get()));
  }
  struct archive_entry* entry = nullptr;
  if (archive_read_next_header(raw.get(), &entry) != ARCHIVE_OK) {
    if (blob->err) return sys_error(blob->err, "reading");
    return error(ErrorKind::kBadInput, "not a layer: the input is empty");
  }
  TarReader tar;
  tar.raw = raw.get();
  tar.blob = blob.get();
  tar.limits = limits;
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  auto failed = [&](Error e) -> std::unexpected<Error> {
    if (blob->err) return sys_error(blob->err, "reading");
    if (!tar.failure.empty()) return error(ErrorKind::kBadInput, tar.failure);
    return std::unexpected(std::move(e));
  };
  if (archive_read_open(a.get(), &tar, nullptr, tar_read, nullptr) != ARCHIVE_OK)
    return failed(Error{0, ErrorKind::kBadInput,
                        std::string("not a tar archive: ") + archive_error_string(a.get())});
  UnpackOptions opts;
  opts.rootless = ::geteuid() != 0;
  opts.warn = notice;
  opts.whiteouts = whiteouts;
  opts.max_entries = limits.max_entries;
  auto stats = unpack(a.get(), root, opts);
  if (!stats) return failed(std::move(stats.error()));
  if (stats->entries == 0 && tar.size == 0)
    return error(ErrorKind::kBadInput, "the layer is empty (not even a tar end marker)");
  // Drain what follows the tar's end so both digests cover everything.
  const void* p;
  la_ssize_t n;
  while ((n = tar_read(nullptr, &tar, &p)) > 0) {
  }
  if (n < 0) return failed(Error{0, ErrorKind::kBadInput, tar.failure});
  while ((n = blob_read(nullptr, blob.get(), &p)) > 0) {
  }
  if (blob->err) return sys_error(blob->err, "reading");
  ReadResult r;
  r.digest = "sha256:" + blob->hash.hex();
  r.blob_size = blob->size;
  r.diff_id = "sha256:" + tar.hash.hex();
  r.media_type = media_type_for(archive_filter_code(raw.get(), 0));
  r.unpacked = stats->bytes;
  return r;
}

// SECURITY: the uncompressed content is what the image config says (when
// it says anything), or nothing is kept.
Result<void> check_diff_id(const ReadResult& r, const std::string& want, const std::string& what) {
  if (want.empty() || r.diff_id == want) return {};
  return error(ErrorKind::kBadInput,
               what + ": uncompressed content hashes to " + r.diff_id + ", the image config says " + want);
}

// Records what stage/<n>.root (`root`) holds as stage/<n>.files, so that
// `togo fsck` can check the tree; returns the listing's digest, the
// layer's `tree`. `base` is stage/<n>.
Result<std::string> stage_listing(int s, const std::string& base, int root, const std::string& what) {
  std::string listing = TRY_CTX(store::list_tree(root), what + ": listing the unpacked tree");
  Fd f = TRY(sys::open_at(s, base + ".files", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0444));
  TRY(sys::write_all(f.get(), listing, "layer listing"));
  return Sha256::digest_of(listing);
}

}  // namespace

Result<StagedLayer> stage_layer(store::Store& st, const std::string& stage, int n, int in,
                                const LayerExpect& expect, const Notice& notice,
                                const LayerLimits& limits, std::string_view head) {
  int s = st.fd();
  std::string base = stage + "/" + std::to_string(n);
  Fd blob = TRY(sys::open_at(s, base + ".blob", O_WRONLY | O_CREAT | O_EXCL, 0444));
  TRY(sys::mkdir_at(s, base + ".root", 0755));
  Fd root = TRY(sys::open_at(s, base + ".root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  ReadResult r = TRY_CTX(read_layer(in, head, blob.get(), root.get(), WhiteoutMode::kOverlay, notice, limits),
                         expect.what);
  // SECURITY: the content is what the manifest named, or nothing is kept.
  if (expect.size >= 0 && r.blob_size != static_cast<uint64_t>(expect.size))
    return error(ErrorKind::kBadInput,
                 expect.what + ": blob is " + std::to_string(r.blob_size) + " bytes, " +
                     std::to_string(expect.size) + " expected (truncated or wrong)");
  if (!expect.digest.empty() && r.digest != expect.digest)
    return error(ErrorKind::kBadInput,
                 expect.what + ": digest mismatch: the blob hashes to " + r.digest + ", not " +
                     expect.digest);
  TRY(check_diff_id(r, expect.diff_id, expect.what));
  std::string tree = TRY(stage_listing(s, base, root.get(), expect.what));
  StagedLayer out;
  out.record = {r.digest, r.blob_size, r.unpacked, r.diff_id, r.media_type, tree, true};
  // A stored layer `togo fsck` marked damaged is not known: it is replaced,
  // blob and tree.
  auto known = TRY(st.catalog().find_known_layer(r.digest));
  out.known = known && known->unpacked;
  out.blob_placed = known.has_value();  // packed: the same blob is stored already
  return out;
}

Result<StagedLayer> stage_stored_layer(store::Store& st, const std::string& stage, int n,
                                       const store::LayerRecord& rec, const std::string& what,
                                       const Notice& notice, const LayerLimits& limits) {
  int s = st.fd();
  std::string base = stage + "/" + std::to_string(n);
  Fd in = TRY_CTX(sys::open_at(s, store::blob_path(rec.digest), O_RDONLY | O_NOFOLLOW), what);
  TRY(sys::mkdir_at(s, base + ".root", 0755));
  Fd root = TRY(sys::open_at(s, base + ".root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  auto read = read_layer(in.get(), {}, -1, root.get(), WhiteoutMode::kOverlay, notice, limits);
  // SECURITY: the blob is what was verified when it was stored, and its
  // content what the image config says, or nothing is kept.
  if (read && (read->digest != rec.digest || read->blob_size != rec.blob_size))
    return error(ErrorKind::kFailed,
                 what + ": the stored blob is damaged (" + std::to_string(read->blob_size) +
                     " bytes hashing to " + read->digest + ")",
                 "run `togo fsck`");
  ReadResult r = TRY_CTX(std::move(read), what);
  TRY(check_diff_id(r, rec.diff_id, what));
  StagedLayer out;
  out.record = rec;
  out.record.size = r.unpacked;
  out.record.tree = TRY(stage_listing(s, base, root.get(), what));
  out.record.unpacked = true;
  out.blob_placed = true;
  return out;
}

std::string sniff_media_type(std::string_view h) {
  auto starts = [&](std::string_view magic) { return h.substr(0, magic.size()) == magic; };
  if (starts("\x1f\x8b")) return std::string(oci::kMediaTypeLayerGzip);
  if (starts("\x28\xb5\x2f\xfd")) return std::string(oci::kMediaTypeLayerZstd);
  if (starts(std::string_view("\xfd" "7zXZ\0", 6)) || starts("BZh")) return "";
  return std::string(oci::kMediaTypeLayer);
}

namespace {

// Moves one staged layer into place (its tree, if unpacked, and its blob,
// unless placed already); its files are durable already.
Result<void> move_layer(int s, const std::string& stage, int n, const StagedLayer& l) {
  std::string base = stage + "/" + std::to_string(n);
  const std::string& digest = l.record.digest;
  if (l.record.unpacked) {
    std::string ldir = store::layer_dir(digest);
    TRY(fs::remove_tree(s, ldir));  // leftovers of an import that crashed
    TRY(sys::mkdir_at(s, ldir, 0755));
    TRY(sys::rename_at(s, base + ".root", s, store::layer_root(digest)));
    TRY(sys::rename_at(s, base + ".files", s, store::layer_files(digest)));
    TRY(fs::sync_dir_at(s, ldir));
  }
  if (!l.blob_placed) TRY(sys::rename_at(s, base + ".blob", s, store::blob_path(digest)));
  return {};
}

// The directories that gained names: layers/ (the new layers/<hex>) and
// blobs/sha256/.
Result<void> sync_parents(int s) {
  TRY(fs::sync_dir_at(s, store::kLayers));
  return fs::sync_dir_at(s, store::kBlobs);
}

}  // namespace

Result<void> place_layers(store::Store& st, const std::string& stage,
                          const std::vector<StagedLayer>& layers) {
  int s = st.fd();
  // One syncfs makes every file of every unpacked tree durable before any
  // is renamed into place.
  bool trees = std::any_of(layers.begin(), layers.end(),
                           [](auto& l) { return !l.known && l.record.unpacked; });
  if (trees && ::syncfs(s) < 0) return sys_error(errno, "syncing the store's filesystem");
  auto moved = [&]() -> Result<void> {
    for (size_t i = 0; i < layers.size(); i++)
      if (!layers[i].known) TRY(move_layer(s, stage, static_cast<int>(i), layers[i]));
    // A rename is durable once both directories are synced: the stage is
    // the other one.
    TRY(fs::sync_dir_at(s, stage));
    return sync_parents(s);
  }();
  if (!moved) discard_placed(st, layers);
  return moved;
}

void discard_placed(store::Store& st, const std::vector<StagedLayer>& layers) {
  for (auto& l : layers)
    if (!l.known) {
      (void)fs::remove_tree(st.fd(), store::layer_dir(l.record.digest));
      if (!l.blob_placed) (void)fs::remove_tree(st.fd(), store::blob_path(l.record.digest));
    }
}

Result<void> unpack_blob(store::Store& st, const std::string& digest, int dirfd,
                         const std::string& name, bool merge, const Notice& notice) {
  Fd in = TRY(sys::open_at(st.fd(), store::blob_path(digest), O_RDONLY));
  auto made = sys::mkdir_at(dirfd, name, 0755);
  if (!made && !(merge && made.error().err == EEXIST)) return std::unexpected(made.error());
  Fd root = TRY(sys::open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  // The blob was held to the limits when it was imported (or togo made it):
  // reading it again needs none, and a committed layer may exceed them.
  ReadResult r = TRY_CTX(read_layer(in.get(), {}, -1, root.get(),
                                    merge ? WhiteoutMode::kApply : WhiteoutMode::kOverlay, notice,
                                    LayerLimits::none()),
                         "layer " + digest);
  // SECURITY: a blob is verified against its digest whenever it is read.
  if (r.digest != digest)
    return error(ErrorKind::kBadInput,
                 "layer " + digest + ": blob is damaged (its content hashes to " + r.digest + ")",
                 "run `togo fsck`");
  return {};
}

}  // namespace togo::image
