// Plan, then write: what each layer becomes (its stored blob, or its tar)
// and that form's digest and size are settled first, the documents built
// from them, and only then are bytes written, by the caller's tar writer.
#include "image/layout_export.h"

#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>

#include "base/sha256.h"
#include "base/sys.h"
#include "image/import.h"
#include "store/layout.h"

namespace togo::image {

namespace {

constexpr size_t kChunk = 1 << 20;

using Sink = std::function<Result<void>(const void*, size_t)>;

std::unexpected<Error> damaged(const std::string& digest, const std::string& why) {
  return error(ErrorKind::kFailed, "layer " + digest + ": " + why, "run `togo fsck`");
}

// A stored blob as it is read (by us or by a decompressor): every byte hashed.
struct BlobSource {
  int fd = -1;
  Sha256 hash;
  uint64_t size = 0;
  int err = 0;
  char buf[kChunk];
};

la_ssize_t source_read(struct archive*, void* data, const void** out) {
  auto* s = static_cast<BlobSource*>(data);
  ssize_t n;
  do n = ::read(s->fd, s->buf, sizeof s->buf);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    s->err = errno;
    return -1;
  }
  s->hash.update(s->buf, static_cast<size_t>(n));
  s->size += static_cast<uint64_t>(n);
  *out = s->buf;
  return n;
}

struct Streamed {
  std::string digest;  // of what went to the sink
  uint64_t size = 0;
};

// Reads the stored blob of `rec`, as it is or decompressed, into `sink`.
// SECURITY: the blob is checked against its digest and size (after the
// sink had its bytes: on a mismatch the caller discards what it wrote).
Result<Streamed> read_layer(int store_fd, const store::LayerRecord& rec, bool decompress,
                            const Sink& sink) {
  Fd fd = TRY(sys::open_at(store_fd, store::blob_path(rec.digest), O_RDONLY | O_NOFOLLOW));
  auto src = std::make_unique<BlobSource>();
  src->fd = fd.get();
  auto read_failed = [&] { return sys_error(src->err, "reading layer " + rec.digest); };
  Streamed r;
  if (!decompress) {
    for (;;) {
      const void* p;
      la_ssize_t n = source_read(nullptr, src.get(), &p);
      if (n < 0) return read_failed();
      if (n == 0) break;
      TRY(sink(p, static_cast<size_t>(n)));
    }
  } else {
    std::unique_ptr<struct archive, decltype(&archive_read_free)> a(archive_read_new(),
                                                                    archive_read_free);
    archive_read_support_filter_gzip(a.get());
    archive_read_support_filter_zstd(a.get());
    archive_read_support_filter_xz(a.get());
    archive_read_support_filter_lzma(a.get());
    archive_read_support_filter_bzip2(a.get());
    archive_read_support_format_raw(a.get());
    archive_read_support_format_empty(a.get());
    auto failed = [&](const char* what) -> std::unexpected<Error> {
      if (src->err) return read_failed();
      const char* why = archive_error_string(a.get());
      return damaged(rec.digest, std::string(what) + ": " + (why ? why : "damaged data"));
    };
    struct archive_entry* e = nullptr;
    if (archive_read_open(a.get(), src.get(), nullptr, source_read, nullptr) != ARCHIVE_OK)
      return failed("cannot decompress");
    int rc = archive_read_next_header(a.get(), &e);
    if (rc < ARCHIVE_WARN) return failed("cannot decompress");
    Sha256 out_hash;
    while (rc != ARCHIVE_EOF) {
      const void* p;
      size_t n = 0;
      la_int64_t off = 0;
      rc = archive_read_data_block(a.get(), &p, &n, &off);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) return failed("decompressing");
      out_hash.update(p, n);
      r.size += n;
      TRY(sink(p, n));
    }
    r.digest = "sha256:" + out_hash.hex();
    // What the decompressor did not need still belongs to the blob.
    const void* p;
    la_ssize_t n;
    while ((n = source_read(nullptr, src.get(), &p)) > 0) {
    }
    if (n < 0) return read_failed();
  }
  std::string blob_digest = "sha256:" + src->hash.hex();
  if (blob_digest != rec.digest || src->size != rec.blob_size)
    return damaged(rec.digest, "the blob is damaged (its " + std::to_string(src->size) +
                                   " bytes hash to " + blob_digest + ")");
  if (!decompress) {
    r.digest = blob_digest;
    r.size = src->size;
  }
  return r;
}

