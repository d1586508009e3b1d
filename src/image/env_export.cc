// Writing an environment export: the header, the image as an OCI layout
// (its blobs verified as they are copied out of the store), the writable
// tree through pack(), and the trailer, in one pass through one libarchive
// writer.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <memory>

#include "base/sha256.h"
#include "base/sys.h"
#include "image/env_archive.h"
#include "image/env_stream.h"
#include "image/oci.h"
#include "store/layout.h"

namespace togo::image {

namespace {

using WriterPtr = std::unique_ptr<struct archive, decltype(&archive_write_free)>;
using ReaderPtr = std::unique_ptr<struct archive, decltype(&archive_read_free)>;
using EntryPtr = std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)>;

constexpr size_t kBufSize = 1 << 20;

// One libarchive writer in pax format over an ExportSink.
class Writer {
 public:
  explicit Writer(ExportSink& sink) : sink_(sink), aw_(archive_write_new(), archive_write_free) {
    buf_.resize(kBufSize);
  }
  ~Writer() {
    if (!closed_) sink_.abandon();  // before archive_write_free closes the archive
  }

  Result<void> open() {
    struct archive* a = aw_.get();
    // Full pax: nanosecond times, extended attributes, sparse maps.
    archive_write_set_format_pax(a);
    // Unblocked: every byte reaches the sink when written, so the sink
    // digests exactly the entries in between two finish_entry() calls.
    archive_write_set_bytes_per_block(a, 0);
    if (archive_write_open2(a, &sink_, nullptr, sink_write, nullptr, nullptr) != ARCHIVE_OK)
      return failure("starting the archive");
    return {};
  }

  struct archive* get() {
    return aw_.get();
  }

  // A regular file of the format's own (the header, the layout, blobs).
  Result<void> begin_file(const std::string& name, int64_t size) {
    EntryPtr e(archive_entry_new(), archive_entry_free);
    archive_entry_copy_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), size);
    archive_entry_set_mtime(e.get(), now_, 0);
    if (archive_write_header(aw_.get(), e.get()) < ARCHIVE_WARN) return failure("writing " + name);
    return {};
  }

  Result<void> data(const void* p, size_t n) {
    auto* c = static_cast<const char*>(p);
    while (n > 0) {
      la_ssize_t w = archive_write_data(aw_.get(), c, n);
      if (w <= 0) return failure("writing data");
      c += w;
      n -= static_cast<size_t>(w);
    }
    return {};
  }

  Result<void> file(const std::string& name, std::string_view content) {
    TRY(begin_file(name, static_cast<int64_t>(content.size())));
    return data(content.data(), content.size());
  }

  /// Ends the current entry, padding included: the stream is at an entry
  /// boundary.
  Result<void> finish_entry() {
    if (archive_write_finish_entry(aw_.get()) < ARCHIVE_WARN) return failure("writing");
    return {};
  }

  Result<void> close() {
    if (archive_write_close(aw_.get()) != ARCHIVE_OK) return failure("finishing the archive");
    TRY(sink_.finish());
    closed_ = true;
    return {};
  }

  std::vector<char>& buf() { return buf_; }

 private:
  std::unexpected<Error> failure(const std::string& what) {
    auto sink_said = sink_.failure(what);
    sink_.abandon();
    if (sink_said.error().err) return sink_said;
    const char* msg = archive_error_string(aw_.get());
    return error(what + ": " + (msg ? msg : "libarchive gave no reason"));
  }

  ExportSink& sink_;
  WriterPtr aw_;
  std::vector<char> buf_;
  bool closed_ = false;
  int64_t now_ = static_cast<int64_t>(::time(nullptr));
};

std::string short_id(const std::string& digest) { return digest.substr(7, 12); }

std::unexpected<Error> damaged(const std::string& digest, const std::string& why) {
  return error(ErrorKind::kFailed, "layer " + digest + ": the stored blob is damaged (" + why + ")",
               "run `togo fsck`");
}

