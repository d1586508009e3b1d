// Extraction of a hostile tar stream, one entry at a time. Every name is
// cleaned, its parent opened beneath the root with no symlink on the way, and
// the last component made with an *at() call relative to that fd.
#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "base/sys.h"
#include "base/text.h"
#include "image/tar_path.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452  // the same number on every architecture
#endif

namespace togo::image {
namespace {

// Modes while unpacking, so the caller can always write into what it made;
// the archive's modes are applied once nothing more is written.
constexpr mode_t kWorkFileMode = 0600;
constexpr mode_t kWorkDirMode = 0700;
constexpr mode_t kMissingDirMode = 0755;  // parents the archive did not list (yet)

// A directory's metadata, applied after the last entry (children change mtime).
struct DirMeta {
  mode_t mode = 0;
  struct timespec times[2] = {};
};

// What was left out, reported once per kind at the end.
struct Skipped {
  uint64_t devices = 0, sockets = 0, owners = 0;
  uint64_t privileged_xattrs = 0, overlay_xattrs = 0, unsupported_xattrs = 0;
};

std::unexpected<Error> bad(std::string message) {
  return error(ErrorKind::kBadInput, std::move(message));
}

std::unexpected<Error> archive_failure(struct archive* ar, const std::string& what) {
  const char* msg = archive_error_string(ar);
  return bad(what + ": " + (msg ? msg : "libarchive gave no reason"));
}

// The clear reason for an errno from opening a directory the archive named.
std::unexpected<Error> refusal(Error original) {
  switch (original.err) {
    case ELOOP: return bad("path goes through a symlink");
    case EXDEV: return bad("path leaves the image root");
    case ENOTDIR: return bad("path goes through something that is not a directory");
    default: return std::unexpected(std::move(original));
  }
}

// libarchive gives NULL for a name it cannot convert to the current locale;
// the UTF-8 form is the best we have then.
const char* or_utf8(const char* local, const char* (*utf8)(struct archive_entry*),
                    struct archive_entry* e) {
  return local ? local : utf8(e);
}

long clamp_nsec(long ns) { return ns >= 0 && ns < 1000000000L ? ns : 0; }

// {atime, mtime} for utimensat; an unset mtime is left alone, an unset atime
// follows the mtime so that unpacking is reproducible.
void entry_times(struct archive_entry* e, struct timespec out[2]) {
  if (archive_entry_mtime_is_set(e))
    out[1] = {archive_entry_mtime(e), clamp_nsec(archive_entry_mtime_nsec(e))};
  else
    out[1] = {0, UTIME_OMIT};
  if (archive_entry_atime_is_set(e))
    out[0] = {archive_entry_atime(e), clamp_nsec(archive_entry_atime_nsec(e))};
  else
    out[0] = out[1];
}

// chmod that never follows a symlink at `name`.
Result<void> chmod_at(int dirfd, const std::string& name, mode_t mode) {
  if (::syscall(SYS_fchmodat2, dirfd, name.c_str(), mode, AT_SYMLINK_NOFOLLOW) == 0) return {};
  if (errno != ENOSYS && errno != EPERM) return sys_error(errno, "setting mode");
  // SECURITY: older kernels (or a seccomp filter): fchmodat follows a symlink,
  // but `name` was just made by mknodat in a tree only this process writes
  // to; check it anyway.
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
    return sys_error(errno, "setting mode");
  if (S_ISLNK(st.st_mode)) return bad("setting mode: the entry became a symlink");
  if (::fchmodat(dirfd, name.c_str(), mode, 0) < 0) return sys_error(errno, "setting mode");
  return {};
}

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

class Unpacker {
 public:
  Unpacker(struct archive* ar, int root, const UnpackOptions& opts)
      : ar_(ar), root_(root), opts_(opts) {}

