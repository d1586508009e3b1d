// File I/O, directories, xattrs and the operation table of the recording
// file system.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "crashfs_fs.h"

namespace togo::crashfs {
namespace {

Handle& handle(fuse_file_info* fi) { return *reinterpret_cast<Handle*>(fi->fh); }

// Flags the kernel has already acted on, or that would change what the
// backing descriptor does with the offsets the kernel gives us.
constexpr int kDropFlags = O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY | O_APPEND | O_TRUNC | O_DIRECT;

}  // namespace

void CrashFs::open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Node& n = node(ino);
  int fd = ::open(proc_path(n.fd.get()).c_str(), (fi->flags & ~kDropFlags) | O_CLOEXEC);
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  auto h = std::make_unique<Handle>();
  h->fd.reset(fd);
  h->id = n.id;
  // Only sent when atomic O_TRUNC is on, which init() turns off; kept honest.
  if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
    if (::ftruncate(fd, 0) < 0) {
      fuse_reply_err(req, errno);
      return;
    }
    log_truncated(n);
  }
  fi->fh = reinterpret_cast<uint64_t>(h.release());
  fi->keep_cache = 0;
  if (fuse_reply_open(req, fi) != 0) delete &handle(fi);
}

void CrashFs::create(fuse_req_t req, fuse_ino_t parent_ino, const char* name, mode_t mode,
                     fuse_file_info* fi) {
  Node& parent = node(parent_ino);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  int flags = (fi->flags & ~kDropFlags) | O_CLOEXEC | O_NOFOLLOW;
  bool created = true;
  int fd = ::openat(parent.fd.get(), name, flags | O_CREAT | O_EXCL, mode & 07777);
  if (fd < 0 && errno == EEXIST && !(fi->flags & O_EXCL)) {
    created = false;
    fd = ::openat(parent.fd.get(), name, flags);
  }
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  auto h = std::make_unique<Handle>();
  h->fd.reset(fd);
  if (created) {
    ::fchown(fd, ctx->uid, new_gid(parent, ctx));
    if (mode & (S_ISUID | S_ISGID)) ::fchmod(fd, mode & 07777);
  }
  fuse_entry_param e;
  Node* n = nullptr;
  if (int err = child(parent, name, created, &e, &n)) {
    fuse_reply_err(req, err);
    return;
  }
  h->id = n->id;
  if (created) {
    log_made(OpKind::kCreate, parent, name, *n, e.attr);
  } else if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
    if (::ftruncate(fd, 0) == 0) {
      log_truncated(*n);
      e.attr.st_size = 0;
    }
  }
  fi->fh = reinterpret_cast<uint64_t>(h.release());
  fi->keep_cache = 0;
  if (fuse_reply_create(req, &e, fi) != 0) delete &handle(fi);
}

