// Writing an environment export: the header, the image as an OCI layout
// (planned by plan_layout, its blobs verified as they are copied out of the
// store), the writable tree through pack(), and the trailer, in one pass
// through one libarchive writer.
#include <archive.h>
#include <archive_entry.h>

#include <ctime>
#include <memory>

#include "base/sha256.h"
#include "image/env_archive.h"
#include "image/env_stream.h"
#include "image/layout_export.h"
#include "image/oci.h"

namespace togo::image {

namespace {

using WriterPtr = std::unique_ptr<struct archive, decltype(&archive_write_free)>;
using EntryPtr = std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)>;

// One libarchive writer in pax format over an ExportSink.
class Writer {
 public:
  explicit Writer(ExportSink& sink) : sink_(sink), aw_(archive_write_new(), archive_write_free) {}
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
  bool closed_ = false;
  int64_t now_ = static_cast<int64_t>(::time(nullptr));
};

std::string short_id(const std::string& digest) { return digest.substr(7, 12); }

}  // namespace

Result<EnvExportStats> write_env_archive(store::Store& st, const store::EnvRecord& env, int tree,
                                         int out, const EnvExportOptions& opts) {
  auto img = TRY(st.catalog().find_image(env.image_id));
  if (!img)
    return error(ErrorKind::kNotFound,
                 "its image " + short_id(env.image_id) + " is not in the store", "run `togo fsck`");
  // The documents first: a layout names every blob by digest and size
  // before the blobs come.
  LayoutOut plan = TRY(plan_layout(st, *img, false, opts.notice));
  if (opts.include_image && opts.notice)
    for (auto& l : plan.layers)
      if (l.decompress)
        opts.notice("layer " + short_id(l.rec.digest) +
                    " is stored in a compression OCI has no media type for; "
                    "it is exported uncompressed");

  ExportHeader h;
  h.name = env.name;
  h.rootfs = env.rootfs;
  h.settings = settings_lines(env.settings);
  h.image_name = img->name != img->id ? img->name : "";
  h.image_id = Sha256::digest_of(plan.config);
  h.image_included = opts.include_image;
  h.created = env.created;
  h.writer = std::string("togo ") + TOGO_VERSION;

  ExportSink sink(out, opts.compression);
  Writer w(sink);
  TRY(w.open());
  TRY(w.file(std::string(kExportHeader), header_json(h)));
  TRY(w.file(std::string(oci::kLayoutFile), oci::layout_json()));
  TRY(w.file(std::string(oci::kLayoutIndexFile), plan.index));
  TRY(w.file(plan.manifest_path(), plan.manifest));
  TRY(w.file(plan.config_path(), plan.config));
  EnvExportStats stats;
  if (opts.include_image) {
    // One entry per layer of the manifest, a repeated one too: the
    // importer reads them in the manifest's order.
    for (auto& l : plan.layers) {
      TRY(w.begin_file(oci::blob_path(l.desc.digest), l.desc.size));
      TRY(write_layer_out(st.fd(), l, [&](const void* p, size_t n) { return w.data(p, n); }));
      stats.layers++;
      stats.layer_bytes += static_cast<uint64_t>(l.desc.size);
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
