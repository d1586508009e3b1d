// The new layer of a commit: packed by a child (write_env_layer), read here
// from a pipe, compressed and hashed twice in one pass, and streamed into
// stage_layer like any imported layer, which keeps the blob, unpacks it and
// takes both hashes again.
#include "image/commit.h"

#include <archive.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <thread>

#include "base/fs.h"
#include "base/json.h"
#include "base/sys.h"
#include "store/layout.h"

namespace togo::image {

namespace {

constexpr size_t kChunk = 1 << 20;

using Emit = std::function<Result<void>(const char*, size_t)>;

// A streaming compressor: put() takes input, emit() receives output.
class Compressor {
 public:
  explicit Compressor(LayerCompression kind) : kind_(kind), out_(kChunk) {}
  ~Compressor() {
    if (zstd_) ZSTD_freeCCtx(zstd_);
    if (gzip_open_) deflateEnd(&gzip_);
  }
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  Result<void> start() {
    if (kind_ == LayerCompression::kZstd) {
      zstd_ = ZSTD_createCCtx();
      if (!zstd_) return error("zstd: out of memory");
      ZSTD_CCtx_setParameter(zstd_, ZSTD_c_compressionLevel, 3);
      return {};
    }
    // windowBits 15 + 16: a gzip wrapper, whose header has no name and
    // mtime 0, so one tar always gives one blob.
    if (deflateInit2(&gzip_, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return error("gzip: cannot start the compressor");
    gzip_open_ = true;
    return {};
  }

  Result<void> put(const char* p, size_t n, bool last, const Emit& emit) {
    if (kind_ == LayerCompression::kZstd) {
      ZSTD_inBuffer in{p, n, 0};
      for (;;) {
        ZSTD_outBuffer out{out_.data(), out_.size(), 0};
        size_t left = ZSTD_compressStream2(zstd_, &out, &in, last ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left)) return error(std::string("zstd: ") + ZSTD_getErrorName(left));
        if (out.pos) TRY(emit(out_.data(), out.pos));
        if (last ? left == 0 : in.pos == in.size) return {};
      }
    }
    gzip_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(p));
    gzip_.avail_in = static_cast<uInt>(n);
    for (;;) {
      gzip_.next_out = reinterpret_cast<Bytef*>(out_.data());
      gzip_.avail_out = static_cast<uInt>(out_.size());
      int rc = deflate(&gzip_, last ? Z_FINISH : Z_NO_FLUSH);
      if (rc == Z_STREAM_ERROR) return error("gzip: the compressor failed");
      size_t made = out_.size() - gzip_.avail_out;
      if (made) TRY(emit(out_.data(), made));
      if (last ? rc == Z_STREAM_END : gzip_.avail_out != 0) return {};
    }
  }

 private:
  LayerCompression kind_;
  std::vector<char> out_;
  ZSTD_CCtx* zstd_ = nullptr;
  z_stream gzip_{};
  bool gzip_open_ = false;
};

// Reads the tar from `in` to its end, giving it compressed to `out`. It is
// hashed once, by stage_layer on the other end.
Result<void> compress(int in, LayerCompression kind, const Emit& out) {
  Compressor c(kind);
  TRY(c.start());
  std::vector<char> buf(kChunk);
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(errno, "reading the packed layer");
    TRY(c.put(buf.data(), static_cast<size_t>(n), n == 0, out));
    if (n == 0) break;
  }
  return {};
}

// To a socket whose reader may stop early: EPIPE, not SIGPIPE.
Result<void> send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t sent = ::send(fd, p, n, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0) return sys_error(errno, "writing the layer blob");
    p += sent;
    n -= static_cast<size_t>(sent);
  }
  return {};
}

// Compresses the tar from `in` and stages the blob as layer `n` of `stage`:
// a second thread compresses into a socket pair, stage_layer keeps the blob
// and unpacks it from the other end, so the blob is written and hashed once.
Result<StagedLayer> stage_new_layer(store::Store& st, const std::string& stage, int n, int in,
                                    const CommitOptions& opts) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return sys_error(errno, "socketpair");
  Fd rd(sv[0]), wr(sv[1]);
  std::optional<Result<void>> c;
  std::thread pump([&] {
    c = compress(in, opts.compression,
                 [&](const char* p, size_t len) { return send_all(wr.get(), p, len); });
    wr.reset();  // the end of the blob
  });
  // The layer is ours, not a stranger's: no limits against bombs (a file
  // of zeros compresses far past any ratio they allow).
  LayerExpect expect{"", -1, "", "the new layer"};
  auto staged = stage_layer(st, stage, n, rd.get(), expect, opts.notice, LayerLimits::none());
  rd.reset();  // a compressor still writing gets EPIPE
  pump.join();
  // EPIPE: stage_layer stopped first, and has its own reason.
  if (!*c && c->error().err != EPIPE) return std::unexpected(std::move(c->error()));
  StagedLayer layer = TRY(std::move(staged));
  if (!*c) return std::unexpected(std::move(c->error()));
  return layer;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& ch : out)
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
  return out;
}

