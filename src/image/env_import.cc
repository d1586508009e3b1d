// Reading an environment export into a store: entries in the order the
// writer puts them, documents checked against their digests, layers fed
// straight from the stream into stage_layer, the writable tree through
// unpack(), then one commit.
#include <archive.h>
#include <archive_entry.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <thread>

#include "base/fs.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "image/env_archive.h"
#include "image/env_stream.h"
#include "image/oci.h"
#include "image/tar_path.h"
#include "image/unpack.h"
#include "image/unpack_image.h"
#include "store/envs.h"
#include "store/layout.h"

namespace togo::image {

namespace {

using ArchivePtr = std::unique_ptr<struct archive, decltype(&archive_read_free)>;

// Documents in an export are small; anything larger is not one.
constexpr int64_t kMaxDocument = 4 << 20;

std::string short_id(const std::string& digest) { return digest.substr(7, 12); }

class Importer {
 public:
  Importer(store::Store& st, int in, const EnvImportOptions& opts)
      : st_(st),
        opts_(opts),
        source_(std::make_unique<ImportSource>(in)),
        ar_(archive_read_new(), archive_read_free) {}

  Result<EnvImportResult> run() {
    stage_ = TRY(st_.make_staging_dir());
    auto r = work();
    if (!r) undo();
    (void)fs::remove_tree(st_.fd(), stage_);
    return r;
  }

 private:
  Result<EnvImportResult> work() {
    // The decompressor in ImportSource, the tar reader over it.
    TRY(source_->open());
    struct archive* a = ar_.get();
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open(a, source_.get(), nullptr, source_read, nullptr) != ARCHIVE_OK)
      return failed(ErrorKind::kBadInput, "not a togo environment export");

    // What the env is, before anything big is read.
    ExportHeader h = TRY(header());
    if (opts_.check_header) TRY(opts_.check_header(h));
    std::string name = opts_.name.empty() ? h.name : opts_.name;
    if (TRY(st_.catalog().find_env(name)))
      return error(ErrorKind::kConflict, "an environment named " + name + " exists",
                   "give the imported one another name: `togo import FILE NEWNAME`");

    // The image's documents, then its layers (when the store lacks them).
    TRY_CTX(oci::parse_layout(TRY(document(std::string(oci::kLayoutFile)))),
            std::string(oci::kLayoutFile));
    oci::Index index = TRY_CTX(oci::parse_index(TRY(document(std::string(oci::kLayoutIndexFile)))),
                               std::string(oci::kLayoutIndexFile));
    if (index.manifests.size() != 1 || !oci::is_manifest_media_type(index.manifests[0].media_type))
      return error(ErrorKind::kBadInput, "index.json: expected exactly one image manifest");
    oci::Manifest manifest =
        TRY_CTX(oci::parse_manifest(TRY(blob(index.manifests[0]))), "the image manifest");
    std::string config = TRY_CTX(blob(manifest.config), "the image config");
    oci::ImageConfig parsed = TRY_CTX(oci::parse_config(config), "the image config");
    if (parsed.diff_ids.size() != manifest.layers.size())
      return error(ErrorKind::kBadInput,
                   "the manifest has " + std::to_string(manifest.layers.size()) +
                       " layers, the image config " + std::to_string(parsed.diff_ids.size()));
    // SECURITY: the image id names the content: the config, which names
    // every layer by the digest of its tar.
    if (Sha256::digest_of(config) != h.image_id)
      return error(ErrorKind::kBadInput,
                   "the image config does not match the image id in " + std::string(kExportHeader));

    EnvImportResult result;
    auto have = TRY(st_.catalog().find_image(h.image_id));
    if (have) {
      result.image_name = have->name;
      if (h.image_included)
        for (auto& l : manifest.layers) TRY(skip_blob(l));
      // The env runs on its image's trees: a pulled image is unpacked now.
      TRY(unpack_image(st_, *have, opts_.notice));
    } else if (!h.image_included) {
      std::string shown = h.image_name.empty() ? short_id(h.image_id)
                                               : h.image_name + " (" + short_id(h.image_id) + ")";
      return error(ErrorKind::kNotFound,
                   "its image " + shown +
                       " is not in this store, and the file leaves it out "
                       "(exported with --no-image)",
                   "import the image first (`togo image import`), or export with the image");
    } else {
      for (size_t i = 0; i < manifest.layers.size(); i++)
        TRY(layer(i, manifest.layers[i], parsed.diff_ids[i]));
      result.image_imported = true;
      result.image_name = TRY(image_name(h));
    }

