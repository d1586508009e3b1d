// Nodes, the initial scan and the namespace operations of the recording
// file system. File I/O, directories and xattrs are in crashfs_io.cc.
#include "crashfs_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "base/fs.h"
#include "base/sys.h"

namespace togo::crashfs {
namespace {

constexpr double kTimeout = 1.0;

int stat_fd(int fd, struct stat* st) {
  return ::fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
}

}  // namespace

// ---- LogWriter ----

Result<LogWriter> LogWriter::open(const std::string& path) {
  LogWriter w;
  w.log_ = TRY(sys::open_at(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644));
  w.data_ = TRY(sys::open_at(AT_FDCWD, path + ".data", O_WRONLY | O_CREAT | O_TRUNC, 0644));
  return w;
}

void LogWriter::record(const Op& op) {
  std::string line = format_op(op);
  // One write: O_APPEND keeps concurrent writers' lines whole.
  if (::write(log_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    std::fprintf(stderr, "togo-crashfs: writing the log failed: the recording is incomplete\n");
}

uint64_t LogWriter::put_data(const char* data, size_t n) {
  uint64_t at = data_end_;
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::pwrite(data_.get(), data + done, n - done, static_cast<off_t>(at + done));
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      std::fprintf(stderr, "togo-crashfs: writing the data log failed\n");
      break;
    }
    done += static_cast<size_t>(w);
  }
  data_end_ += n;
  return at;
}

// ---- nodes ----

CrashFs::CrashFs(Fd backing_root, LogWriter log, FsOptions options)
    : backing_(std::move(backing_root)), log_(std::move(log)), options_(options) {}

Node& CrashFs::node(fuse_ino_t ino) {
  if (ino == FUSE_ROOT_ID) return root_;
  return *reinterpret_cast<Node*>(ino);
}

uint64_t CrashFs::id_of(ino_t ino) {
  auto it = ids_.find(ino);
  if (it != ids_.end()) return it->second;
  // Not seen in the scan nor created through the mount: someone changed the
  // backing directory behind our back. Its operations replay as dropped.
  std::fprintf(stderr, "togo-crashfs: inode %llu appeared outside the mount\n",
               static_cast<unsigned long long>(ino));
  return new_id(ino);
}

uint64_t CrashFs::new_id(ino_t ino) { return ids_[ino] = next_id_++; }

uint64_t CrashFs::id_at(Node& parent, const char* name) {
  struct stat st;
  if (::fstatat(parent.fd.get(), name, &st, AT_SYMLINK_NOFOLLOW) < 0) return 0;
  return id_of(st.st_ino);
}

std::string CrashFs::path_in(uint64_t dir, const std::string& name) const {
  std::string p = path_of(dir);
  return p.empty() ? name : p + "/" + name;
}

std::string CrashFs::path_of(uint64_t id) const {
  std::string path;
  for (int depth = 0; depth < 256 && id != root_.id; depth++) {
    auto it = where_.find(id);
    if (it == where_.end()) return "?/" + path;
    path = path.empty() ? it->second.name : it->second.name + "/" + path;
    id = it->second.dir;
  }
  return path;
}

int CrashFs::child(Node& parent, const char* name, bool fresh, fuse_entry_param* e, Node** out) {
  int fd = ::openat(parent.fd.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  Fd owned(fd);
  struct stat st;
  if (int err = stat_fd(fd, &st)) return err;
  auto& slot = nodes_[{st.st_dev, st.st_ino}];
  if (!slot) {
    slot = std::make_unique<Node>();
    slot->fd = std::move(owned);
    slot->dev = st.st_dev;
    slot->ino = st.st_ino;
    slot->type = st.st_mode & S_IFMT;
    slot->id = fresh ? new_id(st.st_ino) : id_of(st.st_ino);
  } else if (fresh) {
    slot->id = new_id(st.st_ino);
  }
  Node* n = slot.get();
  n->nlookup++;
  if (fresh || !where_.contains(n->id)) where_[n->id] = {parent.id, name};
  if (S_ISDIR(st.st_mode)) dirs_[n->id] = n;
  *e = {};
  e->ino = reinterpret_cast<fuse_ino_t>(n);
  e->attr = st;
  e->attr_timeout = kTimeout;
  e->entry_timeout = kTimeout;
  if (out) *out = n;
  return 0;
}

void CrashFs::forget(fuse_ino_t ino, uint64_t n) {
  if (ino == FUSE_ROOT_ID) return;
  Node& node = *reinterpret_cast<Node*>(ino);
  node.nlookup -= std::min(node.nlookup, n);
  if (node.nlookup > 0) return;
  auto it = dirs_.find(node.id);
  if (it != dirs_.end() && it->second == &node) dirs_.erase(it);
  nodes_.erase({node.dev, node.ino});
}

// ---- the initial namespace ----

Result<void> CrashFs::scan() {
  root_.fd = TRY(sys::open_at(backing_.get(), ".", O_PATH | O_DIRECTORY));
  struct stat st;
  if (int err = stat_fd(root_.fd.get(), &st)) return sys_error(err, "stat of the backing root");
  root_.dev = st.st_dev;
  root_.ino = st.st_ino;
  root_.type = S_IFDIR;
  root_.id = new_id(st.st_ino);
  root_.nlookup = 1;
  dirs_[root_.id] = &root_;
  log({.kind = OpKind::kRoot, .id = root_.id, .mode = st.st_mode, .ino = st.st_ino});

  struct Pending {
    Fd fd;
    uint64_t id;
  };
  std::vector<Pending> todo;
  todo.push_back({TRY(sys::open_at(backing_.get(), ".", O_RDONLY | O_DIRECTORY)), root_.id});
  while (!todo.empty()) {
    Pending dir = std::move(todo.back());
    todo.pop_back();
    auto names = TRY_CTX(fs::read_dir(dir.fd.get()), "scanning " + path_of(dir.id));
    for (const std::string& name : names) {
      struct stat cst;
      if (::fstatat(dir.fd.get(), name.c_str(), &cst, AT_SYMLINK_NOFOLLOW) < 0)
        return sys_error(errno, "scanning " + path_in(dir.id, name));
      auto known = ids_.find(cst.st_ino);
      uint64_t id = known != ids_.end() ? known->second : new_id(cst.st_ino);
      where_.try_emplace(id, Where{dir.id, name});
      log({.kind = OpKind::kEntry,
           .id = id,
           .dir = dir.id,
           .name = name,
           .mode = cst.st_mode,
           .ino = cst.st_ino});
      // Another file system mounted inside is not ours to record.
      if (S_ISDIR(cst.st_mode) && cst.st_dev == st.st_dev)
        todo.push_back(
            {TRY(sys::open_at(dir.fd.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)), id});
    }
  }
  return {};
}

// ---- attributes ----

void CrashFs::lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_entry_param e;
  if (int err = child(node(parent), name, false, &e, nullptr)) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_entry(req, &e);
}

void CrashFs::getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  struct stat st;
  if (int err = stat_fd(node(ino).fd.get(), &st)) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_attr(req, &st, kTimeout);
}