std::unexpected<Error> bad_change(std::string_view change, const std::string& why) {
  return error(ErrorKind::kUsage, "--change " + std::string(change) + ": " + why,
               "use KEY=VALUE with KEY one of CMD, ENTRYPOINT, ENV, LABEL, WORKDIR, USER, "
               "EXPOSE, VOLUME, STOPSIGNAL");
}

// CMD and ENTRYPOINT: a JSON array of strings, or a command for /bin/sh -c.
Result<std::vector<std::string>> command_of(std::string_view change, std::string_view v) {
  if (v.empty()) return std::vector<std::string>{};
  if (v.front() != '[') return std::vector<std::string>{"/bin/sh", "-c", std::string(v)};
  auto doc = json::parse(v);
  if (!doc || !doc->is_array()) return bad_change(change, "not a JSON array of strings");
  std::vector<std::string> out;
  for (auto& item : doc->items()) {
    if (!item.is_string()) return bad_change(change, "not a JSON array of strings");
    out.push_back(item.as_string());
  }
  return out;
}

// "K=V" or "K V" for ENV and LABEL.
Result<std::pair<std::string, std::string>> key_value(std::string_view change, std::string_view v) {
  size_t cut = v.find('=');
  if (cut == std::string_view::npos) cut = v.find(' ');
  if (cut == 0 || cut == std::string_view::npos) return bad_change(change, "expected NAME=VALUE");
  return std::pair{std::string(v.substr(0, cut)), std::string(v.substr(cut + 1))};
}

void add_sorted(std::vector<std::string>& list, std::string item) {
  if (std::find(list.begin(), list.end(), item) == list.end()) list.push_back(std::move(item));
  std::sort(list.begin(), list.end());
}

}  // namespace

Result<LayerCompression> parse_layer_compression(std::string_view s) {
  if (s == "zstd") return LayerCompression::kZstd;
  if (s == "gzip") return LayerCompression::kGzip;
  return error(ErrorKind::kUsage, "--compression " + std::string(s) + ": not zstd or gzip");
}

bool commit_replaces_layers(const store::EnvRecord& env) { return env.rootfs == "copy"; }

Result<PackStats> write_env_layer(int store_fd, const store::EnvRecord& env, int out) {
  bool copy = commit_replaces_layers(env);
  store::EnvPaths p = store::env_paths(env.id);
  // SECURITY: the env's tree is opened beneath the store, no symlink followed;
  // pack() walks it by directory fds from there.
  Fd root = TRY(sys::open_dir_beneath(store_fd, copy ? p.rootfs : p.upper));
  std::unique_ptr<struct archive, decltype(&archive_write_free)> aw(archive_write_new(),
                                                                    archive_write_free);
  archive_write_set_format_pax_restricted(aw.get());
  archive_write_add_filter_none(aw.get());
  archive_write_set_bytes_in_last_block(aw.get(), 1);
  if (archive_write_open_fd(aw.get(), out) != ARCHIVE_OK)
    return error(std::string("writing the layer: ") + archive_error_string(aw.get()));
  PackOptions opts;
  opts.overlay_whiteouts = !copy;
  PackStats stats = TRY(pack(aw.get(), root.get(), opts));
  if (archive_write_close(aw.get()) != ARCHIVE_OK)
    return error(std::string("writing the layer: ") + archive_error_string(aw.get()));
  return stats;
}

Result<store::ImageRecord> commit_env(store::Store& st, const store::EnvRecord& env,
                                      const store::ImageRecord& base, int tar,
                                      const CommitOptions& opts) {
  TRY(check_image_name(opts.name));
  std::string stage = TRY(st.make_staging_dir());
  auto work = [&]() -> Result<store::ImageRecord> {
    bool replace = commit_replaces_layers(env);
    NewImage image;
    std::vector<std::string> base_diff_ids;
    if (!replace)
      for (auto& digest : base.layers) {
        auto rec = TRY(st.catalog().find_layer(digest));
        if (!rec)
          return error(
              ErrorKind::kFailed,
              "layer " + digest + " of image " + base.name + " is missing from the catalog",
              "run `togo fsck`");
        base_diff_ids.push_back(rec->diff_id);
        image.layers.push_back({*rec, true});
      }
    image.layers.push_back(
        TRY(stage_new_layer(st, stage, static_cast<int>(image.layers.size()), tar, opts)));
    std::string diff_id = image.layers.back().record.diff_id;
    image.config =
        TRY(commit_config(base.config, base_diff_ids, replace, diff_id, rfc3339_now(), opts));
    ImportOptions io{opts.name, "commit of " + env.name, opts.notice, opts.before_commit, {}};
    return commit_image(st, stage, image, io);
  }();
  (void)fs::remove_tree(st.fd(), stage);
  if (!work) return work;
  TRY(remove_unused_layers(st));
  return work;
}

