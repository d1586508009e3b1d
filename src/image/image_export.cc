// Export as plan, then write: what each layer becomes (stored blob as it is,
// or decompressed to a tar) and its digest and size are settled first, the
// documents built from them, and only then is the tar stream written.
#include "image/image_export.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "base/sha256.h"
#include "base/sys.h"
#include "image/import.h"
#include "image/oci.h"
#include "image/reference.h"
#include "store/layout.h"

namespace togo::image {

namespace {

constexpr size_t kChunk = 1 << 20;

using Sink = std::function<Result<void>(const void*, size_t)>;

std::unexpected<Error> damaged(const std::string& digest, const std::string& why) {
  return error(ErrorKind::kFailed, "layer " + digest + ": " + why, "run `togo fsck`");
}

// A stored blob as its decompressor reads it: every byte hashed.
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
  std::string out_digest;  // of what went to the sink
  uint64_t out_size = 0;
};

// Reads the stored blob of `rec`, as it is or decompressed, into `sink`.
// SECURITY: the blob is checked against its digest and size, and a
// decompressed layer against its diff_id (when the catalog has one).
Result<Streamed> stream_layer(int store_fd, const store::LayerRecord& rec, bool decompress,
                              const Sink& sink) {
  Fd fd = TRY(sys::open_at(store_fd, store::blob_path(rec.digest), O_RDONLY | O_NOFOLLOW));
  auto src = std::make_unique<BlobSource>();
  src->fd = fd.get();
  Sha256 out_hash;
  Streamed r;
  if (!decompress) {
    for (;;) {
      const void* p;
      la_ssize_t n = source_read(nullptr, src.get(), &p);
      if (n < 0) return sys_error(src->err, "reading layer " + rec.digest);
      if (n == 0) break;
      TRY(sink(p, static_cast<size_t>(n)));
    }
  } else {
    std::unique_ptr<struct archive, decltype(&archive_read_free)> a(archive_read_new(),
                                                                    archive_read_free);
    archive_read_support_filter_gzip(a.get());
    archive_read_support_filter_zstd(a.get());
    archive_read_support_filter_xz(a.get());
    archive_read_support_filter_bzip2(a.get());
    archive_read_support_format_raw(a.get());
    struct archive_entry* e = nullptr;
    if (archive_read_open(a.get(), src.get(), nullptr, source_read, nullptr) != ARCHIVE_OK ||
        archive_read_next_header(a.get(), &e) != ARCHIVE_OK) {
      if (src->err) return sys_error(src->err, "reading layer " + rec.digest);
      return damaged(rec.digest,
                     std::string("cannot decompress: ") + archive_error_string(a.get()));
    }
    for (;;) {
      const void* p;
      size_t n = 0;
      la_int64_t off = 0;
      int rc = archive_read_data_block(a.get(), &p, &n, &off);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) {
        if (src->err) return sys_error(src->err, "reading layer " + rec.digest);
        const char* why = archive_error_string(a.get());
        return damaged(rec.digest, std::string("decompressing: ") + (why ? why : "damaged data"));
      }
      out_hash.update(p, n);
      r.out_size += n;
      TRY(sink(p, n));
    }
    // What follows the compressed stream counts toward the blob's digest.
    const void* p;
    la_ssize_t n;
    while ((n = source_read(nullptr, src.get(), &p)) > 0) {
    }
    if (n < 0) return sys_error(src->err, "reading layer " + rec.digest);
  }
  std::string blob_digest = "sha256:" + src->hash.hex();
  if (blob_digest != rec.digest || src->size != rec.blob_size)
    return damaged(rec.digest, "the blob is damaged (its content hashes to " + blob_digest + ")");
  if (!decompress) {
    r.out_digest = blob_digest;
    r.out_size = src->size;
    return r;
  }
  r.out_digest = "sha256:" + out_hash.hex();
  if (!rec.diff_id.empty() && r.out_digest != rec.diff_id)
    return damaged(rec.digest, "its uncompressed content hashes to " + r.out_digest +
                                   ", not its diff_id " + rec.diff_id);
  return r;
}

// What one stored layer becomes in the archive.
struct LayerOut {
  store::LayerRecord rec;
  bool decompress = false;
  std::string digest;  // of the bytes written
  uint64_t size = 0;
  std::string media_type;  // OCI
  std::string diff_id;
};