void CrashFs::setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid,
                      fuse_file_info* fi) {
  Node& n = node(ino);
  int fd = fi && fi->fh ? reinterpret_cast<Handle*>(fi->fh)->fd.get() : -1;
  std::string proc = proc_path(n.fd.get());
  uint32_t done = 0;
  int err = 0;
  if (valid & FUSE_SET_ATTR_MODE) {
    int r = fd >= 0 ? ::fchmod(fd, attr->st_mode) : ::chmod(proc.c_str(), attr->st_mode);
    if (r < 0)
      err = errno;
    else
      done |= kSetMode;
  }
  if (!err && (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
    uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : static_cast<uid_t>(-1);
    gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : static_cast<gid_t>(-1);
    if (::fchownat(n.fd.get(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
      err = errno;
    else
      done |= kSetUid | kSetGid | kSetMode;  // chown may clear set-id bits
  }
  if (!err && (valid & FUSE_SET_ATTR_SIZE)) {
    int r = fd >= 0 ? ::ftruncate(fd, attr->st_size) : ::truncate(proc.c_str(), attr->st_size);
    if (r < 0)
      err = errno;
    else
      done |= kSetSize;
  }
  if (!err && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
    struct timespec tv[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (valid & FUSE_SET_ATTR_ATIME_NOW)
      tv[0].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_ATIME)
      tv[0] = attr->st_atim;
    if (valid & FUSE_SET_ATTR_MTIME_NOW)
      tv[1].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_MTIME)
      tv[1] = attr->st_mtim;
    int r = fd >= 0 ? ::futimens(fd, tv)
                    : ::utimensat(n.fd.get(), "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
    if (r < 0)
      err = errno;
    else
      done |= ((valid & FUSE_SET_ATTR_ATIME) ? kSetAtime : 0u) |
              ((valid & FUSE_SET_ATTR_MTIME) ? kSetMtime : 0u);
  }
  struct stat st;
  int serr = stat_fd(n.fd.get(), &st);
  if (done && !serr) {
    // The values as they resulted ("now" resolved, set-id bits as cleared).
    log({.kind = OpKind::kSetattr,
         .id = n.id,
         .mode = st.st_mode,
         .uid = st.st_uid,
         .gid = st.st_gid,
         .set = done,
         .size = static_cast<uint64_t>(st.st_size),
         .atime_sec = st.st_atim.tv_sec,
         .atime_nsec = st.st_atim.tv_nsec,
         .mtime_sec = st.st_mtim.tv_sec,
         .mtime_nsec = st.st_mtim.tv_nsec,
         .path = path_of(n.id),
         .ino = n.ino});
  }
  if (err || serr) {
    fuse_reply_err(req, err ? err : serr);
    return;
  }
  fuse_reply_attr(req, &st, kTimeout);
}

void CrashFs::readlink(fuse_req_t req, fuse_ino_t ino) {
  char buf[PATH_MAX + 1];
  ssize_t n = ::readlinkat(node(ino).fd.get(), "", buf, sizeof buf);
  if (n < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  if (n >= static_cast<ssize_t>(sizeof buf)) {
    fuse_reply_err(req, ENAMETOOLONG);
    return;
  }
  buf[n] = 0;
  fuse_reply_readlink(req, buf);
}

// ---- namespace ----

void CrashFs::make_node(fuse_req_t req, fuse_ino_t parent_ino, const char* name, mode_t mode,
                        dev_t rdev, const char* link) {
  Node& parent = node(parent_ino);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  int r;
  if (link)
    r = ::symlinkat(link, parent.fd.get(), name);
  else if (S_ISDIR(mode))
    r = ::mkdirat(parent.fd.get(), name, mode & 07777);
  else
    r = ::mknodat(parent.fd.get(), name, mode, rdev);
  if (r < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  // Made as root; owned as the caller.
  ::fchownat(parent.fd.get(), name, ctx->uid, new_gid(parent, ctx), AT_SYMLINK_NOFOLLOW);
  if (!link && (mode & (S_ISUID | S_ISGID)) && !S_ISDIR(mode))
    ::fchmodat(parent.fd.get(), name, mode & 07777, 0);
  fuse_entry_param e;
  Node* n = nullptr;
  if (int err = child(parent, name, true, &e, &n)) {
    fuse_reply_err(req, err);
    return;
  }
  OpKind kind = link            ? OpKind::kSymlink
                : S_ISDIR(mode) ? OpKind::kMkdir
                : S_ISREG(mode) ? OpKind::kCreate
                                : OpKind::kMknod;
  log_made(kind, parent, name, *n, e.attr, link);
  fuse_reply_entry(req, &e);
}

gid_t CrashFs::new_gid(const Node& parent, const fuse_ctx* ctx) {
  struct stat pst;
  bool setgid_dir = stat_fd(parent.fd.get(), &pst) == 0 && (pst.st_mode & S_ISGID);
  return setgid_dir ? static_cast<gid_t>(-1) : ctx->gid;
}

void CrashFs::log_made(OpKind kind, const Node& parent, const char* name, const Node& n,
                       const struct stat& st, const char* link) {
  log({.kind = kind,
       .id = n.id,
       .dir = parent.id,
       .name = name,
       .mode = st.st_mode,
       .uid = st.st_uid,
       .gid = st.st_gid,
       .rdev = st.st_rdev,
       .target = link ? link : "",
       .path = path_in(parent.id, name),
       .ino = n.ino});
}

void CrashFs::log_truncated(const Node& n) {
  log({.kind = OpKind::kSetattr, .id = n.id, .set = kSetSize, .path = path_of(n.id), .ino = n.ino});
}

void CrashFs::link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent_ino, const char* name) {
  Node& n = node(ino);
  Node& parent = node(parent_ino);
  if (::linkat(n.fd.get(), "", parent.fd.get(), name, AT_EMPTY_PATH) < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_entry_param e;
  if (int err = child(parent, name, false, &e, nullptr)) {
    fuse_reply_err(req, err);
    return;
  }
  where_[n.id] = {parent.id, name};
  log({.kind = OpKind::kLink,
       .id = n.id,
       .dir = parent.id,
       .name = name,
       .path = path_in(parent.id, name),
       .ino = n.ino});
  fuse_reply_entry(req, &e);
}

void CrashFs::remove(fuse_req_t req, fuse_ino_t parent_ino, const char* name, bool dir) {
  Node& parent = node(parent_ino);
  uint64_t id = id_at(parent, name);
  if (::unlinkat(parent.fd.get(), name, dir ? AT_REMOVEDIR : 0) < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  log({.kind = dir ? OpKind::kRmdir : OpKind::kUnlink,
       .id = id,
       .dir = parent.id,
       .name = name,
       .path = path_in(parent.id, name)});
  if (auto w = where_.find(id);
      w != where_.end() && w->second.dir == parent.id && w->second.name == name)
    w->second.name += " (removed)";
  fuse_reply_err(req, 0);
}

void CrashFs::rename(fuse_req_t req, fuse_ino_t parent_ino, const char* name,
                     fuse_ino_t new_parent_ino, const char* new_name, unsigned flags) {
  Node& parent = node(parent_ino);
  Node& new_parent = node(new_parent_ino);
  uint64_t id = id_at(parent, name);
  uint64_t other = id_at(new_parent, new_name);
  if (::renameat2(parent.fd.get(), name, new_parent.fd.get(), new_name, flags) < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  Op op{.kind = OpKind::kRename,
        .id = id,
        .dir = parent.id,
        .name = name,
        .new_dir = new_parent.id,
        .new_name = new_name,
        .other = other,
        .flags = flags,
        .path = path_in(parent.id, name) + " -> " + path_in(new_parent.id, new_name)};
  if (flags & RENAME_WHITEOUT) {
    struct stat st;
    if (::fstatat(parent.fd.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      op.whiteout = new_id(st.st_ino);
      where_[op.whiteout] = {parent.id, name};
    }
  }
  where_[id] = {new_parent.id, new_name};
  if (flags & RENAME_EXCHANGE) where_[other] = {parent.id, name};
  log(op);
  fuse_reply_err(req, 0);
}

}  // namespace togo::crashfs
