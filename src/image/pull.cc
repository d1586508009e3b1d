#include "image/pull.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <thread>
#include <variant>
#include <vector>

#include "base/fs.h"
#include "base/parallel.h"
#include "base/sys.h"
#include "image/import.h"
#include "image/unpack_image.h"
#include "store/layout.h"

namespace togo::image {
namespace {

constexpr int64_t kMaxConfig = 8 << 20;
constexpr int kMaxIndexDepth = 4;

/// The image a reference resolves to, its manifest and config verified.
struct Resolved {
  std::string manifest_digest;
  oci::Manifest manifest;
  std::string config;  // byte for byte, as its digest names it
  oci::ImageConfig parsed;
};

/// One layer of the image, with where its blob is being downloaded.
struct Layer {
  LayerExpect expect;
  size_t first = 0;  // index of the first layer with the same digest
  Fd partial;        // the downloaded blob, verified and durable
  bool fetched = false;  // downloaded by this pull
  bool unpacking = false;  // --unpack: unpacked by this pull
};

std::string blob_hex(std::string_view digest) { return std::string(digest.substr(7)); }

std::unexpected<Error> bad(const Registry& reg, const std::string& what) {
  return error(ErrorKind::kBadInput, "pulling " + reg.name() + ": " + what);
}

std::unexpected<Error> with_prefix(Error e, const std::string& prefix) {
  return std::unexpected(std::move(e).context(prefix));
}

/// "pulling R: <what>: ..." from a registry error "pulling R: ...", so
/// every error names the image first, then the layer.
Error in_layer(Error e, const Registry& reg, const std::string& what) {
  std::string head = "pulling " + reg.name() + ": ";
  if (e.message.starts_with(head)) e.message.insert(head.size(), what + ": ");
  else e = std::move(e).context(head + what);
  return e;
}

/// True if `dir/name` is the file open as `fd`.
bool names_file(int dir, const std::string& name, int fd) {
  struct stat mine, named;
  return ::fstat(fd, &mine) == 0 && ::fstatat(dir, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 &&
         mine.st_ino == named.st_ino && mine.st_dev == named.st_dev;
}

/// Removes the partial download of `digest` if the name still refers to
/// `fd`'s file (another pull may have made a new one since).
void remove_partial(int dir, std::string_view digest, int fd) {
  std::string name = blob_hex(digest) + kPartialSuffix;
  if (names_file(dir, name, fd)) ::unlinkat(dir, name.c_str(), 0);
}

/// A small blob (the config) fetched into memory, verified.
Result<std::string> fetch_small_blob(Registry& reg, const oci::Descriptor& d) {
  if (d.size > kMaxConfig)
    return bad(reg, "config " + d.digest + ": " + std::to_string(d.size) + " bytes, too large for an image config");
  Fd fd(::memfd_create("togo-config", MFD_CLOEXEC));
  if (!fd.valid()) return sys_error(errno, "memfd_create");
  TRY(reg.fetch_blob(d.digest, static_cast<uint64_t>(d.size), fd.get()));
  if (::lseek(fd.get(), 0, SEEK_SET) < 0) return sys_error(errno, "lseek");
  return sys::read_all(fd.get(), "config");
}

/// The manifest `ref` names, through indexes by platform, and its config.
Result<Resolved> resolve(Registry& reg, const Reference& ref, const PullOptions& o) {
  FetchedManifest m = TRY(reg.get_manifest(ref.manifest_ref()));
  oci::Platform want = o.platform.value_or(oci::host_platform());
  std::string what = "manifest " + ref.manifest_ref();
  Resolved out;
  for (int depth = 0;; depth++) {
    // SECURITY: what the registry says a document is must be a manifest or
    // an index; anything else (schema 1, configs, artifacts) is refused.
    if (!m.media_type.empty() && !oci::is_manifest_media_type(m.media_type) &&
        !oci::is_index_media_type(m.media_type))
      return bad(reg, what + ": unsupported media type \"" + m.media_type +
                          "\" (expected an OCI or Docker schema 2 manifest or index)");
    auto doc = oci::parse_any_manifest(m.bytes, m.media_type);
    if (!doc) return with_prefix(std::move(doc.error()), "pulling " + reg.name() + ": " + what);
    if (auto* man = std::get_if<oci::Manifest>(&*doc)) {
      out.manifest = std::move(*man);
      out.manifest_digest = m.digest;
      break;
    }
    if (depth >= kMaxIndexDepth) return bad(reg, what + ": indexes nested too deep");
    auto picked = oci::pick_platform(std::get<oci::Index>(*doc), want);
    if (!picked) return with_prefix(std::move(picked.error()), "pulling " + reg.name() + ": " + what);
    m = TRY(reg.get_manifest(picked->digest));  // verified against the digest
    what = "manifest " + picked->digest;
    if (static_cast<int64_t>(m.bytes.size()) != picked->size)
      return bad(reg, what + ": " + std::to_string(m.bytes.size()) + " bytes, the index says " +
                          std::to_string(picked->size));
  }
  const oci::Descriptor& cd = out.manifest.config;
  if (!oci::is_config_media_type(cd.media_type))
    return bad(reg, what + ": not a container image (its config is of type \"" + cd.media_type + "\")");
  out.config = TRY(fetch_small_blob(reg, cd));
  auto parsed = oci::parse_config(out.config);
  if (!parsed) return with_prefix(std::move(parsed.error()), "pulling " + reg.name() + ": config " + cd.digest);
  out.parsed = std::move(*parsed);
  if (out.parsed.diff_ids.size() != out.manifest.layers.size())
    return bad(reg, what + ": the manifest has " + std::to_string(out.manifest.layers.size()) +
                        " layers, its config " + std::to_string(out.parsed.diff_ids.size()));
  oci::Platform got{out.parsed.os, out.parsed.architecture, out.parsed.variant, {}, {}};
  if (got.os != want.os || got.architecture != want.architecture) {
    if (o.platform)
      return error(ErrorKind::kNotFound, "pulling " + reg.name() + ": " + what + ": the image is for " +
                                             got.str() + " only, not " + want.str());
    if (o.notice) o.notice("warning: " + ref.str() + " is a " + got.str() + " image; this host is " + want.str());
  }
  return out;
}

/// Opens (creating) the partial download of `digest` and locks it, waiting
/// while another togo downloads the same blob. nullopt if that one removed
/// it meanwhile: it has stored the layer, which the caller looks for again.
Result<std::optional<Fd>> open_partial(int dir, const std::string& digest, const Notice& notice) {
  std::string name = blob_hex(digest) + kPartialSuffix;
  for (int attempt = 0;; attempt++) {
    Fd fd = TRY(sys::open_at(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW, 0644));
    bool waited = false;
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
      if (errno != EWOULDBLOCK) return sys_error(errno, "locking " + name);
      if (notice) notice("waiting for another togo that downloads " + digest.substr(0, 19));
      while (::flock(fd.get(), LOCK_EX) < 0)
        if (errno != EINTR) return sys_error(errno, "locking " + name);
      waited = true;
    }
    // The name must still be this file's: a finished download is moved
    // into the store (then it is a blob nobody may write) or removed.
    if (names_file(dir, name, fd.get())) return std::optional<Fd>(std::move(fd));
    if (waited) return std::nullopt;
    // Removed between open and lock (by gc): open it again.
    if (attempt >= 3)
      return error(ErrorKind::kConflict, name + ": removed again and again while opened", "pull again");
  }
}

/// Downloads the layers in `todo` (indexes into `layers`), `jobs` at a time,
/// each worker on its own connection. Returns the first error.
Result<void> download(Registry& main_reg, const Reference& ref, const RegistryOptions& ropts, int dir,
                      std::vector<Layer>& layers, const std::vector<size_t>& todo, const PullOptions& o) {
  size_t count = layers.size();
  auto one = [&](Registry& reg, size_t i) -> Result<void> {
    Layer& l = layers[i];
    const std::string& digest = l.expect.digest;
    uint64_t total = static_cast<uint64_t>(l.expect.size);
    auto opened = open_partial(dir, digest, o.notice);
    if (!opened) return std::unexpected(in_layer(std::move(opened.error()), reg, l.expect.what));
    if (!*opened) return {};  // another pull stored it
    Fd fd = std::move(**opened);
    struct stat st;
    if (::fstat(fd.get(), &st) < 0) return sys_error(errno, l.expect.what);
    auto emit = [&](TransferEvent::Kind kind, uint64_t done) {
      if (o.progress) o.progress({kind, i, count, digest, total, done, {}});
    };
    emit(TransferEvent::Kind::kStart, std::min<uint64_t>(static_cast<uint64_t>(st.st_size), total));
    auto r = reg.fetch_blob(digest, total, fd.get(), [&](uint64_t n) { emit(TransferEvent::Kind::kBytes, n); });
    if (!r) {
      // Bytes that proved wrong are of no use to a retry; bytes cut short
      // by the network are, unless there are none.
      if (r.error().kind == ErrorKind::kBadInput ||
          (::fstat(fd.get(), &st) == 0 && st.st_size == 0))
        remove_partial(dir, digest, fd.get());
      return std::unexpected(in_layer(std::move(r.error()), reg, l.expect.what));
    }
    // Durable before anything names it, synced while other layers still
    // download.
    if (auto synced = sys::fsync(fd.get(), "the download"); !synced)
      return std::unexpected(in_layer(std::move(synced.error()), reg, l.expect.what));
    // Complete and verified: nobody writes it again. Unlocked, so that
    // pulls waiting for it go on (holding it until our commit could make
    // two pulls of the same layers wait for each other).
    ::flock(fd.get(), LOCK_UN);
    emit(TransferEvent::Kind::kDone, total);
    l.partial = std::move(fd);
    l.fetched = true;
    return {};
  };
  size_t workers = static_cast<size_t>(std::max(o.jobs, 1));
  std::vector<std::optional<Registry>> regs(workers);
  return in_parallel(todo.size(), workers, [&](size_t w, size_t j) -> Result<void> {
    if (w == 0) return one(main_reg, todo[j]);
    if (!regs[w]) regs[w].emplace(ref, ropts);
    return one(*regs[w], todo[j]);
  });
}

/// The layers of `img` that the catalog does not know (find_known_layer)
/// and that are not downloaded.
Result<std::vector<size_t>> missing(store::Store& st, const std::vector<Layer>& layers) {
  std::vector<size_t> out;
  for (size_t i = 0; i < layers.size(); i++) {
    const Layer& l = layers[i];
    if (l.first != i || l.partial.valid()) continue;
    if (!TRY(st.catalog().find_known_layer(l.expect.digest))) out.push_back(i);
  }
  return out;
}

/// Moves the verified, durable download of layer `i` to stage/<i>.blob, as
/// a packed layer: renamed if the partial file's name is still its own,
/// else (gc removed the name, or a newer download took it) copied from the
/// open descriptor. Locked first, so no other pull writes it meanwhile:
/// whoever holds the lock of a download only reads or writes it, and never
/// waits for the writer lock, so the wait ends.
Result<StagedLayer> stage_download(store::Store& st, int dir, const std::string& stage, size_t i, Layer& l) {
  int fd = l.partial.get();
  const std::string& what = l.expect.what;
  while (::flock(fd, LOCK_EX) < 0)
    if (errno != EINTR) return sys_error(errno, what + ": locking the download");
  std::string name = blob_hex(l.expect.digest) + kPartialSuffix;
  std::string blob = stage + "/" + std::to_string(i) + ".blob";
  if (names_file(dir, name, fd)) {
    TRY(sys::rename_at(dir, name, st.fd(), blob));
    if (::fchmod(fd, 0444) < 0) return sys_error(errno, what + ": chmod");
  } else {
    Fd copy = TRY(sys::open_at(st.fd(), blob, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0444));
    TRY(fs::copy_file(fd, copy.get(), what));
    TRY(sys::fsync(copy.get(), what));
  }
  char head[8];
  ssize_t n = ::pread(fd, head, sizeof head, 0);
  if (n < 0) return sys_error(errno, what);
  l.partial.reset();
  store::LayerRecord rec{l.expect.digest, static_cast<uint64_t>(l.expect.size), 0, l.expect.diff_id,
                         sniff_media_type(std::string_view(head, static_cast<size_t>(n))), "", false};
  return StagedLayer{rec, false};
}

/// Under the writer lock: stages each layer the catalog lacks (or with
/// --unpack, lacks unpacked), several at a time, each worker with its own
/// catalog connection, and commits the image, reusing layers the catalog
/// has.
Result<store::ImageRecord> commit(store::Store& st, int dir, const std::string& stage, const Resolved& img,
                                  std::vector<Layer>& layers, const ImportOptions& io, const PullOptions& o) {
  std::vector<std::optional<StagedLayer>> staged(layers.size());
  std::vector<std::optional<store::LayerRecord>> packed(layers.size());  // stored, to unpack now
  std::vector<bool> unpack(layers.size(), o.unpack);
  std::vector<size_t> todo;
  for (size_t i = 0; i < layers.size(); i++) {
    Layer& l = layers[i];
    if (l.first != i) continue;
    auto known = TRY(st.catalog().find_layer(l.expect.digest));
    if (known && l.partial.valid() && known->damaged) {
      // `togo fsck` marked it damaged: the download replaces it, unpacked
      // if it was, as envs may stand on it.
      unpack[i] = o.unpack || known->unpacked;
      todo.push_back(i);
    } else if (known) {
      bool differs = !known->diff_id.empty() && known->diff_id != l.expect.diff_id;
      if (differs && known->unpacked)
        return error(ErrorKind::kBadInput, l.expect.what + ": the config gives diff_id " + l.expect.diff_id +
                                               ", the stored layer has " + known->diff_id);
      if (known->unpacked || (!o.unpack && !differs)) {
        staged[i] = StagedLayer{*known, true};
      } else {
        // Unpacked now; where the diff_id a packed layer carries is only
        // another image's claim, its content decides against this one.
        packed[i] = *known;
        packed[i]->diff_id = l.expect.diff_id;
        todo.push_back(i);
      }
    } else if (!l.partial.valid()) {
      return error(ErrorKind::kConflict, l.expect.what + ": removed from the store by another togo while pulling",
                   "pull again");
    } else {
      todo.push_back(i);
    }
  }
  size_t workers = std::min<size_t>(static_cast<size_t>(std::max(o.jobs, 1)),
                                    std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::optional<store::Store>> stores(workers);
  TRY(in_parallel(todo.size(), workers, [&](size_t w, size_t j) -> Result<void> {
    size_t i = todo[j];
    Layer& l = layers[i];
    if (!unpack[i] && !packed[i]) {
      staged[i] = TRY(stage_download(st, dir, stage, i, l));
      return {};
    }
    if (o.progress)
      o.progress({TransferEvent::Kind::kUnpacking, i, layers.size(), l.expect.digest,
                  static_cast<uint64_t>(l.expect.size), static_cast<uint64_t>(l.expect.size), {}});
    l.unpacking = true;
    if (packed[i]) {
      staged[i] = TRY(stage_stored_layer(st, stage, static_cast<int>(i), *packed[i], l.expect.what, o.notice));
      return {};
    }
    if (w > 0 && !stores[w]) stores[w].emplace(TRY(store::Store::open(st.path(), store::Store::Access::kRead)));
    if (::lseek(l.partial.get(), 0, SEEK_SET) < 0) return sys_error(errno, l.expect.what);
    staged[i] = TRY(stage_layer(w == 0 ? st : *stores[w], stage, static_cast<int>(i), l.partial.get(), l.expect,
                                o.notice));
    // The staged copy is durable now. The download goes at once, so that
    // its pages, still dirty, are dropped instead of written out by the
    // syncfs that makes the staged layers durable.
    remove_partial(dir, l.expect.digest, l.partial.get());
    l.partial.reset();
    return {};
  }));
  // The renames out of the downloads are durable too: a name there must
  // never come back as a second name of a blob. So is the staging directory
  // they went to: nothing else (no syncfs, as unpacking makes) syncs its name.
  if (std::find(unpack.begin(), unpack.end(), false) != unpack.end()) {
    TRY(fs::sync_dir(dir, store::kDownloads));
    TRY(fs::sync_dir_at(st.fd(), store::kTmp));
  }
  NewImage image;
  image.config = img.config;
  for (size_t i = 0; i < layers.size(); i++)  // the same blob twice in one image is stored once
    image.layers.push_back(layers[i].first == i ? *staged[i] : StagedLayer{staged[layers[i].first]->record, true});
  return commit_image(st, stage, image, io);
}

}  // namespace

Result<RegistryOptions> registry_options(const Reference& ref, const TransferOptions& o, bool push) {
  RegistryOptions ro;
  ro.creds = o.creds;
  if (!ro.creds) ro.creds = TRY(credentials_for(ref.registry, o.notice));
  ro.insecure = o.insecure;
  ro.push = push;
  ro.http = o.http;
  return ro;
}

Result<store::ImageRecord> pull(store::Store& st, const Reference& ref, const PullOptions& o) {
  std::string name = o.name.empty() ? ref.short_name() : o.name;
  auto named = check_image_name(name);
  if (!named) {
    if (o.name.empty()) named.error().hint = "name it with --name NAME";
    return std::unexpected(std::move(named.error()));
  }
  RegistryOptions ropts = TRY(registry_options(ref, o, false));
  Registry reg(ref, ropts);
  Resolved img = TRY(resolve(reg, ref, o));

  std::vector<Layer> layers(img.manifest.layers.size());
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < layers.size(); i++) {
    const oci::Descriptor& d = img.manifest.layers[i];
    std::string what = "layer " + std::to_string(i + 1) + "/" + std::to_string(layers.size());
    if (auto c = oci::layer_compression(d.media_type); !c)
      return bad(reg, what + " (" + d.digest + "): " + c.error().message);
    layers[i].expect = {d.digest, d.size, img.parsed.diff_ids[i], what};
    layers[i].first = seen.emplace(d.digest, i).first->second;
  }

