#include "image/push.h"

#include <archive.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include "base/sha256.h"
#include "base/sys.h"
#include "image/import.h"
#include "image/layout_export.h"
#include "image/oci.h"
#include "store/layout.h"

namespace togo::image {
namespace {

using ArchivePtr = std::unique_ptr<struct archive, decltype(&archive_read_free)>;
constexpr size_t kChunk = 1u << 20;

/// A layer blob to upload (`fd` invalid when the registry has it) and how
/// the manifest names it.
struct Upload {
  Fd fd;
  oci::Descriptor desc;
};

oci::Descriptor descriptor(std::string media_type, std::string digest, uint64_t size) {
  oci::Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = std::move(digest);
  d.size = static_cast<int64_t>(size);
  return d;
}

/// A stored blob that is not what the catalog says it is.
std::unexpected<Error> damaged(const std::string& why) {
  return error(ErrorKind::kBadInput, "the stored blob is damaged (" + why + ")", "run `togo fsck`");
}

// The stored blob as libarchive reads it, hashed on the way.
struct RawReader {
  int fd = -1;
  Sha256 hash;
  int err = 0;
  char buf[kChunk];
};

la_ssize_t raw_read(struct archive*, void* data, const void** out) {
  auto* r = static_cast<RawReader*>(data);
  ssize_t n;
  do n = ::read(r->fd, r->buf, sizeof r->buf);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    r->err = errno;
    return -1;
  }
  r->hash.update(r->buf, static_cast<size_t>(n));
  *out = r->buf;
  return n;
}

/// A stored blob without an OCI media type (xz, bzip2), decompressed into
/// an unnamed file in the store's tmp/: a plain tar whose digest is the
/// layer's diff_id. Both ends are verified.
Result<Upload> decompressed(store::Store& st, const store::LayerRecord& rec) {
  Fd in = TRY(sys::open_at(st.fd(), store::blob_path(rec.digest), O_RDONLY));
  Fd out = TRY(sys::open_at(st.fd(), store::kTmp, O_RDWR | O_TMPFILE, 0600));
  auto raw = std::make_unique<RawReader>();
  raw->fd = in.get();
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_filter_xz(a.get());
  archive_read_support_filter_bzip2(a.get());
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_raw(a.get());
  struct archive_entry* entry = nullptr;
  if (archive_read_open(a.get(), raw.get(), nullptr, raw_read, nullptr) != ARCHIVE_OK ||
      archive_read_next_header(a.get(), &entry) != ARCHIVE_OK) {
    if (raw->err) return sys_error(raw->err, "reading the stored blob");
    return error(ErrorKind::kBadInput, "the stored blob cannot be decompressed", "run `togo fsck`");
  }
  Sha256 tar;
  uint64_t size = 0;
  std::string buf(kChunk, '\0');
  for (;;) {
    la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) {
      if (raw->err) return sys_error(raw->err, "reading the stored blob");
      return error(ErrorKind::kBadInput,
                   "decompressing the stored blob: " + std::string(archive_error_string(a.get())),
                   "run `togo fsck`");
    }
    std::string_view part(buf.data(), static_cast<size_t>(n));
    TRY(sys::write_all(out.get(), part, "decompressing the stored blob"));
    tar.update(part);
    size += part.size();
  }
  if ("sha256:" + raw->hash.hex() != rec.digest || "sha256:" + tar.hex() != rec.diff_id)
    return damaged("it does not hash to " + rec.digest + " or does not decompress to " + rec.diff_id);
  return Upload{std::move(out), descriptor(std::string(oci::kMediaTypeLayer), rec.diff_id, size)};
}

