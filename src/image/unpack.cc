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

#include "base/fs.h"
#include "base/sys.h"
#include "base/text.h"
#include "image/tar_path.h"
#include "image/whiteout.h"

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

std::string join_path(const std::string& dir, const std::string& name) {
  return dir == "." ? name : dir + "/" + name;
}

bool is_whiteout_node(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == 0; }

// lsetxattr on `name` in the directory `dirfd` without following it: the
// *xattr calls take no directory fd, so the directory is named through /proc.
int set_xattr_at(int dirfd, const std::string& name, const char* key, const void* value,
                 size_t size) {
  std::string path = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
  return ::lsetxattr(path.c_str(), key, value, size, 0);
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
      if (opts_.max_entries && stats_.entries >= opts_.max_entries)
        return bad("the archive has more than " + std::to_string(opts_.max_entries) + " entries");
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
    // Only the name makes a whiteout, whatever the entry's type.
    Whiteout wo = TRY(parse_whiteout(path));
    if (wo.kind == WhiteoutKind::kRemove) return remove_whiteout(wo);
    if (wo.kind == WhiteoutKind::kOpaque) return opaque_whiteout(wo);
    if (!link && type == AE_IFSOCK) {
      skipped_.sockets++;
      stats_.skipped++;
      return {};
    }
    PathParts parts = split_entry_path(path);
    if (!whiteouts_.empty()) TRY(reopen_whiteouts(parts.parent));
    Fd parent = TRY(open_dir(parts.parent, true));
    if (apply()) make_writable(parent.get(), parts.parent);
    bool over_whiteout = whiteouts_.erase(path) > 0;
    TRY(make_entry(e, parent.get(), parts.base, path, link, type, over_whiteout));
    written_.insert(path);
    return {};
  }

  Result<void> make_entry(struct archive_entry* e, int pfd, const std::string& base,
                          const std::string& path, const char* link, mode_t type,
                          bool over_whiteout) {
    if (link) return make_hardlink(pfd, base, path, link);
    switch (type) {
      case AE_IFDIR: return make_dir(e, pfd, base, path, over_whiteout);
      case AE_IFREG: return make_file(e, pfd, base, path);
      case AE_IFLNK: return make_symlink(e, pfd, base, path);
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: return make_node(e, pfd, base, path, type);
      default: return bad("unsupported entry type " + std::to_string(type));
    }
  }

  bool apply() const { return opts_.whiteouts == WhiteoutMode::kApply; }
  bool overlay() const { return opts_.whiteouts == WhiteoutMode::kOverlay; }

  // True if this layer wrote `path` or anything beneath it: whiteouts of the
  // same layer leave those alone.
  bool touched(const std::string& path) const {
    if (written_.count(path)) return true;
    std::string below = path + "/";
    auto it = written_.lower_bound(below);
    return it != written_.end() && it->starts_with(below);
  }

  // "dir/.wh.NAME": NAME goes (apply), or is hidden by an overlay whiteout.
  Result<void> remove_whiteout(const Whiteout& wo) {
    Fd dir = TRY(open_dir(wo.dir, true));
    if (apply()) make_writable(dir.get(), wo.dir);
    std::string path = join_path(wo.dir, wo.name);
    TRY(remove_lower(dir.get(), wo.name, path));
    stats_.whiteouts++;
    if (!overlay()) return {};
    struct stat st;
    if (::fstatat(dir.get(), wo.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      // This layer's own entry stays. A file or link already hides the lower
      // one; a directory must also stop the lower one's children showing.
      if (!S_ISDIR(st.st_mode)) return {};
      auto fd = sys::open_at(dir.get(), wo.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (!fd) return std::unexpected(std::move(fd.error()));
      return mark_opaque(fd->get());
    }
    if (errno != ENOENT) return sys_error(errno, "looking at the whited-out entry");
    // An overlay whiteout: a character device 0/0, mode 0 like overlayfs's own.
    if (::mknodat(dir.get(), wo.name.c_str(), S_IFCHR, makedev(0, 0)) < 0) {
      Error err = sys_error(errno, "creating overlay whiteout " + printable_name(wo.name)).error();
      if (err.err == EPERM)
        err = std::move(err).with_hint("unprivileged overlay whiteouts need Linux 5.8 or later");
      return std::unexpected(std::move(err));
    }
    whiteouts_.insert(path);
    return {};
  }

  // "dir/.wh..wh..opq": the directory's lower contents go (apply) or are
  // hidden by the opaque attribute (overlay).
  Result<void> opaque_whiteout(const Whiteout& wo) {
    if (!whiteouts_.empty()) TRY(reopen_whiteouts(wo.dir));
    Fd dir = TRY(open_dir(wo.dir, true));
    if (apply()) make_writable(dir.get(), wo.dir);
    TRY(clear_lower(dir.get(), wo.dir));
    if (overlay()) TRY(mark_opaque(dir.get()));
    stats_.opaque_dirs++;
    return {};
  }

  // Removes `pfd/name` (clean path `path`) unless this layer wrote it; a
  // directory this layer wrote into keeps this layer's entries only.
  // SECURITY: nothing here follows a symlink: a symlink is removed itself.
  Result<void> remove_lower(int pfd, const std::string& name, const std::string& path) {
    struct stat st;
    if (::fstatat(pfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) return {};
      return sys_error(errno, "looking at " + printable_name(path));
    }
    if (!touched(path)) {
      TRY(fs::remove_tree(pfd, name));
      whiteouts_.erase(path);
      return {};
    }
    if (!S_ISDIR(st.st_mode)) return {};
    auto fd = sys::open_at(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) return std::unexpected(std::move(fd.error()));
    return clear_lower(fd->get(), path);
  }

  Result<void> clear_lower(int dirfd, const std::string& dir) {
    // An unreadable directory must fail the whiteout, not hide nothing.
    for (const std::string& name : TRY_CTX(fs::read_dir(dirfd), dir))
      TRY(remove_lower(dirfd, name, join_path(dir, name)));
    return {};
  }

  // SECURITY: the only overlay attributes this unpacker writes. The user.*
  // one is what a rootless (userxattr) overlay mount reads; trusted.* needs
  // CAP_SYS_ADMIN and is skipped where the kernel refuses it.
  Result<void> mark_opaque(int fd) {
    if (::fsetxattr(fd, "user.overlay.opaque", "y", 1, 0) < 0)
      return sys_error(errno, "marking the directory opaque");
    if (::fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) < 0 && errno != EPERM &&
        errno != EACCES)
      return sys_error(errno, "marking the directory opaque");
    return {};
  }

  // Overlay mode: an entry inside a name this layer whited out (`dir` or one
  // of its parents). Within one layer the whiteout only removed the lower
  // entry, so the name becomes a directory of this layer, opaque, as
  // overlayfs does on mkdir over a whiteout.
  Result<void> reopen_whiteouts(const std::string& dirs) {
    if (dirs == ".") return {};
    for (size_t end = 0; end != std::string::npos;) {
      end = dirs.find('/', end + 1);
      std::string dir = dirs.substr(0, end);
      if (whiteouts_.erase(dir)) TRY(reopen_whiteout(dir));
    }
    return {};
  }

  Result<void> reopen_whiteout(const std::string& dir) {
    PathParts parts = split_entry_path(dir);
    Fd parent = TRY(open_dir(parts.parent, true));
    struct stat st;
    if (::fstatat(parent.get(), parts.base.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !is_whiteout_node(st))
      return {};  // removed since, by an opaque marker
    if (::unlinkat(parent.get(), parts.base.c_str(), 0) < 0 ||
        ::mkdirat(parent.get(), parts.base.c_str(), kMissingDirMode) < 0)
      return sys_error(errno, "replacing whiteout " + printable_name(dir) + " by a directory");
    auto fd = sys::open_at(parent.get(), parts.base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) return std::unexpected(std::move(fd.error()));
    return mark_opaque(fd->get());
  }

  // Apply mode: a lower layer's directory that the caller cannot write into
  // (rootless, e.g. 0555) is opened up until the end, then given its mode
  // back. Failures show up as the error of the write that follows.
  void make_writable(int fd, const std::string& path) {
    if (::geteuid() == 0 || dirs_.count(path) || restore_.count(path)) return;
    struct stat st;
    if (::fstat(fd, &st) < 0 || (st.st_mode & 0700) == 0700 || st.st_uid != ::geteuid()) return;
    if (::fchmod(fd, st.st_mode | 0700) == 0) restore_[path] = st.st_mode & 07777;
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
    if (apply() && !touched(path)) {
      // A lower layer's directory replaced by this layer's file: it goes whole.
      TRY(fs::remove_tree(pfd, base));
      return false;
    }
    if (::unlinkat(pfd, base.c_str(), AT_REMOVEDIR) < 0) {
      if (errno == ENOTEMPTY || errno == EEXIST)
        return bad("replaces a directory that is not empty");
      return sys_error(errno, "replacing the existing directory");
    }
    dirs_.erase(path);
    return false;
  }

  Result<void> make_dir(struct archive_entry* e, int pfd, const std::string& base,
                        const std::string& path, bool over_whiteout) {
    bool kept = TRY(make_room(pfd, base, path, true));
    if (!kept && ::mkdirat(pfd, base.c_str(), kWorkDirMode) < 0)
      return sys_error(errno, "creating directory");
    auto fd = sys::open_at(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) return sys_error(fd.error().err, "opening the new directory");
    if (kept && apply()) make_writable(fd->get(), path);
    // A directory replacing this layer's whiteout must hide the lower one.
    if (over_whiteout && overlay()) TRY(mark_opaque(fd->get()));
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
    TRY(set_xattrs(e, pfd, base));
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
    if (whiteouts_.count(*target))
      return bad("hardlink target " + shown + " was deleted by a whiteout");
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
    TRY(set_xattrs(e, pfd, base));
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

  // Sets the entry's extended attributes on an open file or directory, or,
  // with `name`, on that entry in the directory `fd` (symlinks, nodes).
  Result<void> set_xattrs(struct archive_entry* e, int fd, const std::string& name_in = "") {
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
      int r = name_in.empty() ? ::fsetxattr(fd, name, value, size, 0)
                              : set_xattr_at(fd, name_in, name, value, size);
      if (r == 0) continue;
      int err = errno;
      bool privileged = n.starts_with("trusted.") || n.starts_with("security.");
      if (opts_.rootless && privileged && (err == EPERM || err == EACCES)) {
        skipped_.privileged_xattrs++;
        continue;
      }
      // user.* exists only on files and directories; /proc may be missing.
      bool by_name = !name_in.empty() && ((err == EPERM && n.starts_with("user.")) || err == ENOENT);
      if (err == ENOTSUP || by_name) {
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
    // Lower directories opened up for writing get their mode back, unless
    // this layer gave them one (or removed them).
    std::map<std::string, DirMeta> restored;
    for (const auto& [path, mode] : restore_) {
      if (dirs_.count(path)) continue;
      DirMeta meta;
      meta.mode = mode;
      meta.times[0] = meta.times[1] = {0, UTIME_OMIT};
      restored[path] = meta;
    }
    std::vector<const std::pair<const std::string, DirMeta>*> order;
    for (const auto& kv : dirs_) order.push_back(&kv);
    for (const auto& kv : restored) order.push_back(&kv);
    auto depth = [](const std::string& p) {
      return p == "." ? -1L : static_cast<long>(std::count(p.begin(), p.end(), '/'));
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](auto* a, auto* b) { return depth(a->first) > depth(b->first); });
    for (const auto* kv : order) {
      auto done = [&]() -> Result<void> {
        auto opened = open_dir(kv->first, false);
        if (!opened && restored.count(kv->first)) return {};  // replaced or removed since
        Fd fd = TRY(std::move(opened));
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
  std::set<std::string> written_;         // clean paths this layer wrote (whiteouts spare them)
  std::set<std::string> whiteouts_;       // overlay whiteouts this layer made
  std::map<std::string, mode_t> restore_; // apply: lower directories opened up, their modes
};

}  // namespace

Result<UnpackStats> unpack(struct archive* ar, int root, const UnpackOptions& opts) {
  return Unpacker(ar, root, opts).run();
}

}  // namespace togo::image