  Result<UnpackStats> run() {
    for (;;) {
      struct archive_entry* e = nullptr;
      int r = archive_read_next_header(ar_, &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) return archive_failure(ar_, "reading archive");
      stats_.entries++;
      const char* raw = or_utf8(archive_entry_pathname(e), archive_entry_pathname_utf8, e);
      auto done = [&]() -> Result<void> {
        if (!raw) return bad("entry has no name");
        std::string path = TRY(clean_entry_path(raw));
        return extract(e, path);
      }();
      if (!done) {
        std::string shown = raw && *raw ? printable_name(raw) : "(no name)";
        return std::unexpected(std::move(done.error()).context("entry " + shown));
      }
    }
    TRY(finish_dirs());
    report();
    return stats_;
  }

 private:
  Result<void> extract(struct archive_entry* e, const std::string& path) {
    const char* link = or_utf8(archive_entry_hardlink(e), archive_entry_hardlink_utf8, e);
    mode_t type = archive_entry_filetype(e);
    if (path == ".") {
      // SECURITY: the root is the directory given to us; it is never replaced.
      if (link || type != AE_IFDIR) return bad("the image root can only be a directory");
      Fd fd = TRY(open_dir(".", false));
      return dir_metadata(e, fd.get(), path);
    }
    if (!link && type == AE_IFSOCK) {
      skipped_.sockets++;
      stats_.skipped++;
      return {};
    }
    PathParts parts = split_entry_path(path);
    Fd parent = TRY(open_dir(parts.parent, true));
    if (link) return make_hardlink(parent.get(), parts.base, path, link);
    switch (type) {
      case AE_IFDIR: return make_dir(e, parent.get(), parts.base, path);
      case AE_IFREG: return make_file(e, parent.get(), parts.base, path);
      case AE_IFLNK: return make_symlink(e, parent.get(), parts.base, path);
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: return make_node(e, parent.get(), parts.base, path, type);
      default: return bad("unsupported entry type " + std::to_string(type));
    }
  }

  // SECURITY: the only way a directory named by the archive is opened: beneath
  // the root, no symlink and no ".." anywhere on the way. With `create`,
  // missing directories are made one component at a time.
  Result<Fd> open_dir(const std::string& dir, bool create) {
    if (dir == ".") return sys::open_at(root_, ".", O_RDONLY | O_DIRECTORY);
    auto fd = sys::open_dir_beneath(root_, dir);
    if (fd) return fd;
    // ENOSYS/EPERM: no openat2 here (old kernel, or a seccomp filter that
    // does not know it); the walk is just as strict, only slower.
    int err = fd.error().err;
    if (err == ENOENT || err == ENOSYS || err == EPERM) return walk(dir, create);
    return refusal(std::move(fd.error()));
  }

  // Opens `dir` one component at a time (openat O_NOFOLLOW), creating the
  // missing ones when `create`: for archives that list a/b/c before a/b, and
  // for kernels without openat2.
  Result<Fd> walk(const std::string& dir, bool create) {
    Fd cur = TRY(sys::open_at(root_, ".", O_RDONLY | O_DIRECTORY));
    for (const std::string& part : text::split(dir, '/')) {
      // SECURITY: a symlink at any component fails O_NOFOLLOW | O_DIRECTORY.
      constexpr int kFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
      int fd = ::openat(cur.get(), part.c_str(), kFlags);
      if (fd < 0 && errno == ENOENT && create) {
        if (::mkdirat(cur.get(), part.c_str(), kMissingDirMode) < 0 && errno != EEXIST)
          return sys_error(errno, "creating parent directory");
        fd = ::openat(cur.get(), part.c_str(), kFlags);
      }
      if (fd < 0) {
        Error e = sys_error(errno, "opening parent directory").error();
        struct stat st;
        if (e.err == ENOTDIR && ::fstatat(cur.get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode))
          e.err = ELOOP;
        return refusal(std::move(e));
      }
      cur.reset(fd);
    }
    return cur;
  }

