// Walks a tree with directory fds and writes it as tar entries: metadata
// from fstat, extended attributes from the open fd (or /proc for entries
// that cannot be opened safely), data extents from SEEK_DATA/SEEK_HOLE.
#include "image/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "base/fs.h"
#include "base/sys.h"
#include "image/tar_path.h"
#include "image/whiteout.h"

namespace togo::image {
namespace {

constexpr size_t kBufSize = 1 << 20;

using EntryPtr = std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)>;

bool is_overlay_xattr(std::string_view name) {
  return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
}

// Extended attributes, sorted by name, of an open fd or (fd < 0) of a path
// that is not followed.
using Xattrs = std::map<std::string, std::string>;

Result<Xattrs> read_xattrs(int fd, const std::string& path) {
  auto list = [&](char* buf, size_t n) {
    return fd >= 0 ? ::flistxattr(fd, buf, n) : ::llistxattr(path.c_str(), buf, n);
  };
  auto get = [&](const char* name, void* buf, size_t n) {
    return fd >= 0 ? ::fgetxattr(fd, name, buf, n) : ::lgetxattr(path.c_str(), name, buf, n);
  };
  Xattrs out;
  std::string names;
  for (;;) {
    ssize_t n = list(nullptr, 0);
    if (n < 0 && (errno == ENOTSUP || errno == ENOENT)) return out;  // no xattrs, or no /proc
    if (n < 0) return sys_error(errno, "listing extended attributes");
    names.resize(static_cast<size_t>(n));
    n = list(names.data(), names.size());
    if (n < 0 && errno == ERANGE) continue;  // grew in between
    if (n < 0) return sys_error(errno, "listing extended attributes");
    names.resize(static_cast<size_t>(n));
    break;
  }
  for (size_t at = 0; at < names.size();) {
    std::string name(names.c_str() + at);
    at += name.size() + 1;
    if (name.empty()) continue;
    std::string value;
    for (;;) {
      ssize_t n = get(name.c_str(), nullptr, 0);
      if (n < 0 && errno == ENODATA) break;  // removed in between
      if (n < 0) return sys_error(errno, "reading extended attribute " + printable_name(name));
      value.resize(static_cast<size_t>(n));
      n = get(name.c_str(), value.data(), value.size());
      if (n < 0 && errno == ERANGE) continue;
      if (n < 0) return sys_error(errno, "reading extended attribute " + printable_name(name));
      value.resize(static_cast<size_t>(n));
      out[name] = std::move(value);
      break;
    }
  }
  return out;
}

// Entry names of a directory, sorted bytewise.
Result<std::vector<std::string>> read_names(int dirfd) {
  auto names = TRY(fs::read_dir(dirfd));
  std::sort(names.begin(), names.end());
  return names;
}

// Data extents {offset, length} of a file open as `fd`; not sparse when one
// extent covers it all (or the file system cannot say where its holes are).
struct Extents {
  bool sparse = false;
  std::vector<std::pair<int64_t, int64_t>> data;
};

Result<Extents> find_extents(int fd, int64_t size) {
  Extents ex;
  int64_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole from here on
    if (data < 0 && errno == EINVAL) return Extents{false, {{0, size}}};  // no SEEK_DATA here
    if (data < 0) return sys_error(errno, "finding data (SEEK_DATA)");
    if (data >= size) break;
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return sys_error(errno, "finding holes (SEEK_HOLE)");
    int64_t end = std::min<int64_t>(hole, size);
    ex.data.push_back({data, end - data});
    pos = end;
  }
  if (size == 0) return ex;
  // A file that is all hole still needs a map with data in it (the pax
  // writer cannot express an empty one): its last byte, a zero.
  if (ex.data.empty()) ex.data.push_back({size - 1, 1});
  ex.sparse = !(ex.data.size() == 1 && ex.data[0].first == 0 && ex.data[0].second == size);
  return ex;
}

class Packer {
 public:
  Packer(struct archive* aw, const PackOptions& opts) : aw_(aw), opts_(opts) {
    buf_.resize(kBufSize);
  }

  Result<PackStats> run(int root) {
    if (!opts_.prefix.empty()) {
      auto clean = clean_entry_path(opts_.prefix);
      if (!clean) return error(ErrorKind::kUsage, "pack prefix: " + clean.error().message);
      if (*clean != ".") prefix_ = *clean + "/";
    }
    auto fd = sys::open_at(root, ".", O_RDONLY | O_DIRECTORY);
    if (!fd) return std::unexpected(in(std::move(fd.error()), ""));
    TRY(add_dir(std::move(*fd), ""));
    return stats_;
  }

 private:
  static Error in(Error e, const std::string& rel) {
    return std::move(e).context("packing " + (rel.empty() ? "." : printable_name(rel)));
  }

  std::string archive_name(const std::string& rel) const {
    if (rel.empty()) return prefix_.empty() ? "./" : prefix_;
    return prefix_ + rel;
  }