Result<LayerOut> plan_layer(store::Store& st, const std::string& digest, ExportFormat format) {
  auto rec = TRY(st.catalog().find_layer(digest));
  if (!rec) return damaged(digest, "missing from the catalog");
  LayerOut l;
  l.rec = *rec;
  l.diff_id = rec->diff_id;
  // Docker archives hold plain tars; OCI has no media type for xz or bzip2.
  l.decompress = format == ExportFormat::kDocker || rec->media_type.empty();
  if (l.decompress || l.diff_id.empty()) {
    // A first pass for the size (a tar header comes before its data) and,
    // from stores older than diff_ids in the catalog, the diff_id.
    Streamed m = TRY(
        stream_layer(st.fd(), *rec, true, [](const void*, size_t) -> Result<void> { return {}; }));
    l.diff_id = m.out_digest;
    if (l.decompress) l.size = m.out_size;
  }
  if (l.decompress) {
    l.digest = l.diff_id;
    l.media_type = oci::kMediaTypeLayer;
  } else {
    l.digest = rec->digest;
    l.size = rec->blob_size;
    l.media_type = rec->media_type;
  }
  return l;
}

// The tar stream: regular files and directories owned by 0:0 with one mtime.
class TarOut {
 public:
  TarOut(int fd, int64_t mtime)
      : a_(archive_write_new(), archive_write_free), fd_(fd), mtime_(mtime) {}

  Result<void> open() {
    archive_write_set_format_pax_restricted(a_.get());
    archive_write_add_filter_none(a_.get());
    // Unpadded whatever `out` is (libarchive pads a stdout of its own
    // accord): one image, one archive, byte for byte.
    archive_write_set_bytes_in_last_block(a_.get(), 1);
    if (archive_write_open_fd(a_.get(), fd_) != ARCHIVE_OK) return failure("opening the output");
    return {};
  }

  Result<void> dir(const std::string& name) { return header(name, AE_IFDIR, 0755, 0); }

  Result<void> file(const std::string& name, std::string_view data) {
    TRY(header(name, AE_IFREG, 0644, data.size()));
    return write(data.data(), data.size());
  }

  Result<void> header(const std::string& name, unsigned type, int mode, uint64_t size) {
    std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(),
                                                                           archive_entry_free);
    archive_entry_copy_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), mode);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    archive_entry_set_mtime(e.get(), mtime_, 0);
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) return failure("writing " + name);
    left_ = size;
    return {};
  }

  Result<void> write(const void* p, size_t n) {
    if (n > left_) return error("a layer grew while it was written");
    auto* c = static_cast<const char*>(p);
    while (n > 0) {
      la_ssize_t w = archive_write_data(a_.get(), c, n);
      if (w <= 0) return failure("writing");
      c += w;
      n -= static_cast<size_t>(w);
      left_ -= static_cast<uint64_t>(w);
    }
    return {};
  }

  Result<void> close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) return failure("finishing the archive");
    return {};
  }

  uint64_t left() const { return left_; }

 private:
  std::unexpected<Error> failure(const std::string& what) {
    const char* why = archive_error_string(a_.get());
    return std::unexpected(Error{archive_errno(a_.get()) > 0 ? archive_errno(a_.get()) : 0,
                                 ErrorKind::kFailed, what + ": " + (why ? why : "failed")});
  }

  std::unique_ptr<struct archive, decltype(&archive_write_free)> a_;
  int fd_ = -1;
  int64_t mtime_ = 0;
  uint64_t left_ = 0;
};

// Writes a layer's bytes as the entry `name`, checking them again.
Result<void> write_layer(store::Store& st, TarOut& tar, const LayerOut& l,
                         const std::string& name) {
  TRY(tar.header(name, AE_IFREG, 0644, l.size));
  Streamed s = TRY(stream_layer(st.fd(), l.rec, l.decompress,
                                [&](const void* p, size_t n) { return tar.write(p, n); }));
  if (s.out_digest != l.digest || tar.left() != 0)
    return damaged(l.rec.digest, "changed while it was exported");
  return {};
}

std::string hex_of(const std::string& digest) { return digest.substr(7); }

}  // namespace

Result<ExportFormat> parse_export_format(std::string_view s) {
  if (s == "oci") return ExportFormat::kOci;
  if (s == "docker") return ExportFormat::kDocker;
  return error(ErrorKind::kUsage, "--format " + std::string(s) + ": not oci or docker");
}

std::string archive_tag(std::string_view name) {
  size_t slash = name.rfind('/');
  size_t colon = name.find(':', slash == std::string_view::npos ? 0 : slash + 1);
  std::string repo(name.substr(0, colon));
  std::string tag =
      colon == std::string_view::npos ? "latest" : std::string(name.substr(colon + 1));
  std::string first = repo.substr(0, repo.find('/'));
  bool registry = repo.find('/') != std::string::npos &&
                  (first.find_first_of(".:") != std::string::npos || first == "localhost");
  if (!registry) repo = "localhost/" + repo;
  for (char& c : repo)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return repo + ":" + tag;
}