  // Clears `base` in `pfd` for a new entry. Returns true when both the old
  // and the new entry are directories: the old one is kept and updated.
  Result<bool> make_room(int pfd, const std::string& base, const std::string& path, bool new_dir) {
    struct stat st;
    if (::fstatat(pfd, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) return false;
      return sys_error(errno, "looking at the existing entry");
    }
    if (!S_ISDIR(st.st_mode)) {
      if (::unlinkat(pfd, base.c_str(), 0) < 0)
        return sys_error(errno, "replacing the existing entry");
      return false;
    }
    if (new_dir) return true;
    if (::unlinkat(pfd, base.c_str(), AT_REMOVEDIR) < 0) {
      if (errno == ENOTEMPTY || errno == EEXIST)
        return bad("replaces a directory that is not empty");
      return sys_error(errno, "replacing the existing directory");
    }
    dirs_.erase(path);
    return false;
  }

  Result<void> make_dir(struct archive_entry* e, int pfd, const std::string& base,
                        const std::string& path) {
    bool kept = TRY(make_room(pfd, base, path, true));
    if (!kept && ::mkdirat(pfd, base.c_str(), kWorkDirMode) < 0)
      return sys_error(errno, "creating directory");
    auto fd = sys::open_at(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) return sys_error(fd.error().err, "opening the new directory");
    return dir_metadata(e, fd->get(), path);
  }

  // Owner and attributes now; mode and times after the last entry.
  Result<void> dir_metadata(struct archive_entry* e, int fd, const std::string& path) {
    TRY(set_owner(e, fd, ""));
    TRY(set_xattrs(e, fd));
    DirMeta meta;
    meta.mode = archive_entry_perm(e);
    entry_times(e, meta.times);
    dirs_[path] = meta;
    stats_.dirs++;
    return {};
  }

  Result<void> make_file(struct archive_entry* e, int pfd, const std::string& base,
                         const std::string& path) {
    TRY(make_room(pfd, base, path, false));
    // SECURITY: O_EXCL | O_NOFOLLOW: a name that reappeared is never followed.
    int raw = ::openat(pfd, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       kWorkFileMode);
    if (raw < 0) return sys_error(errno, "creating file");
    Fd fd(raw);
    uint64_t size = TRY(write_data(fd.get(), e));
    // Order matters: writing and chown clear setuid bits and file capabilities.
    TRY(set_owner(e, fd.get(), ""));
    TRY(set_xattrs(e, fd.get()));
    if (::fchmod(fd.get(), archive_entry_perm(e)) < 0) return sys_error(errno, "setting mode");
    TRY(set_times(e, fd.get(), ""));
    stats_.files++;
    stats_.bytes += size;
    return {};
  }

  // Streams the entry's data into `fd`. Each block is written at its own
  // offset, so the gaps libarchive reports for sparse entries stay holes.
  Result<uint64_t> write_data(int fd, struct archive_entry* e) {
    int64_t end = 0;
    for (;;) {
      const void* buf = nullptr;
      size_t len = 0;
      la_int64_t off = 0;
      int r = archive_read_data_block(ar_, &buf, &len, &off);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) return archive_failure(ar_, "reading data");
      if (off < 0) return bad("data at a negative offset");
      const char* p = static_cast<const char*>(buf);
      while (len > 0) {
        ssize_t n = ::pwrite(fd, p, len, off);
        if (n < 0) {
          if (errno == EINTR) continue;
          return sys_error(errno, "writing data");
        }
        p += n;
        len -= static_cast<size_t>(n);
        off += n;
      }
      end = std::max<int64_t>(end, off);
    }
    int64_t size = end;
    if (archive_entry_size_is_set(e)) size = std::max<int64_t>(size, archive_entry_size(e));
    // A hole at the end has no data block: the entry's size says where it ends.
    if (size > end && ::ftruncate(fd, size) < 0) return sys_error(errno, "setting size");
    return static_cast<uint64_t>(size);
  }

  Result<void> make_symlink(struct archive_entry* e, int pfd, const std::string& base,
                            const std::string& path) {
    const char* target = or_utf8(archive_entry_symlink(e), archive_entry_symlink_utf8, e);
    if (!target || !*target) return bad("symlink has no target");
    TRY(make_room(pfd, base, path, false));
    // Any target text, absolute or with "..": it is resolved later, inside
    // the environment, never by this unpacker (every open here refuses links).
    if (::symlinkat(target, pfd, base.c_str()) < 0) return sys_error(errno, "creating symlink");
    TRY(set_owner(e, pfd, base));
    TRY(set_times(e, pfd, base));
    stats_.symlinks++;
    return {};
  }