    TRY(tree(h));

    // Into place and named, data first.
    store::EnvRecord env{
        store::new_env_id(),      name, h.image_id, h.rootfs, static_cast<int64_t>(::time(nullptr)),
        settings_text(h.settings)};
    store::ImageRecord img;
    int s = st_.fd();
    if (result.image_imported) {
      // One syncfs makes the staged layers and tree durable; then the
      // layers move into place.
      TRY(place_layers(st_, stage_, layers_));
      placed_ = true;
      for (auto& l : layers_) img.layers.push_back(l.record.digest);
      img.id = h.image_id;
      img.name = result.image_name;
      img.config = config;
      img.source = "import of " + opts_.what;
      img.created = static_cast<int64_t>(::time(nullptr));
    } else if (::syncfs(s) < 0) {
      return sys_error(errno, "syncing the store's filesystem");
    }
    TRY(sys::rename_at(s, stage_ + "/env", s, store::env_paths(env.id).dir, RENAME_NOREPLACE));
    env_dir_ = store::env_paths(env.id).dir;
    // A rename is durable once both directories are synced.
    TRY(fs::sync_dir_at(s, store::kEnvs));
    TRY(fs::sync_dir_at(s, stage_));
    TRY(st_.catalog().transaction([&]() -> Result<void> {
      for (auto& l : layers_)
        if (!l.known) {
          TRY(st_.catalog().put_layer(l.record));
          TRY(st_.catalog().clear_layer_damaged(l.record.digest));
        }
      if (result.image_imported) TRY(st_.catalog().put_image(img));
      return st_.catalog().put_env(env);
    }));
    placed_ = false;
    env_dir_.clear();
    result.env = env;
    return result;
  }

  // Removes what this import moved into the store before it failed; the
  // catalog never named any of it.
  void undo() {
    if (!env_dir_.empty()) (void)fs::remove_tree(st_.fd(), env_dir_);
    if (placed_) discard_placed(st_, layers_);
  }

  std::unexpected<Error> failed(ErrorKind kind, const std::string& what) {
    if (source_->read_errno()) return sys_error(source_->read_errno(), "reading " + opts_.what);
    const char* msg = archive_error_string(ar_.get());
    return error(kind, what + (msg ? std::string(": ") + msg : std::string()));
  }

  // The next entry, which must be the regular file `name`.
  Result<struct archive_entry*> next(const std::string& name) {
    struct archive_entry* e = nullptr;
    int rc = archive_read_next_header(ar_.get(), &e);
    if (rc == ARCHIVE_EOF)
      return error(ErrorKind::kBadInput, "the file ends before " + name + " (truncated?)");
    if (rc < ARCHIVE_WARN) return failed(ErrorKind::kBadInput, "reading the entry for " + name);
    const char* raw = archive_entry_pathname(e);
    auto clean = clean_entry_path(raw ? raw : "");
    if (!clean || *clean != name)
      return error(ErrorKind::kBadInput, "expected " + name + ", found " +
                                             printable_name(raw ? raw : "") + " (damaged file?)");
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
      return error(ErrorKind::kBadInput, name + ": not a regular file");
    return e;
  }

  Result<std::string> document(const std::string& name) {
    struct archive_entry* e = TRY(next(name));
    std::string data = TRY(contents(e, name));
    TRY(end_entry(name));
    return data;
  }

  // The data of the open entry `e`, a small regular file.
  Result<std::string> contents(struct archive_entry* e, const std::string& name) {
    int64_t size = archive_entry_size(e);
    if (size < 0 || size > kMaxDocument)
      return error(ErrorKind::kBadInput,
                   name + ": " + std::to_string(size) + " bytes, too large for a document");
    std::string data(static_cast<size_t>(size), '\0');
    size_t got = 0;
    while (got < data.size()) {
      la_ssize_t n = archive_read_data(ar_.get(), data.data() + got, data.size() - got);
      if (n < 0) return failed(ErrorKind::kBadInput, "reading " + name);
      if (n == 0) return error(ErrorKind::kBadInput, name + ": truncated");
      got += static_cast<size_t>(n);
    }
    return data;
  }

  // Consumes the rest of the current entry and its padding.
  Result<void> end_entry(const std::string& name) {
    if (archive_read_data_skip(ar_.get()) < ARCHIVE_WARN)
      return failed(ErrorKind::kBadInput, "reading " + name);
    return {};
  }

