#include "image/archive_import.h"

#include <archive.h>
#include <archive_entry.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "base/fs.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "image/oci.h"
#include "image/unpack.h"

namespace togo::image {

namespace {

using ArchivePtr = std::unique_ptr<struct archive, decltype(&archive_read_free)>;

// Documents read from an archive are small; anything larger is not one.
constexpr size_t kMaxDocument = 4u << 20;
// What `docker save` puts at the top of its archive.
constexpr std::string_view kDockerManifestFile = "manifest.json";

// An input stream whose first bytes were already read to tell what it is.
struct Stream {
  int fd = -1;
  std::string_view head;
  int err = 0;
  char buf[1 << 20];
};

la_ssize_t stream_read(struct archive*, void* data, const void** out) {
  auto* s = static_cast<Stream*>(data);
  *out = s->buf;
  if (!s->head.empty()) {
    size_t n = std::min(s->head.size(), sizeof s->buf);
    std::memcpy(s->buf, s->head.data(), n);
    s->head.remove_prefix(n);
    return static_cast<la_ssize_t>(n);
  }
  ssize_t n;
  do n = ::read(s->fd, s->buf, sizeof s->buf);
  while (n < 0 && errno == EINTR);
  if (n < 0) s->err = errno;
  return n;
}

ArchivePtr tar_reader() {
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_xz(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_filter_bzip2(a.get());
  return a;
}

// The first name an entry gives, from the first bytes of a (maybe compressed) tar;
// empty if they do not start one.
std::string first_entry(std::string_view head) {
  ArchivePtr a = tar_reader();
  if (archive_read_open_memory(a.get(), head.data(), head.size()) != ARCHIVE_OK) return "";
  // `tar -C dir .` starts with "./": the first entry that names something.
  for (int i = 0; i < 8; i++) {
    struct archive_entry* e = nullptr;
    if (archive_read_next_header(a.get(), &e) < ARCHIVE_WARN) return "";
    const char* name = archive_entry_pathname(e);
    std::string n = name ? name : "";
    while (n.starts_with("./")) n.erase(0, 2);
    if (!n.empty() && n != ".") return n;
  }
  return "";
}

// Whether a tar whose first entry is `name` holds an image (an OCI layout or
// a docker archive) rather than a root filesystem. What those writers put
// first: docker and podman start with a layer directory named by its hex id
// (or blobs/), skopeo and buildah with blobs/ or oci-layout.
bool is_image_archive(const std::string& name) {
  for (std::string_view n : {oci::kLayoutFile, oci::kLayoutIndexFile, kDockerManifestFile,
                             std::string_view("repositories")})
    if (name == n) return true;
  if (name == "blobs" || name.starts_with("blobs/")) return true;
  std::string first = name.substr(0, name.find('/'));
  for (const char* ext : {".json", ".tar"})
    if (first.ends_with(ext)) first.resize(first.size() - std::strlen(ext));
  return is_sha256_hex(first);
}

Result<std::string> read_document(int dir, const std::string& path) {
  Fd fd = TRY_CTX(sys::open_at2(dir, path, O_RDONLY, 0,
                                RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS),
                  path);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return sys_error(errno, path);
  if (!S_ISREG(st.st_mode)) return error(ErrorKind::kBadInput, path + ": not a regular file");
  if (static_cast<size_t>(st.st_size) > kMaxDocument)
    return error(ErrorKind::kBadInput, path + ": " + std::to_string(st.st_size) +
                                           " bytes, too large for an image document");
  return sys::read_all(fd.get(), path);
}

// A blob of an OCI layout, verified against its descriptor.
Result<std::string> read_blob(int dir, const oci::Descriptor& d) {
  std::string path = oci::blob_path(d.digest);
  std::string data = TRY(read_document(dir, path));
  if (d.size >= 0 && data.size() != static_cast<size_t>(d.size))
    return error(ErrorKind::kBadInput, d.digest + ": " + std::to_string(data.size()) +
                                           " bytes, the descriptor says " +
                                           std::to_string(d.size));
  // SECURITY: every document is checked against the digest that names it.
  if (Sha256::digest_of(data) != d.digest)
    return error(ErrorKind::kBadInput, d.digest + ": content does not match its digest");
  return data;
}

std::string ref_name(const oci::Descriptor& d) {
  for (std::string_view key : {oci::kAnnotationContainerdName, oci::kAnnotationRefName})
    if (auto it = d.annotations.find(std::string(key)); it != d.annotations.end())
      return it->second;
  return "";
}

struct Picked {
  std::string config;
  std::vector<LayerExpect> layers;
  std::vector<std::string> layer_paths;  // relative to the directory
  std::string name;                      // what the archive calls the image
};

// Chooses the manifest of an OCI layout, descending into nested indexes
// (multi-arch images) by platform.
Result<Picked> pick_oci(int dir, const ArchiveImportOptions& opts) {
  TRY(oci::parse_layout(TRY(read_document(dir, std::string(oci::kLayoutFile)))));
  const std::string index_file(oci::kLayoutIndexFile);
  oci::Index index = TRY_CTX(oci::parse_index(TRY(read_document(dir, index_file))), index_file);
  std::vector<oci::Descriptor> candidates;
  for (auto& m : index.manifests) {
    std::string r = ref_name(m);
    if (opts.ref.empty() || r == opts.ref || (r.find(':') != std::string::npos &&
                                              r.substr(r.rfind(':') + 1) == opts.ref))
      candidates.push_back(m);
  }
  if (candidates.empty())
    return error(ErrorKind::kNotFound, "no image named " + opts.ref + " in the layout");
  if (candidates.size() > 1 && opts.ref.empty()) {
    std::string names;
    for (auto& m : index.manifests)
      names += (names.empty() ? "" : ", ") + (ref_name(m).empty() ? m.digest : ref_name(m));
    return error(ErrorKind::kUsage, "the layout holds " + std::to_string(candidates.size()) +
                                        " images (" + names + ")",
                 "choose one with --ref NAME");
  }
  oci::Descriptor d = candidates[0];
  Picked out;
  out.name = ref_name(d);
  oci::Platform want = opts.platform.empty() ? oci::host_platform()
                                             : TRY(oci::parse_platform(opts.platform));
  for (int depth = 0; oci::is_index_media_type(d.media_type); depth++) {
    if (depth > 4) return error(ErrorKind::kBadInput, "indexes nested too deep");
    oci::Index nested = TRY_CTX(oci::parse_index(TRY(read_blob(dir, d))), d.digest);
    d = TRY(oci::pick_platform(nested, want));
  }
  oci::Manifest m = TRY_CTX(oci::parse_manifest(TRY(read_blob(dir, d))), "manifest " + d.digest);
  out.config = TRY_CTX(read_blob(dir, m.config), "config");
  oci::ImageConfig config = TRY_CTX(oci::parse_config(out.config), "config " + m.config.digest);
  if (config.diff_ids.size() != m.layers.size())
    return error(ErrorKind::kBadInput, "the manifest has " + std::to_string(m.layers.size()) +
                                           " layers, its config " +
                                           std::to_string(config.diff_ids.size()));
  for (size_t i = 0; i < m.layers.size(); i++) {
    TRY(oci::layer_compression(m.layers[i].media_type));
    out.layers.push_back({m.layers[i].digest, m.layers[i].size, config.diff_ids[i], ""});
    out.layer_paths.push_back(oci::blob_path(m.layers[i].digest));
  }
  return out;
}

// Chooses the image of a docker archive by one of its tags.
Result<Picked> pick_docker(int dir, const ArchiveImportOptions& opts) {
  const std::string manifest_file(kDockerManifestFile);
  auto entries = TRY_CTX(oci::parse_docker_manifest(TRY(read_document(dir, manifest_file))),
                         manifest_file);
  const oci::DockerArchiveEntry* chosen = nullptr;
  for (auto& e : entries) {
    bool match = opts.ref.empty();
    for (auto& tag : e.repo_tags)
      if (tag == opts.ref || tag.ends_with("/" + opts.ref)) match = true;
    if (!match) continue;
    if (chosen && opts.ref.empty())
      return error(ErrorKind::kUsage,
                   "the archive holds " + std::to_string(entries.size()) + " images",
                   "choose one with --ref TAG");
    if (!chosen) chosen = &e;
  }
  if (!chosen) return error(ErrorKind::kNotFound, "no image tagged " + opts.ref + " in the archive");
  Picked out;
  if (!chosen->repo_tags.empty()) out.name = chosen->repo_tags[0];
  out.config = TRY(read_document(dir, chosen->config));
  oci::ImageConfig config = TRY_CTX(oci::parse_config(out.config), chosen->config);
  if (config.diff_ids.size() != chosen->layers.size())
    return error(ErrorKind::kBadInput, "manifest.json lists " +
                                           std::to_string(chosen->layers.size()) +
                                           " layers, the config " +
                                           std::to_string(config.diff_ids.size()));
  for (size_t i = 0; i < chosen->layers.size(); i++) {
    out.layers.push_back({"", -1, config.diff_ids[i], ""});
    out.layer_paths.push_back(chosen->layers[i]);
  }
  return out;
}

// Imports the image an OCI layout or docker archive directory holds.
Result<store::ImageRecord> import_dir(store::Store& st, int dir, const std::string& stage,
                                      const ArchiveImportOptions& opts) {
  bool oci_layout =
      ::faccessat(dir, std::string(oci::kLayoutFile).c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0;
  bool docker =
      ::faccessat(dir, std::string(kDockerManifestFile).c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0;
  if (!oci_layout && !docker)
    return error(ErrorKind::kBadInput,
                 "neither an OCI image layout (no oci-layout file) nor a docker archive "
                 "(no manifest.json)");
  Picked p = TRY(oci_layout ? pick_oci(dir, opts) : pick_docker(dir, opts));
  ImportOptions base = opts.base;
  if (base.name.empty()) base.name = p.name.empty() ? opts.fallback_name : p.name;
  TRY(check_image_name(base.name));
  NewImage image;
  image.config = p.config;
  for (size_t i = 0; i < p.layers.size(); i++) {
    LayerExpect expect = p.layers[i];
    expect.what = "layer " + std::to_string(i + 1) + " (" + p.layer_paths[i] + ")";
    if (!expect.digest.empty())
      if (auto known = TRY(st.catalog().find_known_layer(expect.digest))) {
        bool differs = !known->diff_id.empty() && known->diff_id != expect.diff_id;
        if (differs && known->unpacked)
          return error(ErrorKind::kBadInput, expect.what + ": the config gives diff_id " +
                                                 expect.diff_id + ", the stored layer has " +
                                                 known->diff_id);
        if (!differs) {
          image.layers.push_back({*known, true});
          continue;
        }
        // Packed, its diff_id only another image's claim: the content decides.
      }
    Fd blob = TRY_CTX(sys::open_at2(dir, p.layer_paths[i], O_RDONLY, 0,
                                    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS),
                      expect.what);
    image.layers.push_back(
        TRY(stage_layer(st, stage, static_cast<int>(i), blob.get(), expect, base.notice)));
  }
  return commit_image(st, stage, image, base);
}

}  // namespace

Result<store::ImageRecord> import_any(store::Store& st, const std::string& path, int fd,
                                      const ArchiveImportOptions& opts) {
  struct stat sb;
  if (::fstat(fd, &sb) < 0) return sys_error(errno, path);
  std::string what = opts.base.name.empty() ? path : opts.base.name;
  if (S_ISDIR(sb.st_mode)) {
    auto lock = TRY(st.lock_for_writing("image import " + what));
    std::string stage = TRY(st.make_staging_dir());
    auto r = import_dir(st, fd, stage, opts);
    (void)fs::remove_tree(st.fd(), stage);
    if (!r) return r;
    TRY(remove_unused_layers(st));
    return r;
  }

  // Enough of the stream to read the first tar header, compressed or not.
  std::string head;
  head.resize(256 << 10);
  size_t got = 0;
  while (got < head.size()) {
    ssize_t n = ::read(fd, head.data() + got, head.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(errno, "reading " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  head.resize(got);
  if (!is_image_archive(first_entry(head))) {
    ArchiveImportOptions o = opts;
    if (o.base.name.empty()) o.base.name = opts.fallback_name;
    if (o.base.name.empty())
      return error(ErrorKind::kUsage, "--name is needed for a root filesystem read from stdin");
    o.base.head = std::move(head);
    return import_rootfs(st, fd, o.base);
  }

  // An image archive: its files are unpacked into staging, then read as a
  // directory.
  auto lock = TRY(st.lock_for_writing("image import " + what));
  std::string stage = TRY(st.make_staging_dir());
  auto work = [&]() -> Result<store::ImageRecord> {
    TRY(sys::mkdir_at(st.fd(), stage + "/archive", 0700));
    Fd dir = TRY(sys::open_at(st.fd(), stage + "/archive", O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    auto stream = std::make_unique<Stream>();
    stream->fd = fd;
    stream->head = head;
    ArchivePtr a = tar_reader();
    if (archive_read_open(a.get(), stream.get(), nullptr, stream_read, nullptr) != ARCHIVE_OK)
      return error(ErrorKind::kBadInput,
                   std::string("not a tar archive: ") + archive_error_string(a.get()));
    UnpackOptions uo;
    uo.rootless = true;  // the archive's files are read by togo, never run
    uo.max_entries = LayerLimits{}.max_entries;
    // Image archives hold blobs and documents, no whiteouts; any .wh. name
    // is harmless in a staging directory that is only read.
    auto stats = unpack(a.get(), dir.get(), uo);
    if (!stats) {
      if (stream->err) return sys_error(stream->err, "reading " + path);
      return std::unexpected(std::move(stats.error()));
    }
    return import_dir(st, dir.get(), stage, opts);
  }();
  (void)fs::remove_tree(st.fd(), stage);
  if (!work) return work;
  TRY(remove_unused_layers(st));
  return work;
}

}  // namespace togo::image