void CrashFs::read(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi) {
  std::vector<char> buf(size);
  ssize_t n = ::pread(handle(fi).fd.get(), buf.data(), size, off);
  if (n < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
}

void CrashFs::write(fuse_req_t req, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  Handle& h = handle(fi);
  size_t done = 0;
  while (done < size) {
    ssize_t w = ::pwrite(h.fd.get(), buf + done, size - done, off + static_cast<off_t>(done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  if (done == 0 && size > 0) {
    fuse_reply_err(req, errno ? errno : EIO);
    return;
  }
  log({.kind = OpKind::kWrite,
       .id = h.id,
       .offset = static_cast<uint64_t>(off),
       .length = done,
       .data = log_.put_data(buf, done),
       .path = path_of(h.id)});
  fuse_reply_write(req, done);
}

void CrashFs::release(fuse_req_t req, fuse_file_info* fi) {
  delete &handle(fi);
  fuse_reply_err(req, 0);
}

void CrashFs::fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi, bool dir) {
  Node& n = node(ino);
  if (options_.real_sync && fi && fi->fh) {
    int fd = handle(fi).fd.get();
    if ((datasync ? ::fdatasync(fd) : ::fsync(fd)) < 0) {
      fuse_reply_err(req, errno);
      return;
    }
  }
  log({.kind = dir ? OpKind::kFsyncdir : OpKind::kFsync,
       .id = n.id,
       .flags = datasync ? 1u : 0u,
       .path = path_of(n.id)});
  fuse_reply_err(req, 0);
}

// ---- directories ----

void CrashFs::opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Node& n = node(ino);
  auto h = std::make_unique<Handle>();
  h->fd.reset(::openat(n.fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  int dup = h->fd.valid() ? ::fcntl(h->fd.get(), F_DUPFD_CLOEXEC, 0) : -1;
  if (dup < 0 || !(h->dir = ::fdopendir(dup))) {
    int err = errno;
    if (dup >= 0) ::close(dup);
    fuse_reply_err(req, err);
    return;
  }
  h->id = n.id;
  fi->fh = reinterpret_cast<uint64_t>(h.release());
  if (fuse_reply_open(req, fi) != 0) delete &handle(fi);
}

void CrashFs::readdir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi) {
  Handle& h = handle(fi);
  if (off != h.offset) {
    ::seekdir(h.dir, off);
    h.entry = nullptr;
    h.offset = off;
  }
  std::vector<char> buf(size);
  size_t pos = 0;
  for (;;) {
    if (!h.entry) {
      errno = 0;
      h.entry = ::readdir(h.dir);
      if (!h.entry) {
        if (errno && pos == 0) {
          fuse_reply_err(req, errno);
          return;
        }
        break;
      }
    }
    struct stat st = {};
    st.st_ino = h.entry->d_ino;
    st.st_mode = static_cast<mode_t>(h.entry->d_type) << 12;
    size_t need =
        fuse_add_direntry(req, buf.data() + pos, size - pos, h.entry->d_name, &st, h.entry->d_off);
    if (need > size - pos) break;
    pos += need;
    h.offset = h.entry->d_off;
    h.entry = nullptr;
  }
  fuse_reply_buf(req, buf.data(), pos);
}

void CrashFs::releasedir(fuse_req_t req, fuse_file_info* fi) {
  delete &handle(fi);
  fuse_reply_err(req, 0);
}

void CrashFs::statfs(fuse_req_t req, fuse_ino_t ino) {
  struct statvfs sv;
  if (::fstatvfs(node(ino).fd.get(), &sv) < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_reply_statfs(req, &sv);
}

// ---- xattrs ----

std::string CrashFs::symlink_path(const Node& n) {
  auto w = where_.find(n.id);
  if (w == where_.end()) return {};
  auto d = dirs_.find(w->second.dir);
  if (d == dirs_.end()) return {};
  struct stat st;
  if (::fstatat(d->second->fd.get(), w->second.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 ||
      st.st_ino != n.ino)
    return {};
  return proc_path(d->second->fd.get()) + "/" + w->second.name;
}

bool CrashFs::signal(const char* name) {
  std::string_view s = name;
  if (s == kSignalSyncfs)
    log({.kind = OpKind::kSyncfs});
  else if (s == kSignalSync)
    log({.kind = OpKind::kSync});
  else if (s.starts_with(kSignalMarkPrefix)) {
    auto label = unescape(s.substr(kSignalMarkPrefix.size()));
    log({.kind = OpKind::kMark, .value = label ? *label : std::string(s)});
  } else
    return false;
  return true;
}

void CrashFs::setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                       size_t size, int flags) {
  Node& n = node(ino);
  int r;
  if (S_ISLNK(n.type)) {
    std::string p = symlink_path(n);
    r = p.empty() ? (errno = EPERM, -1) : ::lsetxattr(p.c_str(), name, value, size, flags);
  } else {
    r = ::setxattr(proc_path(n.fd.get()).c_str(), name, value, size, flags);
  }
  if (r < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  log({.kind = OpKind::kSetxattr,
       .id = n.id,
       .flags = static_cast<uint32_t>(flags),
       .target = name,
       .value = std::string(value, size),
       .path = path_of(n.id),
       .ino = n.ino});
  fuse_reply_err(req, 0);
}

void CrashFs::getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (ino == FUSE_ROOT_ID && signal(name)) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  Node& n = node(ino);
  std::string p = S_ISLNK(n.type) ? symlink_path(n) : proc_path(n.fd.get());
  if (p.empty()) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  std::vector<char> buf(size);
  ssize_t r = S_ISLNK(n.type) ? ::lgetxattr(p.c_str(), name, buf.data(), size)
                              : ::getxattr(p.c_str(), name, buf.data(), size);
  if (r < 0)
    fuse_reply_err(req, errno);
  else if (size == 0)
    fuse_reply_xattr(req, static_cast<size_t>(r));
  else
    fuse_reply_buf(req, buf.data(), static_cast<size_t>(r));
}

void CrashFs::listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Node& n = node(ino);
  std::string p = S_ISLNK(n.type) ? symlink_path(n) : proc_path(n.fd.get());
  if (p.empty()) {
    if (size == 0)
      fuse_reply_xattr(req, 0);
    else
      fuse_reply_buf(req, nullptr, 0);
    return;
  }
  std::vector<char> buf(size);
  ssize_t r = S_ISLNK(n.type) ? ::llistxattr(p.c_str(), buf.data(), size)
                              : ::listxattr(p.c_str(), buf.data(), size);
  if (r < 0)
    fuse_reply_err(req, errno);
  else if (size == 0)
    fuse_reply_xattr(req, static_cast<size_t>(r));
  else
    fuse_reply_buf(req, buf.data(), static_cast<size_t>(r));
}

void CrashFs::removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Node& n = node(ino);
  int r;
  if (S_ISLNK(n.type)) {
    std::string p = symlink_path(n);
    r = p.empty() ? (errno = EPERM, -1) : ::lremovexattr(p.c_str(), name);
  } else {
    r = ::removexattr(proc_path(n.fd.get()).c_str(), name);
  }
  if (r < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  log({.kind = OpKind::kRemovexattr,
       .id = n.id,
       .target = name,
       .path = path_of(n.id),
       .ino = n.ino});
  fuse_reply_err(req, 0);
}

// ---- space ----

void CrashFs::fallocate(fuse_req_t req, int mode, off_t off, off_t len, fuse_file_info* fi) {
  Handle& h = handle(fi);
  if (::fallocate(h.fd.get(), mode, off, len) < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  log({.kind = OpKind::kFallocate,
       .id = h.id,
       .flags = static_cast<uint32_t>(mode),
       .offset = static_cast<uint64_t>(off),
       .length = static_cast<uint64_t>(len),
       .path = path_of(h.id)});
  fuse_reply_err(req, 0);
}

void CrashFs::lseek(fuse_req_t req, off_t off, int whence, fuse_file_info* fi) {
  off_t r = ::lseek(handle(fi).fd.get(), off, whence);
  if (r < 0)
    fuse_reply_err(req, errno);
  else
    fuse_reply_lseek(req, r);
}

// ---- the table ----

namespace {

CrashFs& fs(fuse_req_t req) { return *static_cast<CrashFs*>(fuse_req_userdata(req)); }

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops o = {};
  o.init = [](void*, fuse_conn_info* conn) {
    // Writes must reach us in order, as they happen: no write-back cache.
    // O_TRUNC must come as a setattr we log, not inside open.
    conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_ATOMIC_O_TRUNC);
  };
  o.lookup = [](fuse_req_t r, fuse_ino_t p, const char* n) { fs(r).lookup(r, p, n); };
  o.forget = [](fuse_req_t r, fuse_ino_t i, uint64_t n) {
    fs(r).forget(i, n);
    fuse_reply_none(r);
  };
  o.forget_multi = [](fuse_req_t r, size_t count, fuse_forget_data* f) {
    for (size_t i = 0; i < count; i++) fs(r).forget(f[i].ino, f[i].nlookup);
    fuse_reply_none(r);
  };
  o.getattr = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { fs(r).getattr(r, i, fi); };
  o.setattr = [](fuse_req_t r, fuse_ino_t i, struct stat* a, int v, fuse_file_info* fi) {
    fs(r).setattr(r, i, a, v, fi);
  };
  o.readlink = [](fuse_req_t r, fuse_ino_t i) { fs(r).readlink(r, i); };
  o.mknod = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, dev_t d) {
    fs(r).make_node(r, p, n, m, d, nullptr);
  };
  o.mkdir = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m) {
    fs(r).make_node(r, p, n, m | S_IFDIR, 0, nullptr);
  };
  o.symlink = [](fuse_req_t r, const char* l, fuse_ino_t p, const char* n) {
    fs(r).make_node(r, p, n, S_IFLNK | 0777, 0, l);
  };
  o.link = [](fuse_req_t r, fuse_ino_t i, fuse_ino_t p, const char* n) { fs(r).link(r, i, p, n); };
  o.unlink = [](fuse_req_t r, fuse_ino_t p, const char* n) { fs(r).remove(r, p, n, false); };
  o.rmdir = [](fuse_req_t r, fuse_ino_t p, const char* n) { fs(r).remove(r, p, n, true); };
  o.rename = [](fuse_req_t r, fuse_ino_t p, const char* n, fuse_ino_t np, const char* nn,
                unsigned f) { fs(r).rename(r, p, n, np, nn, f); };
  o.open = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { fs(r).open(r, i, fi); };
  o.create = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, fuse_file_info* fi) {
    fs(r).create(r, p, n, m, fi);
  };
  o.read = [](fuse_req_t r, fuse_ino_t, size_t s, off_t off, fuse_file_info* fi) {
    fs(r).read(r, s, off, fi);
  };
  o.write = [](fuse_req_t r, fuse_ino_t, const char* b, size_t s, off_t off, fuse_file_info* fi) {
    fs(r).write(r, b, s, off, fi);
  };
  o.flush = [](fuse_req_t r, fuse_ino_t, fuse_file_info*) { fuse_reply_err(r, 0); };
  o.release = [](fuse_req_t r, fuse_ino_t, fuse_file_info* fi) { fs(r).release(r, fi); };
  o.fsync = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) {
    fs(r).fsync(r, i, d, fi, false);
  };
  o.opendir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { fs(r).opendir(r, i, fi); };
  o.readdir = [](fuse_req_t r, fuse_ino_t, size_t s, off_t off, fuse_file_info* fi) {
    fs(r).readdir(r, s, off, fi);
  };
  o.releasedir = [](fuse_req_t r, fuse_ino_t, fuse_file_info* fi) { fs(r).releasedir(r, fi); };
  // Without this the kernel answers a directory's fsync itself, unrecorded.
  o.fsyncdir = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) {
    fs(r).fsync(r, i, d, fi, true);
  };
  o.statfs = [](fuse_req_t r, fuse_ino_t i) { fs(r).statfs(r, i); };
  o.setxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, const char* v, size_t s, int f) {
    fs(r).setxattr(r, i, n, v, s, f);
  };
  o.getxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, size_t s) {
    fs(r).getxattr(r, i, n, s);
  };
  o.listxattr = [](fuse_req_t r, fuse_ino_t i, size_t s) { fs(r).listxattr(r, i, s); };
  o.removexattr = [](fuse_req_t r, fuse_ino_t i, const char* n) { fs(r).removexattr(r, i, n); };
  o.fallocate = [](fuse_req_t r, fuse_ino_t, int m, off_t off, off_t len, fuse_file_info* fi) {
    fs(r).fallocate(r, m, off, len, fi);
  };
  o.lseek = [](fuse_req_t r, fuse_ino_t, off_t off, int w, fuse_file_info* fi) {
    fs(r).lseek(r, off, w, fi);
  };
  // No flock/getlk/setlk: the kernel then keeps flock and POSIX locks itself,
  // which is right for processes on one host. No tmpfile or syncfs: libfuse
  // 3.14 has no hook for them (see README.md in this directory).
  return o;
}

}  // namespace

const fuse_lowlevel_ops& CrashFs::ops() {
  static const fuse_lowlevel_ops table = make_ops();
  return table;
}

}  // namespace togo::crashfs