  Result<ExportHeader> header() {
    struct archive_entry* e = nullptr;
    int rc = archive_read_next_header(ar_.get(), &e);
    if (rc == ARCHIVE_EOF) return error(ErrorKind::kBadInput, "the file is empty");
    if (rc < ARCHIVE_WARN) return failed(ErrorKind::kBadInput, "not a togo environment export");
    const char* raw = archive_entry_pathname(e);
    if (!raw || std::string_view(raw) != kExportHeader)
      return error(ErrorKind::kBadInput,
                   "not a togo environment export (it does not start with " +
                       std::string(kExportHeader) + ")",
                   "`togo image import` reads images and root filesystem tarballs");
    std::string name(kExportHeader);
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
      return error(ErrorKind::kBadInput, name + ": not a regular file");
    std::string text = TRY(contents(e, name));  // read in place: the entry is open
    return TRY_CTX(parse_header(text), name);
  }

  // A document blob, checked against the descriptor that names it.
  Result<std::string> blob(const oci::Descriptor& d) {
    std::string data = TRY(document(oci::blob_path(d.digest)));
    // SECURITY: every document is checked against the digest that names it.
    if (static_cast<int64_t>(data.size()) != d.size || Sha256::digest_of(data) != d.digest)
      return error(ErrorKind::kBadInput, d.digest + ": content does not match its descriptor");
    return data;
  }

  Result<void> skip_blob(const oci::Descriptor& d) {
    TRY(next(oci::blob_path(d.digest)));
    return end_entry(d.digest);
  }

  // One layer blob, from the stream straight into stage_layer (which reads
  // an fd) through a socket pair fed by a second thread.
  Result<void> layer(size_t i, const oci::Descriptor& d, const std::string& diff_id) {
    std::string what = "layer " + std::to_string(i + 1) + " (" + short_id(d.digest) + ")";
    TRY_CTX(oci::layer_compression(d.media_type), what);
    auto known = TRY(st_.catalog().find_known_layer(d.digest));
    if (known && known->unpacked && !known->diff_id.empty() && known->diff_id != diff_id)
      return error(ErrorKind::kBadInput, what + ": the config gives diff_id " + diff_id +
                                             ", the stored layer has " + known->diff_id);
    // A layer stored packed is unpacked from the file, which has its blob
    // (and the content decides a diff_id that only another image claimed).
    if (known && known->unpacked) {
      TRY(skip_blob(d));
      layers_.push_back({*known, true});
      return {};
    }
    struct archive_entry* e = TRY(next(oci::blob_path(d.digest)));
    if (archive_entry_size(e) != d.size || archive_entry_sparse_count(e) > 0)
      return error(ErrorKind::kBadInput, what + ": the entry does not match its descriptor");
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
      return sys_error(errno, "socketpair");
    Fd rd(sv[0]), wr(sv[1]);
    std::optional<Error> pump_error;
    std::thread pump([&, w = std::move(wr)]() mutable {
      for (;;) {
        const void* p;
        size_t n;
        la_int64_t off;
        int rc = archive_read_data_block(ar_.get(), &p, &n, &off);
        if (rc == ARCHIVE_EOF) break;
        if (rc < ARCHIVE_WARN) {
          pump_error = failed(ErrorKind::kBadInput, "reading " + what).error();
          break;
        }
        auto* c = static_cast<const char*>(p);
        while (n > 0) {
          ssize_t sent = ::send(w.get(), c, n, MSG_NOSIGNAL);
          if (sent < 0 && errno == EINTR) continue;
          if (sent < 0) return;  // stage_layer stopped reading: it says why
          c += sent;
          n -= static_cast<size_t>(sent);
        }
      }
    });
    LayerExpect expect{d.digest, d.size, diff_id, what};
    auto staged = stage_layer(st_, stage_, static_cast<int>(i), rd.get(), expect, opts_.notice);
    rd.reset();
    pump.join();
    if (pump_error) return std::unexpected(std::move(*pump_error));
    layers_.push_back(TRY(std::move(staged)));
    return end_entry(what);
  }

  // The name the image gets here: its own, unless that names other
  // content in this store; then its id, and this store's names stay.
  Result<std::string> image_name(const ExportHeader& h) {
    if (h.image_name.empty()) return h.image_id;
    auto taken = TRY(st_.catalog().find_image(h.image_name));
    if (!taken) return h.image_name;
    if (opts_.notice)
      opts_.notice("image " + h.image_name +
                   " in this store is other content; the imported "
                   "image is named by its id, " +
                   short_id(h.image_id));
    return h.image_id;
  }