  // Writes the directory open as `fd` (at `rel`, "" for the root), then what
  // is in it. Errors come back naming their path.
  Result<void> add_dir(Fd fd, const std::string& rel) {
    auto names = dir_header(fd.get(), rel);
    if (!names) return std::unexpected(in(std::move(names.error()), rel));
    // Whiteouts first (the image spec asks for them before their siblings),
    // then the rest.
    std::vector<std::pair<std::string, struct stat>> rest;
    for (const std::string& n : *names) {
      std::string child = rel.empty() ? n : rel + "/" + n;
      struct stat st;
      if (::fstatat(fd.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) continue;  // removed while packing
        return std::unexpected(in(sys_error(errno, "stat").error(), child));
      }
      if (opts_.filter && !opts_.filter(child, st)) {
        stats_.filtered++;
        continue;
      }
      if (opts_.overlay_whiteouts && S_ISCHR(st.st_mode) && st.st_rdev == 0) {
        auto done = write_marker(archive_name(rel.empty() ? whiteout_name(n)
                                                          : rel + "/" + whiteout_name(n)),
                                 st);
        if (!done) return std::unexpected(in(std::move(done.error()), child));
        stats_.whiteouts++;
        continue;
      }
      rest.emplace_back(n, st);
    }
    for (auto& [n, st] : rest) {
      std::string child = rel.empty() ? n : rel + "/" + n;
      if (S_ISDIR(st.st_mode)) {
        // SECURITY: O_NOFOLLOW | O_DIRECTORY: a name swapped for a symlink fails.
        auto sub = sys::open_at(fd.get(), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!sub) return std::unexpected(in(std::move(sub.error()), child));
        TRY(add_dir(std::move(*sub), child));
        continue;
      }
      auto done = add(fd.get(), n, child, st);
      if (!done) return std::unexpected(in(std::move(done.error()), child));
    }
    return {};
  }

  // The directory's own entry (and opaque marker); returns its names.
  Result<std::vector<std::string>> dir_header(int fd, const std::string& rel) {
    struct stat st;
    if (::fstat(fd, &st) < 0) return sys_error(errno, "stat");
    Xattrs xattrs = TRY(read_xattrs(fd, ""));
    bool opaque = false;
    if (opts_.overlay_whiteouts) {
      for (const char* key : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
        auto it = xattrs.find(key);
        if (it != xattrs.end() && it->second == "y") opaque = true;
      }
      // A redirect says "my lower contents are at another path": a renamed
      // directory, which OCI can only express by copying it.
      if (xattrs.count("trusted.overlay.redirect") || xattrs.count("user.overlay.redirect"))
        return error("an overlay redirect (a renamed directory) cannot be written as an OCI layer");
    }
    std::string name = archive_name(rel);
    if (name.back() != '/') name += '/';
    EntryPtr e = new_entry(name, st, xattrs);
    TRY(write_header(e.get()));
    if (opaque) {
      TRY(write_marker(rel.empty() ? prefix_ + std::string(kOpaqueMarker)
                                   : archive_name(rel) + "/" + std::string(kOpaqueMarker),
                       st));
      stats_.opaque_dirs++;
    }
    return read_names(fd);
  }

  // Anything but a directory or a whiteout.
  Result<void> add(int dirfd, const std::string& n, const std::string& rel, const struct stat& st) {
    if (S_ISSOCK(st.st_mode)) {
      stats_.sockets++;
      return {};
    }
    std::string name = archive_name(rel);
    if (st.st_nlink > 1) {
      auto it = links_.find({st.st_dev, st.st_ino});
      if (it != links_.end()) {
        EntryPtr e = new_entry(name, st, {});
        archive_entry_set_size(e.get(), 0);
        archive_entry_copy_hardlink(e.get(), it->second.c_str());
        TRY(write_header(e.get()));
        stats_.hardlinks++;
        return {};
      }
    }
    if (S_ISREG(st.st_mode)) TRY(add_file(dirfd, n, name));
    else TRY(add_other(dirfd, n, name, st));
    if (st.st_nlink > 1) links_[{st.st_dev, st.st_ino}] = name;
    return {};
  }