  // A hardlink shares its target's inode, so it takes none of the entry's
  // metadata.
  Result<void> make_hardlink(int pfd, const std::string& base, const std::string& path,
                             const char* raw_target) {
    std::string shown = printable_name(raw_target);
    std::string missing = "hardlink target " + shown +
                          " does not exist (it must come earlier in the archive)";
    auto target = clean_entry_path(raw_target);
    if (!target) {
      if (target.error().message == "path leaves the image root")
        return bad("hardlink target " + shown + " leaves the image root");
      return bad("hardlink target " + shown + ": " + target.error().message);
    }
    if (*target == ".") return bad("hardlink target is the image root");
    if (skipped_paths_.count(*target)) {  // a device node skipped when rootless
      skipped_.devices++;
      stats_.skipped++;
      return {};
    }
    PathParts tparts = split_entry_path(*target);
    // SECURITY: the target's directory is found like any entry's: beneath the
    // root, through no symlink; linkat then does not follow the last component.
    auto tdir = open_dir(tparts.parent, false);
    if (!tdir) {
      if (tdir.error().err == ENOENT) return bad(missing);
      return std::unexpected(std::move(tdir.error()).context("hardlink target " + shown));
    }
    struct stat tst;
    if (::fstatat(tdir->get(), tparts.base.c_str(), &tst, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) return bad(missing);
      return sys_error(errno, "looking at hardlink target " + shown);
    }
    if (S_ISDIR(tst.st_mode)) return bad("hardlink target " + shown + " is a directory");
    struct stat st;
    if (::fstatat(pfd, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == tst.st_dev &&
        st.st_ino == tst.st_ino) {
      stats_.hardlinks++;  // already that file (e.g. a link to itself)
      return {};
    }
    TRY(make_room(pfd, base, path, false));
    if (::linkat(tdir->get(), tparts.base.c_str(), pfd, base.c_str(), 0) < 0)
      return sys_error(errno, "creating hardlink to " + shown);
    stats_.hardlinks++;
    return {};
  }

  Result<void> make_node(struct archive_entry* e, int pfd, const std::string& base,
                         const std::string& path, mode_t type) {
    if (type != AE_IFIFO && opts_.rootless) {
      skipped_.devices++;
      stats_.skipped++;
      skipped_paths_.insert(path);
      return {};
    }
    TRY(make_room(pfd, base, path, false));
    dev_t dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
    if (type == AE_IFIFO) dev = 0;
    if (::mknodat(pfd, base.c_str(), type | kWorkFileMode, dev) < 0)
      return sys_error(errno, type == AE_IFIFO ? "creating fifo" : "creating device node");
    TRY(set_owner(e, pfd, base));
    TRY(chmod_at(pfd, base, archive_entry_perm(e)));
    TRY(set_times(e, pfd, base));
    return {};
  }

  // fchownat to the entry's numeric ids (names are ignored); `name` empty
  // means `fd` itself. Never follows a symlink. Rootless, the caller stays
  // the owner (root inside the env); entries of other owners are counted.
  Result<void> set_owner(struct archive_entry* e, int fd, const std::string& name) {
    la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
    if (opts_.rootless) {
      if (uid != 0 || gid != 0) skipped_.owners++;
      return {};
    }
    // (uid_t)-1 would mean "leave unchanged" to the kernel: not an owner.
    constexpr la_int64_t kMaxId = 0xfffffffe;
    std::string owner = std::to_string(uid) + ":" + std::to_string(gid);
    if (uid < 0 || uid > kMaxId || gid < 0 || gid > kMaxId)
      return bad("owner " + owner + " is out of range");
    int flags = AT_SYMLINK_NOFOLLOW | (name.empty() ? AT_EMPTY_PATH : 0);
    if (::fchownat(fd, name.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid), flags) < 0)
      return sys_error(errno, "setting owner to " + owner);
    return {};
  }