/// What to upload for one stored layer.
Result<Upload> prepare_layer(store::Store& st, Registry& reg, const store::LayerRecord& rec,
                             const std::string& what, const PushOptions& o) {
  if (rec.media_type.empty()) {
    // Sent as the plain tar, which the registry may have already.
    if (auto size = TRY(reg.head_blob(rec.diff_id)))
      return Upload{Fd(), descriptor(std::string(oci::kMediaTypeLayer), rec.diff_id, *size)};
    if (o.notice)
      o.notice(what + " is stored xz- or bzip2-compressed, which has no OCI media type: sending it uncompressed");
    return decompressed(st, rec);
  }
  if (TRY(reg.head_blob(rec.digest))) return Upload{Fd(), descriptor(rec.media_type, rec.digest, rec.blob_size)};
  Fd fd = TRY(sys::open_at(st.fd(), store::blob_path(rec.digest), O_RDONLY));
  // Its size is checked now, its digest as it is sent (send()).
  struct stat sb;
  if (::fstat(fd.get(), &sb) != 0) return sys_error(errno, "fstat " + store::blob_path(rec.digest));
  if (static_cast<uint64_t>(sb.st_size) != rec.blob_size)
    return damaged(std::to_string(sb.st_size) + " bytes, expected " + std::to_string(rec.blob_size));
  return Upload{std::move(fd), descriptor(rec.media_type, rec.digest, rec.blob_size)};
}

/// Sends one blob, telling the progress display.
Result<void> send(Registry& reg, const Upload& u, size_t index, size_t count, const PushOptions& o) {
  uint64_t size = static_cast<uint64_t>(u.desc.size);
  auto emit = [&](TransferEvent::Kind kind, uint64_t done, std::string_view note = {}) {
    if (o.progress) o.progress({kind, index, count, u.desc.digest, size, done, note});
  };
  if (!u.fd.valid()) {
    emit(TransferEvent::Kind::kSkipped, 0, "already in the registry");
    return {};
  }
  emit(TransferEvent::Kind::kStart, 0);
  std::string sent_digest;
  auto pushed = reg.push_blob(u.desc.digest, u.fd.get(), size,
                              [&](uint64_t n) { emit(TransferEvent::Kind::kBytes, n); }, &sent_digest);
  // What push_blob read from the blob file is verified on the way: every
  // blob is verified when it is read back.
  if (!sent_digest.empty() && sent_digest != u.desc.digest)
    return damaged(std::to_string(size) + " bytes hashing to " + sent_digest + ", expected " + u.desc.digest);
  bool sent = TRY(std::move(pushed));
  if (sent) emit(TransferEvent::Kind::kDone, size);
  else emit(TransferEvent::Kind::kSkipped, 0, "already in the registry");
  return {};
}

}  // namespace

Result<std::string> push(store::Store& st, const std::string& image, const Reference& ref, const PushOptions& o) {
  auto img = TRY(st.catalog().find_image(image));
  if (!img)
    return error(ErrorKind::kNotFound, "image " + image + ": no such image",
                 "`togo image ls` lists the images in this store");
  std::string tag = ref.tag.empty() ? ref.digest : ref.tag;
  RegistryOptions ropts = TRY(registry_options(ref, o, true));
  Registry reg(ref, ropts);

  oci::Manifest m;
  m.media_type = std::string(oci::kMediaTypeManifest);
  std::vector<std::string> diff_ids;
  size_t count = img->layers.size();
  for (size_t i = 0; i < count; i++) {
    std::string what = "layer " + std::to_string(i + 1) + "/" + std::to_string(count) + " of " + image;
    auto rec = TRY(st.catalog().find_layer(img->layers[i]));
    if (!rec)
      return error(ErrorKind::kFailed, what + " (" + img->layers[i] + "): not in the store's catalog",
                   "run `togo fsck`");
    diff_ids.push_back(rec->diff_id);
    Upload up = TRY_CTX(prepare_layer(st, reg, *rec, what, o), what);
    TRY_CTX(send(reg, up, i, count, o), what);
    m.layers.push_back(up.desc);
  }

  std::string config = TRY(config_to_send(*img, diff_ids, "image " + image, o.notice));
  Fd cfd(::memfd_create("togo-config", MFD_CLOEXEC));
  if (!cfd.valid()) return sys_error(errno, "memfd_create");
  TRY(sys::write_all(cfd.get(), config, "config"));
  std::string config_digest = Sha256::digest_of(config);
  m.config = descriptor(std::string(oci::kMediaTypeConfig), config_digest, config.size());
  TRY_CTX(reg.push_blob(config_digest, cfd.get(), config.size()), "config of " + image);
  return reg.put_manifest(tag, oci::to_json(m), oci::kMediaTypeManifest);
}

}  // namespace togo::image