Result<ExportStats> export_image(store::Store& st, const store::ImageRecord& img, int out,
                                 const ExportOptions& opts) {
  // The plan: each distinct layer once, in order.
  std::vector<LayerOut> layers;
  std::vector<size_t> order;  // img.layers[i] -> layers[order[i]]
  std::map<std::string, size_t> seen;
  for (auto& digest : img.layers) {
    auto it = seen.find(digest);
    if (it == seen.end()) {
      layers.push_back(TRY(plan_layer(st, digest, opts.format)));
      it = seen.emplace(digest, layers.size() - 1).first;
    }
    order.push_back(it->second);
  }
  std::vector<std::string> diff_ids;
  for (size_t i : order) diff_ids.push_back(layers[i].diff_id);

  std::string config = img.config;
  auto parsed = oci::parse_config(config);
  if (!parsed) {
    // Stores from before image configs were kept hold "{}".
    config = rootfs_config(diff_ids);
    parsed = TRY(oci::parse_config(config));
    if (opts.notice)
      opts.notice("image " + img.name + " has no image config; exporting one for " +
                  oci::host_platform().str());
  } else if (parsed->diff_ids != diff_ids) {
    return error(ErrorKind::kFailed,
                 "image " + img.name + ": its config's diff_ids do not match its layers",
                 "run `togo fsck`");
  }
  std::string config_digest = Sha256::digest_of(config);
  bool named = !img.name.empty() && img.name != img.id;

  ExportStats stats;
  TarOut tar(out, img.created);
  TRY(tar.open());
  std::set<std::string> written;  // output digests: one entry per blob
  if (opts.format == ExportFormat::kOci) {
    oci::Manifest m;
    m.media_type = oci::kMediaTypeManifest;
    m.config = {std::string(oci::kMediaTypeConfig), config_digest,
                static_cast<int64_t>(config.size())};
    for (size_t i : order)
      m.layers.push_back(
          {layers[i].media_type, layers[i].digest, static_cast<int64_t>(layers[i].size)});
    std::string manifest = oci::to_json(m);
    oci::Index index;
    oci::Descriptor d{std::string(oci::kMediaTypeManifest), Sha256::digest_of(manifest),
                      static_cast<int64_t>(manifest.size())};
    d.platform = oci::Platform{parsed->os, parsed->architecture, parsed->variant, "", {}};
    if (named) d.annotations[std::string(oci::kAnnotationRefName)] = img.name;
    index.manifests.push_back(d);

    TRY(tar.file(std::string(oci::kLayoutFile), oci::layout_json()));
    TRY(tar.dir("blobs/"));
    TRY(tar.dir("blobs/sha256/"));
    for (auto& l : layers) {
      if (!written.insert(l.digest).second) continue;
      TRY(write_layer(st, tar, l, oci::blob_path(l.digest)));
      stats.bytes += l.size;
      stats.layers++;
    }
    for (auto& doc : {config, manifest})
      if (written.insert(Sha256::digest_of(doc)).second) {
        TRY(tar.file(oci::blob_path(Sha256::digest_of(doc)), doc));
        stats.bytes += doc.size();
      }
    TRY(tar.file(std::string(oci::kLayoutIndexFile), oci::to_json(index)));
  } else {
    oci::DockerArchiveEntry entry;
    entry.config = hex_of(config_digest) + ".json";
    if (named) {
      std::string tag = archive_tag(img.name);
      if (parse_reference(tag))
        entry.repo_tags.push_back(tag);
      else if (opts.notice)
        opts.notice("warning: " + img.name + " gives no valid tag (" + tag +
                    "); the archive names no tag");
    }
    for (size_t i : order) entry.layers.push_back(hex_of(layers[i].digest) + "/layer.tar");
    for (auto& l : layers) {
      if (!written.insert(l.digest).second) continue;
      TRY(tar.dir(hex_of(l.digest) + "/"));
      TRY(write_layer(st, tar, l, hex_of(l.digest) + "/layer.tar"));
      stats.bytes += l.size;
      stats.layers++;
    }
    TRY(tar.file(entry.config, config));
    stats.bytes += config.size();
    TRY(tar.file("manifest.json", oci::docker_manifest_json({entry})));
  }
  TRY(tar.close());
  return stats;
}

}  // namespace togo::image