  // `name` empty means `fd` itself. Never follows a symlink.
  Result<void> set_times(struct archive_entry* e, int fd, const std::string& name) {
    struct timespec times[2];
    entry_times(e, times);
    int r = name.empty() ? ::futimens(fd, times)
                         : ::utimensat(fd, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    if (r < 0) return sys_error(errno, "setting times");
    return {};
  }

  // Sets the entry's extended attributes on an open file or directory.
  Result<void> set_xattrs(struct archive_entry* e, int fd) {
    if (archive_entry_xattr_reset(e) == 0) return {};
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    std::set<std::string_view> seen;  // pax headers may carry one twice (SCHILY and LIBARCHIVE)
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
      std::string_view n = name ? name : "";
      if (!seen.insert(n).second) continue;
      // SECURITY: overlay attributes in a layer would steer overlayfs when the
      // layer is mounted as a lower directory (redirects, metacopy, opaque
      // directories); images express those with whiteout files instead.
      if (n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.")) {
        skipped_.overlay_xattrs++;
        continue;
      }
      if (::fsetxattr(fd, name, value, size, 0) == 0) continue;
      int err = errno;
      bool privileged = n.starts_with("trusted.") || n.starts_with("security.");
      if (opts_.rootless && privileged && (err == EPERM || err == EACCES)) {
        skipped_.privileged_xattrs++;
        continue;
      }
      if (err == ENOTSUP) {
        skipped_.unsupported_xattrs++;
        continue;
      }
      return sys_error(err, "setting extended attribute " + printable_name(n));
    }
    return {};
  }

  // Final modes and times of directories, deepest first so that a directory
  // made read-only does not stop its parent's children being reached.
  Result<void> finish_dirs() {
    std::vector<const std::pair<const std::string, DirMeta>*> order;
    for (const auto& kv : dirs_) order.push_back(&kv);
    auto depth = [](const std::string& p) {
      return p == "." ? -1L : static_cast<long>(std::count(p.begin(), p.end(), '/'));
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](auto* a, auto* b) { return depth(a->first) > depth(b->first); });
    for (const auto* kv : order) {
      auto done = [&]() -> Result<void> {
        Fd fd = TRY(open_dir(kv->first, false));
        if (::fchmod(fd.get(), kv->second.mode) < 0) return sys_error(errno, "setting mode");
        if (::futimens(fd.get(), kv->second.times) < 0) return sys_error(errno, "setting times");
        return {};
      }();
      if (!done) {
        std::string shown = "entry " + printable_name(kv->first);
        return std::unexpected(std::move(done.error()).context(shown));
      }
    }
    return {};
  }

  void report() const {
    if (!opts_.warn) return;
    auto say = [&](uint64_t n, const char* one, const char* many, const char* why) {
      if (n) opts_.warn("skipped " + plural(n, one, many) + ": " + why);
    };
    say(skipped_.devices, "device node", "device nodes", "creating devices needs root");
    if (skipped_.owners)
      opts_.warn(plural(skipped_.owners, "entry", "entries") +
                 " belonged to users other than root; rootless, they belong to you "
                 "(root inside the env)");
    say(skipped_.sockets, "socket", "sockets", "sockets cannot be recreated from an archive");
    say(skipped_.privileged_xattrs, "trusted.*/security.* extended attribute",
        "trusted.*/security.* extended attributes", "setting them needs root");
    say(skipped_.overlay_xattrs, "overlay extended attribute", "overlay extended attributes",
        "an image layer may not steer the overlay filesystem");
    say(skipped_.unsupported_xattrs, "extended attribute", "extended attributes",
        "the file system does not support them");
  }

  struct archive* ar_;
  int root_;
  const UnpackOptions& opts_;
  UnpackStats stats_;
  Skipped skipped_;
  std::map<std::string, DirMeta> dirs_;   // clean path -> metadata to apply at the end
  std::set<std::string> skipped_paths_;   // device nodes left out, for hardlinks to them
};

}  // namespace

Result<UnpackStats> unpack(struct archive* ar, int root, const UnpackOptions& opts) {
  return Unpacker(ar, root, opts).run();
}

}  // namespace togo::image