Result<std::string> commit_config(std::string_view base_config,
                                  const std::vector<std::string>& base_diff_ids, bool replace,
                                  const std::string& diff_id, const std::string& created,
                                  const CommitOptions& opts) {
  oci::ImageConfig c;
  if (auto parsed = oci::parse_config(base_config)) {
    c = std::move(*parsed);
    if (!replace && c.diff_ids.size() != base_diff_ids.size())
      return error(ErrorKind::kBadInput,
                   "the image's config lists " + std::to_string(c.diff_ids.size()) +
                       " layers, the image has " + std::to_string(base_diff_ids.size()),
                   "run `togo fsck`");
  } else if (!base_config.empty() && base_config != "{}") {
    return error(ErrorKind::kFailed, "the image's config is damaged", "run `togo fsck`");
  } else {
    // A config from before configs were kept ("{}"): one for this host.
    if (!replace)
      for (auto& d : base_diff_ids)
        if (d.empty())
          return error(ErrorKind::kFailed, "the image has no config and its layers no diff_ids",
                       "import the image again");
    c = TRY(oci::parse_config(
        rootfs_config(replace ? std::vector<std::string>{diff_id} : base_diff_ids)));
  }
  if (replace) {
    // A private copy is the whole tree: one layer, one history entry.
    c.diff_ids.clear();
    c.history.clear();
  } else {
    // Each layer has an entry; an image imported without history gets
    // empty ones, so the new entry lines up with the new layer.
    size_t with_layer = static_cast<size_t>(
        std::count_if(c.history.begin(), c.history.end(), [](auto& h) { return !h.empty_layer; }));
    if (with_layer < c.diff_ids.size())
      c.history.insert(c.history.begin(), c.diff_ids.size() - with_layer,
                       oci::HistoryEntry{c.created, "", "", "", false});
  }
  c.diff_ids.push_back(diff_id);
  c.history.push_back({created, "togo commit", "", opts.message, false});
  c.created = created;
  for (auto& change : opts.changes) TRY(apply_change(c, change));
  return oci::to_json(c);
}

Result<void> apply_change(oci::ImageConfig& c, std::string_view change) {
  size_t cut = change.find_first_of("= ");
  if (cut == 0 || cut == std::string_view::npos) return bad_change(change, "expected KEY=VALUE");
  std::string key = upper(change.substr(0, cut));
  std::string_view v = change.substr(cut + 1);
  if (key == "CMD") {
    c.cmd = TRY(command_of(change, v));
  } else if (key == "ENTRYPOINT") {
    c.entrypoint = TRY(command_of(change, v));
  } else if (key == "ENV") {
    auto [k, val] = TRY(key_value(change, v));
    std::erase_if(c.env, [&](const std::string& e) { return e.starts_with(k + "="); });
    c.env.push_back(k + "=" + val);
  } else if (key == "LABEL") {
    auto [k, val] = TRY(key_value(change, v));
    c.labels[k] = val;
  } else if (key == "WORKDIR") {
    if (!v.starts_with('/')) return bad_change(change, "not an absolute path");
    c.working_dir = std::string(v);
  } else if (key == "USER") {
    if (v.empty()) return bad_change(change, "no user given");
    c.user = std::string(v);
  } else if (key == "EXPOSE") {
    std::string port(v.substr(0, v.find('/')));
    std::string proto =
        v.find('/') == std::string_view::npos ? "tcp" : std::string(v.substr(v.find('/') + 1));
    bool digits = !port.empty() && port.size() <= 5 &&
                  port.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535)
      return bad_change(change, "not a port number");
    if (proto != "tcp" && proto != "udp" && proto != "sctp")
      return bad_change(change, "the protocol is not tcp, udp or sctp");
    add_sorted(c.exposed_ports, port + "/" + proto);
  } else if (key == "VOLUME") {
    if (!v.starts_with('/')) return bad_change(change, "not an absolute path");
    add_sorted(c.volumes, std::string(v));
  } else if (key == "STOPSIGNAL") {
    if (v.empty()) return bad_change(change, "no signal given");
    c.stop_signal = std::string(v);
  } else {
    return bad_change(change, "unknown key " + key);
  }
  return {};
}

std::string rfc3339_now() {
  time_t now = ::time(nullptr);
  struct tm tm;
  ::gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace togo::image
