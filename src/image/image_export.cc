// An image as an OCI layout or a docker archive, planned by plan_layout and
// written as a plain tar with fixed owners and times: one image, one archive.
#include "image/image_export.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <set>

#include "base/sha256.h"
#include "image/layout_export.h"
#include "image/oci.h"
#include "image/reference.h"
#include "store/layout.h"

namespace togo::image {

namespace {

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
    return {};
  }

  Result<void> write(const void* p, size_t n) {
    auto* c = static_cast<const char*>(p);
    while (n > 0) {
      la_ssize_t w = archive_write_data(a_.get(), c, n);
      if (w <= 0) return failure("writing");
      c += w;
      n -= static_cast<size_t>(w);
    }
    return {};
  }

  Result<void> close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) return failure("finishing the archive");
    return {};
  }

 private:
  std::unexpected<Error> failure(const std::string& what) {
    const char* why = archive_error_string(a_.get());
    return std::unexpected(Error{archive_errno(a_.get()) > 0 ? archive_errno(a_.get()) : 0,
                                 ErrorKind::kFailed, what + ": " + (why ? why : "failed")});
  }

  std::unique_ptr<struct archive, decltype(&archive_write_free)> a_;
  int fd_ = -1;
  int64_t mtime_ = 0;
};

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
  const bool docker = opts.format == ExportFormat::kDocker;
  // Docker archives hold plain tars.
  LayoutOut plan = TRY(plan_layout(st, img, docker, opts.notice));
  bool named = !img.name.empty() && img.name != img.id;

  ExportStats stats;
  TarOut tar(out, img.created);
  TRY(tar.open());
  // Each distinct layer once.
  std::set<std::string> written;
  auto layer = [&](const LayerOut& l, const std::string& name) -> Result<void> {
    TRY(tar.header(name, AE_IFREG, 0644, static_cast<uint64_t>(l.desc.size)));
    TRY(write_layer_out(st.fd(), l, [&](const void* p, size_t n) { return tar.write(p, n); }));
    stats.bytes += static_cast<uint64_t>(l.desc.size);
    stats.layers++;
    return {};
  };
  if (!docker) {
    TRY(tar.file(std::string(oci::kLayoutFile), oci::layout_json()));
    TRY(tar.dir("blobs/"));
    TRY(tar.dir("blobs/sha256/"));
    for (auto& l : plan.layers)
      if (written.insert(l.desc.digest).second) TRY(layer(l, oci::blob_path(l.desc.digest)));
    for (auto& doc : {plan.config, plan.manifest})
      if (written.insert(Sha256::digest_of(doc)).second) {
        TRY(tar.file(oci::blob_path(Sha256::digest_of(doc)), doc));
        stats.bytes += doc.size();
      }
    TRY(tar.file(std::string(oci::kLayoutIndexFile), plan.index));
  } else {
    auto hex = [](const std::string& digest) { return std::string(store::digest_hex(digest)); };
    oci::DockerArchiveEntry entry;
    entry.config = hex(Sha256::digest_of(plan.config)) + ".json";
    if (named) {
      std::string tag = archive_tag(img.name);
      if (parse_reference(tag))
        entry.repo_tags.push_back(tag);
      else if (opts.notice)
        opts.notice("warning: " + img.name + " gives no valid tag (" + tag +
                    "); the archive names no tag");
    }
    for (auto& l : plan.layers) {
      entry.layers.push_back(hex(l.desc.digest) + "/layer.tar");
      if (!written.insert(l.desc.digest).second) continue;
      TRY(tar.dir(hex(l.desc.digest) + "/"));
      TRY(layer(l, entry.layers.back()));
    }
    TRY(tar.file(entry.config, plan.config));
    stats.bytes += plan.config.size();
    TRY(tar.file("manifest.json", oci::docker_manifest_json({entry})));
  }
  TRY(tar.close());
  return stats;
}

}  // namespace togo::image