  // Symlinks, devices and fifos: never opened (a fifo would block, a device
  // act); their extended attributes are read through /proc by name.
  Result<void> add_other(int dirfd, const std::string& n, const std::string& name,
                         const struct stat& st) {
    std::string by_name = "/proc/self/fd/" + std::to_string(dirfd) + "/" + n;
    Xattrs xattrs = TRY(read_xattrs(-1, by_name));
    EntryPtr e = new_entry(name, st, xattrs);
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      for (;;) {
        ssize_t len = ::readlinkat(dirfd, n.c_str(), target.data(), target.size());
        if (len < 0) return sys_error(errno, "reading symlink");
        if (static_cast<size_t>(len) < target.size()) {
          target.resize(static_cast<size_t>(len));
          break;
        }
        target.resize(target.size() * 2);  // grew since the stat
      }
      archive_entry_copy_symlink(e.get(), target.c_str());
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      archive_entry_set_rdevmajor(e.get(), major(st.st_rdev));
      archive_entry_set_rdevminor(e.get(), minor(st.st_rdev));
    } else if (!S_ISFIFO(st.st_mode)) {
      return error("unsupported file type " + std::to_string(st.st_mode & S_IFMT));
    }
    return write_header(e.get());
  }

  Result<void> add_file(int dirfd, const std::string& n, const std::string& name) {
    // SECURITY: O_NOFOLLOW, and O_NONBLOCK in case the name became a fifo.
    Fd fd = TRY(sys::open_at(dirfd, n, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
    struct stat st;
    if (::fstat(fd.get(), &st) < 0) return sys_error(errno, "stat");
    if (!S_ISREG(st.st_mode)) return error("changed while packing");
    Xattrs xattrs = TRY(read_xattrs(fd.get(), ""));
    if (opts_.overlay_whiteouts &&
        (xattrs.count("trusted.overlay.metacopy") || xattrs.count("user.overlay.metacopy")))
      return error("an overlay metacopy file (its data is in a lower layer) cannot be written as "
                   "an OCI layer");
    Extents ex = TRY(find_extents(fd.get(), st.st_size));
    EntryPtr e = new_entry(name, st, xattrs);
    archive_entry_set_size(e.get(), st.st_size);
    if (ex.sparse)
      for (auto& [off, len] : ex.data) archive_entry_sparse_add_entry(e.get(), off, len);
    TRY(write_header(e.get()));
    // The writer takes the whole logical content and skips the holes itself;
    // holes are fed from a zero buffer, never read.
    int64_t pos = 0;
    for (auto& [off, len] : ex.data) {
      TRY(feed_zeros(off - pos));
      TRY(copy_data(fd.get(), off, len));
      pos = off + len;
    }
    return {};
  }

  Result<void> copy_data(int fd, int64_t off, int64_t len) {
    while (len > 0) {
      size_t want = static_cast<size_t>(std::min<int64_t>(len, kBufSize));
      ssize_t n = ::pread(fd, buf_.data(), want, off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return sys_error(errno, "reading");
      if (n == 0) return feed_zeros(len);  // shrank while packing: the header is written
      TRY(feed(buf_.data(), static_cast<size_t>(n)));
      stats_.bytes += static_cast<uint64_t>(n);
      off += n;
      len -= n;
    }
    return {};
  }

  Result<void> feed_zeros(int64_t len) {
    if (len <= 0) return {};
    if (zeros_.empty()) zeros_.resize(kBufSize, '\0');
    while (len > 0) {
      size_t n = static_cast<size_t>(std::min<int64_t>(len, kBufSize));
      TRY(feed(zeros_.data(), n));
      len -= static_cast<int64_t>(n);
    }
    return {};
  }

  Result<void> feed(const char* p, size_t n) {
    while (n > 0) {
      la_ssize_t w = archive_write_data(aw_, p, n);
      if (w < 0) return archive_failure("writing data");
      if (w == 0) return {};  // past the entry's last data extent
      p += w;
      n -= static_cast<size_t>(w);
    }
    return {};
  }

  // An empty regular file standing for overlay state: a whiteout or the
  // opaque marker, with the owner and time of what it stands for.
  Result<void> write_marker(const std::string& name, const struct stat& of) {
    struct stat st = of;
    st.st_mode = S_IFREG | 0644;
    EntryPtr e = new_entry(name, st, {});
    archive_entry_set_size(e.get(), 0);
    return write_header(e.get());
  }

  EntryPtr new_entry(const std::string& name, const struct stat& st, const Xattrs& xattrs) {
    EntryPtr e(archive_entry_new(), archive_entry_free);
    archive_entry_copy_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), st.st_mode & S_IFMT);
    archive_entry_set_perm(e.get(), st.st_mode & 07777);
    archive_entry_set_uid(e.get(), st.st_uid);
    archive_entry_set_gid(e.get(), st.st_gid);
    archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    for (const auto& [k, v] : xattrs)
      if (!is_overlay_xattr(k)) archive_entry_xattr_add_entry(e.get(), k.c_str(), v.data(), v.size());
    return e;
  }

  Result<void> write_header(struct archive_entry* e) {
    // ARCHIVE_WARN: e.g. a name that is not UTF-8, kept as raw bytes.
    if (archive_write_header(aw_, e) < ARCHIVE_WARN) return archive_failure("writing header");
    stats_.entries++;
    return {};
  }

  std::unexpected<Error> archive_failure(const std::string& what) {
    const char* msg = archive_error_string(aw_);
    Error err{archive_errno(aw_) > 0 ? archive_errno(aw_) : 0, ErrorKind::kFailed,
              what + ": " + (msg ? msg : "libarchive gave no reason")};
    return std::unexpected(std::move(err));
  }

  struct archive* aw_;
  const PackOptions& opts_;
  std::string prefix_;
  PackStats stats_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;  // inode -> first archive name
  std::vector<char> buf_, zeros_;
};

}  // namespace

Result<PackStats> pack(struct archive* aw, int root, const PackOptions& opts) {
  return Packer(aw, opts).run(root);
}

}  // namespace togo::image