  // The writable tree, then the env's other directories around it.
  Result<void> tree(const ExportHeader& h) {
    int s = st_.fd();
    std::string dir = stage_ + "/env";
    TRY(sys::mkdir_at(s, dir, 0755));
    Fd root = TRY(sys::open_at(s, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    UnpackOptions uo;
    uo.whiteouts = WhiteoutMode::kOverlay;
    uo.rootless = ::geteuid() != 0;
    uo.warn = opts_.notice;
    std::string top(h.rootfs == "overlay" ? kExportUpper : kExportRootfs);
    // The tree's bytes are digested from here (the image's last entry read
    // to its end, padding included) to the trailer.
    uint64_t tree_start = static_cast<uint64_t>(archive_filter_bytes(ar_.get(), 0));
    source_->start_digest(tree_start);
    auto stats = unpack(ar_.get(), root.get(), uo);
    if (!stats) {
      if (source_->read_errno()) return sys_error(source_->read_errno(), "reading " + opts_.what);
      return std::unexpected(std::move(stats.error()).context("the environment's files"));
    }
    // Nothing but the tree and the trailer.
    auto names = TRY_CTX(fs::read_dir(root.get()), "reading what was unpacked");
    std::sort(names.begin(), names.end());
    std::vector<std::string> want = {std::string(kExportTrailer), top};
    std::sort(want.begin(), want.end());
    if (names != want) {
      if (std::find(names.begin(), names.end(), std::string(kExportTrailer)) == names.end())
        return error(ErrorKind::kBadInput,
                     "the file ends before " + std::string(kExportTrailer) + " (truncated?)");
      return error(ErrorKind::kBadInput, "unexpected entries beside " + top + "/");
    }
    auto st = TRY(sys::stat_at(root.get(), top, AT_SYMLINK_NOFOLLOW));
    if (!S_ISDIR(st.st_mode)) return error(ErrorKind::kBadInput, top + ": not a directory");
    Fd trailer_fd =
        TRY(sys::open_at(root.get(), std::string(kExportTrailer), O_RDONLY | O_NOFOLLOW));
    // The trailer is a few lines; anything larger is not one.
    if (struct stat ts; ::fstat(trailer_fd.get(), &ts) == 0 && ts.st_size > (4 << 10))
      return error(ErrorKind::kBadInput, std::string(kExportTrailer) + ": larger than a trailer (damaged?)");
    ExportTrailer trailer =
        TRY_CTX(parse_trailer(TRY(sys::read_all(trailer_fd.get(), std::string(kExportTrailer)))),
                std::string(kExportTrailer));
    if (trailer.entries + 1 != stats->entries)
      return error(ErrorKind::kBadInput,
                   "the file holds " + std::to_string(stats->entries - 1) +
                       " entries of the environment's files, its trailer says " +
                       std::to_string(trailer.entries) + " (damaged?)");
    // SECURITY (integrity): the tree as read is the tree as written.
    std::string digest = TRY(source_->digest_until(tree_start + trailer.bytes));
    if (digest != trailer.digest)
      return error(ErrorKind::kBadInput, "the environment's files are damaged (their digest " +
                                             digest.substr(7, 12) + " is not the " +
                                             trailer.digest.substr(7, 12) + " the file gives)");
    TRY(sys::unlink_at(root.get(), std::string(kExportTrailer)));
    // The rest of an env's directory, as store::create_env makes it.
    for (const char* sub : {"upper", "work", "mount", "run"})
      TRY(sys::ensure_dir_at(root.get(), sub, 0755));
    TRY(fs::write_file_atomic(root.get(), "lock", "", 0644));
    return {};
  }

  store::Store& st_;
  const EnvImportOptions& opts_;
  std::unique_ptr<ImportSource> source_;  // declared before ar_: freed after it
  ArchivePtr ar_;
  std::string stage_;
  std::vector<StagedLayer> layers_;
  bool placed_ = false;  // layers_ moved into place, not yet named
  std::string env_dir_;  // the env's directory once moved into place
};

}  // namespace

Result<EnvImportResult> import_env_archive(store::Store& st, int in, const EnvImportOptions& opts) {
  auto lock = TRY(st.lock_for_writing("import " + opts.what));
  return Importer(st, in, opts).run();
}

}  // namespace togo::image