// A stored blob, byte for byte, checked against its digest on the way.
Result<uint64_t> write_stored_blob(store::Store& st, Writer& w, const store::LayerRecord& rec) {
  Fd in = TRY(sys::open_at(st.fd(), store::blob_path(rec.digest), O_RDONLY | O_NOFOLLOW));
  struct stat sb;
  if (::fstat(in.get(), &sb) < 0) return sys_error(errno, "blob " + rec.digest);
  if (static_cast<uint64_t>(sb.st_size) != rec.blob_size)
    return damaged(rec.digest, std::to_string(sb.st_size) + " bytes, the catalog says " +
                                   std::to_string(rec.blob_size));
  TRY(w.begin_file(oci::blob_path(rec.digest), sb.st_size));
  Sha256 hash;
  uint64_t left = static_cast<uint64_t>(sb.st_size);
  auto& buf = w.buf();
  while (left > 0) {
    ssize_t n = ::read(in.get(), buf.data(), std::min<uint64_t>(buf.size(), left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(errno, "reading blob " + rec.digest);
    if (n == 0) return damaged(rec.digest, "it shrank while it was read");
    hash.update(buf.data(), static_cast<size_t>(n));
    TRY(w.data(buf.data(), static_cast<size_t>(n)));
    left -= static_cast<uint64_t>(n);
  }
  // SECURITY: a blob is verified against its digest whenever it is read.
  if ("sha256:" + hash.hex() != rec.digest)
    return damaged(rec.digest, "its content does not match");
  return static_cast<uint64_t>(sb.st_size);
}

// The blob as its decompressor reads it, the compressed bytes hashed.
struct Compressed {
  int fd = -1;
  Sha256 hash;
  int err = 0;
  char buf[1 << 16];
};

la_ssize_t compressed_read(struct archive*, void* data, const void** out) {
  auto* c = static_cast<Compressed*>(data);
  ssize_t n;
  do n = ::read(c->fd, c->buf, sizeof c->buf);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    c->err = errno;
    return -1;
  }
  c->hash.update(c->buf, static_cast<size_t>(n));
  *out = c->buf;
  return n;
}

struct Uncompressed {
  std::string digest;  // of the uncompressed tar: the layer's diff_id
  uint64_t size = 0;
};

// Reads a stored blob through its decompressor, giving the tar to `sink`;
// checks the blob against its digest.
Result<Uncompressed> each_tar_block(store::Store& st, const store::LayerRecord& rec,
                                    const std::function<Result<void>(const void*, size_t)>& sink) {
  Fd in = TRY(sys::open_at(st.fd(), store::blob_path(rec.digest), O_RDONLY | O_NOFOLLOW));
  auto c = std::make_unique<Compressed>();
  c->fd = in.get();
  ReaderPtr a(archive_read_new(), archive_read_free);
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_xz(a.get());
  archive_read_support_filter_lzma(a.get());
  archive_read_support_filter_bzip2(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_raw(a.get());
  archive_read_support_format_empty(a.get());
  auto failed = [&](const char* what) -> std::unexpected<Error> {
    if (c->err) return sys_error(c->err, "reading blob " + rec.digest);
    const char* msg = archive_error_string(a.get());
    return damaged(rec.digest, std::string(what) + ": " + (msg ? msg : "no reason given"));
  };
  if (archive_read_open(a.get(), c.get(), nullptr, compressed_read, nullptr) != ARCHIVE_OK)
    return failed("opening");
  Uncompressed out;
  Sha256 tar;
  struct archive_entry* e = nullptr;
  int rc = archive_read_next_header(a.get(), &e);
  if (rc < ARCHIVE_WARN) return failed("decompressing");
  if (rc != ARCHIVE_EOF) {
    for (;;) {
      const void* p;
      size_t n;
      la_int64_t off;
      rc = archive_read_data_block(a.get(), &p, &n, &off);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) return failed("decompressing");
      tar.update(p, n);
      out.size += n;
      TRY(sink(p, n));
    }
  }
  // What the decompressor did not need still belongs to the blob.
  const void* rest;
  while (compressed_read(nullptr, c.get(), &rest) > 0) {
  }
  if (c->err) return sys_error(c->err, "reading blob " + rec.digest);
  if ("sha256:" + c->hash.hex() != rec.digest)
    return damaged(rec.digest, "its content does not match");
  out.digest = "sha256:" + tar.hex();
  return out;
}

// One layer of the image as the manifest will describe it.
struct Layer {
  store::LayerRecord rec;
  oci::Descriptor desc;
  bool uncompress = false;  // written as the uncompressed tar
};

Result<Layer> describe_layer(store::Store& st, const std::string& digest,
                             const std::string& diff_id, bool include, const Notice& notice) {
  auto rec = TRY(st.catalog().find_layer(digest));
  if (!rec)
    return error(ErrorKind::kNotFound, "layer " + digest + " is not in the store",
                 "run `togo fsck`");
  Layer l{*rec, {}, false};
  bool known_type = !rec->media_type.empty() && oci::layer_compression(rec->media_type).has_value();
  if (known_type) {
    l.desc = {rec->media_type, rec->digest, static_cast<int64_t>(rec->blob_size)};
    return l;
  }
  // xz or bzip2 (or a store too old to say): OCI has no media type for
  // them, so the layer travels as the plain tar it stands for; the outer
  // compression covers it. Its digest is then its diff_id.
  l.uncompress = true;
  if (include && notice)
    notice("layer " + short_id(digest) +
           " is stored in a compression OCI has no media type for; "
           "it is exported uncompressed");
  // The manifest comes before the blob and names its digest and size:
  // one pass to learn them (checking the blob), another to write it.
  Uncompressed u =
      TRY(each_tar_block(st, *rec, [](const void*, size_t) -> Result<void> { return {}; }));
  l.desc = {std::string(oci::kMediaTypeLayer), u.digest, static_cast<int64_t>(u.size)};
  if (!diff_id.empty() && l.desc.digest != diff_id)
    return damaged(digest,
                   "it uncompresses to " + l.desc.digest + ", the image config says " + diff_id);
  return l;
}

Result<uint64_t> write_uncompressed(store::Store& st, Writer& w, const Layer& l) {
  TRY(w.begin_file(oci::blob_path(l.desc.digest), l.desc.size));
  Uncompressed u =
      TRY(each_tar_block(st, l.rec, [&](const void* p, size_t n) { return w.data(p, n); }));
  if (u.digest != l.desc.digest || static_cast<int64_t>(u.size) != l.desc.size)
    return damaged(l.rec.digest, "it changed while it was read");
  return u.size;
}

}  // namespace