Result<LayerOut> plan_layer(store::Store& st, const std::string& digest, bool decompress_all) {
  auto rec = TRY(st.catalog().find_layer(digest));
  if (!rec) return damaged(digest, "missing from the catalog");
  LayerOut l;
  l.rec = *rec;
  l.diff_id = rec->diff_id;
  // OCI has no media type for xz or bzip2 (stored with none), nor does a
  // store from before media types were catalogued say what it holds.
  std::optional<oci::Compression> compression;
  if (auto c = oci::layer_compression(rec->media_type); c && !rec->media_type.empty())
    compression = *c;
  bool plain = compression && *compression == oci::Compression::kNone;
  l.decompress = !compression || (decompress_all && !plain);
  if (plain && l.diff_id.empty()) l.diff_id = rec->digest;  // a tar is its own diff_id
  if (!l.decompress) {
    l.desc = {rec->media_type, rec->digest, static_cast<int64_t>(rec->blob_size)};
    if (!l.diff_id.empty()) return l;
  }
  // A pass over the tar for its size (a tar header comes before its data)
  // and, from stores older than diff_ids in the catalog, its diff_id.
  Streamed tar =
      TRY(read_layer(st.fd(), *rec, true, [](const void*, size_t) -> Result<void> { return {}; }));
  if (!rec->diff_id.empty() && tar.digest != rec->diff_id)
    return damaged(digest, "its uncompressed content hashes to " + tar.digest +
                               ", not its diff_id " + rec->diff_id);
  l.diff_id = tar.digest;
  if (l.decompress)
    l.desc = {std::string(oci::kMediaTypeLayer), tar.digest, static_cast<int64_t>(tar.size)};
  return l;
}

}  // namespace

std::string LayoutOut::manifest_path() const { return oci::blob_path(manifest_desc.digest); }
std::string LayoutOut::config_path() const { return oci::blob_path(Sha256::digest_of(config)); }

Result<std::string> config_to_send(const store::ImageRecord& img,
                                   const std::vector<std::string>& diff_ids, const std::string& shown,
                                   const Notice& notice) {
  auto parsed = oci::parse_config(img.config);
  if (parsed) {
    if (parsed->diff_ids != diff_ids)
      return error(ErrorKind::kFailed, shown + ": its config's diff_ids do not match its layers",
                   "run `togo fsck`");
    return img.config;
  }
  // SECURITY (integrity): only the "{}" of stores from before image configs
  // were kept gets a made-up config; a damaged one is never replaced.
  if (!img.config.empty() && img.config != "{}")
    return error(ErrorKind::kFailed, shown + ": its config: " + parsed.error().message,
                 "run `togo fsck`");
  if (notice) notice(shown + " has no image config; sending one for " + oci::host_platform().str());
  return rootfs_config(diff_ids);
}

Result<LayoutOut> plan_layout(store::Store& st, const store::ImageRecord& img, bool decompress_all,
                              const Notice& notice) {
  bool named = !img.name.empty() && img.name != img.id;
  std::string shown = "image " + (named ? img.name : img.id.substr(7, 12));
  LayoutOut out;
  std::map<std::string, size_t> seen;  // a layer the image repeats is planned once
  std::vector<std::string> diff_ids;
  for (auto& digest : img.layers) {
    auto [it, fresh] = seen.emplace(digest, out.layers.size());
    LayerOut l = fresh ? TRY(plan_layer(st, digest, decompress_all)) : out.layers[it->second];
    out.layers.push_back(std::move(l));
    diff_ids.push_back(out.layers.back().diff_id);
  }

  out.config = TRY(config_to_send(img, diff_ids, shown, notice));
  out.parsed = TRY(oci::parse_config(out.config));

  oci::Manifest m;
  m.media_type = oci::kMediaTypeManifest;
  m.config = {std::string(oci::kMediaTypeConfig), Sha256::digest_of(out.config),
              static_cast<int64_t>(out.config.size())};
  for (auto& l : out.layers) m.layers.push_back(l.desc);
  out.manifest = oci::to_json(m);
  out.manifest_desc = {std::string(oci::kMediaTypeManifest), Sha256::digest_of(out.manifest),
                       static_cast<int64_t>(out.manifest.size())};
  out.manifest_desc.platform =
      oci::Platform{out.parsed.os, out.parsed.architecture, out.parsed.variant, "", {}};
  if (named) out.manifest_desc.annotations[std::string(oci::kAnnotationRefName)] = img.name;
  oci::Index index;
  index.manifests.push_back(out.manifest_desc);
  out.index = oci::to_json(index);
  return out;
}

Result<void> write_layer_out(int store_fd, const LayerOut& l, const Sink& sink) {
  const uint64_t size = static_cast<uint64_t>(l.desc.size);
  uint64_t given = 0;
  auto changed = [&] {
    return damaged(l.rec.digest, "the stored blob is damaged or changed while it was exported");
  };
  Streamed s =
      TRY(read_layer(store_fd, l.rec, l.decompress, [&](const void* p, size_t n) -> Result<void> {
        if (n > size - given) return changed();
        given += n;
        return sink(p, n);
      }));
  if (s.digest != l.desc.digest || s.size != size) return changed();
  return {};
}

}  // namespace togo::image