  TRY(sys::ensure_dir_at(st.fd(), store::kTmp, 0755));
  TRY(sys::ensure_dir_at(st.fd(), store::kDownloads, 0755));
  Fd dir = TRY(sys::open_at(st.fd(), store::kDownloads, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));

  ImportOptions io;
  io.name = name;
  io.source = ref.str() + (ref.digest.empty() ? "@" + img.manifest_digest : "");
  io.notice = o.notice;
  // Downloads run without the writer lock. A layer another togo removed
  // meanwhile (or stored, then dropped again) is fetched in another round.
  for (int round = 0;; round++) {
    std::vector<size_t> todo = TRY(missing(st, layers));
    if (round == 0 && o.progress)
      for (size_t i = 0; i < layers.size(); i++)
        if (layers[i].first == i && std::find(todo.begin(), todo.end(), i) == todo.end())
          o.progress({TransferEvent::Kind::kSkipped, i, layers.size(), layers[i].expect.digest,
                      static_cast<uint64_t>(layers[i].expect.size), 0, "already stored"});
    TRY(download(reg, ref, ropts, dir.get(), layers, todo, o));

    auto lock = TRY(st.lock_for_writing("image pull " + name));
    if (!TRY(missing(st, layers)).empty() && round < 3) continue;
    std::string stage = TRY(st.make_staging_dir());
    auto r = commit(st, dir.get(), stage, img, layers, io, o);
    (void)fs::remove_tree(st.fd(), stage);
    // Downloads not staged yet are kept for a retry, unless they proved
    // useless.
    bool drop = r || r.error().kind == ErrorKind::kBadInput;
    for (auto& l : layers)
      if (l.partial.valid() && drop) remove_partial(dir.get(), l.expect.digest, l.partial.get());
    if (!r) return with_prefix(std::move(r.error()), "pulling " + reg.name());
    // The same image was there, packed: its layers are unpacked now.
    if (o.unpack) TRY(unpack_image(st, *r, o.notice));
    if (o.progress)
      for (size_t i = 0; i < layers.size(); i++)
        if (layers[i].unpacking)
          o.progress({TransferEvent::Kind::kDone, i, layers.size(), layers[i].expect.digest,
                      static_cast<uint64_t>(layers[i].expect.size), static_cast<uint64_t>(layers[i].expect.size), {}});
    TRY(remove_unused_layers(st));
    return r;
  }
}

}  // namespace togo::image