Result<EnvExportStats> write_env_archive(store::Store& st, const store::EnvRecord& env, int tree,
                                         int out, const EnvExportOptions& opts) {
  auto img = TRY(st.catalog().find_image(env.image_id));
  if (!img)
    return error(ErrorKind::kNotFound,
                 "its image " + short_id(env.image_id) + " is not in the store", "run `togo fsck`");
  oci::ImageConfig config = TRY_CTX(oci::parse_config(img->config), "the image's config");
  if (config.diff_ids.size() != img->layers.size())
    return error("the image's config lists " + std::to_string(config.diff_ids.size()) +
                 " layers, the catalog " + std::to_string(img->layers.size()));

  // The documents first: a layout names every blob by digest and size
  // before the blobs come.
  std::vector<Layer> layers;
  oci::Manifest manifest;
  manifest.media_type = oci::kMediaTypeManifest;
  manifest.config = {std::string(oci::kMediaTypeConfig), Sha256::digest_of(img->config),
                     static_cast<int64_t>(img->config.size())};
  for (size_t i = 0; i < img->layers.size(); i++) {
    layers.push_back(TRY(
        describe_layer(st, img->layers[i], config.diff_ids[i], opts.include_image, opts.notice)));
    manifest.layers.push_back(layers.back().desc);
  }
  std::string manifest_json = oci::to_json(manifest);
  oci::Descriptor mdesc{std::string(oci::kMediaTypeManifest), Sha256::digest_of(manifest_json),
                        static_cast<int64_t>(manifest_json.size())};
  bool named = img->name != img->id;
  if (named) mdesc.annotations[std::string(oci::kAnnotationRefName)] = img->name;
  oci::Index index;
  index.manifests.push_back(mdesc);

  ExportHeader h;
  h.name = env.name;
  h.rootfs = env.rootfs;
  h.settings = settings_lines(env.settings);
  h.image_name = named ? img->name : "";
  h.image_id = Sha256::digest_of(img->config);
  h.image_included = opts.include_image;
  h.created = env.created;
  h.writer = std::string("togo ") + TOGO_VERSION;

  ExportSink sink(out, opts.compression);
  Writer w(sink);
  TRY(w.open());
  TRY(w.file(std::string(kExportHeader), header_json(h)));
  TRY(w.file(std::string(oci::kLayoutFile), oci::layout_json()));
  TRY(w.file(std::string(oci::kLayoutIndexFile), oci::to_json(index)));
  TRY(w.file(oci::blob_path(mdesc.digest), manifest_json));
  TRY(w.file(oci::blob_path(manifest.config.digest), img->config));
  EnvExportStats stats;
  if (opts.include_image) {
    for (auto& l : layers) {
      uint64_t n =
          TRY_CTX(l.uncompress ? write_uncompressed(st, w, l) : write_stored_blob(st, w, l.rec),
                  "layer " + short_id(l.rec.digest));
      stats.layers++;
      stats.layer_bytes += n;
    }
  }
  // The tree's own bytes are digested: blobs have digests of their own,
  // the tree only this one.
  TRY(w.finish_entry());
  sink.start_digest();
  PackOptions po;
  po.overlay_whiteouts = env.rootfs == "overlay";
  po.prefix = std::string(env.rootfs == "overlay" ? kExportUpper : kExportRootfs);
  stats.tree = TRY(pack(w.get(), tree, po));
  TRY(w.finish_entry());
  uint64_t bytes = 0;
  std::string digest = sink.stop_digest(&bytes);
  // The trailer: a file cut at an entry's end still lacks it.
  TRY(w.file(std::string(kExportTrailer), trailer_json(stats.tree.entries, bytes, digest)));
  TRY(w.close());
  if (stats.tree.sockets && opts.notice)
    opts.notice("left out " + std::to_string(stats.tree.sockets) +
                " socket(s): an archive cannot hold them");
  return stats;
}

}  // namespace togo::image
