// Materializing a crash state: copy the starting tree, then perform the
// plan's steps, each resolved beneath the destination without following
// any symlink.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "base/fs.h"
#include "base/sys.h"
#include "crash_state.h"

namespace togo::crashfs {
namespace {

std::string joined(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : "/") + p;
  return s;
}

std::string shown(const ReplayStep& s) {
  std::string d = joined(s.dir);
  return s.name.empty() ? (d.empty() ? "." : d) : (d.empty() ? s.name : d + "/" + s.name);
}

// SECURITY: every directory is opened beneath the destination's root with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, and every final name is a single
// component (checked when the log was parsed) used with *at() calls that do
// not follow it.
Result<Fd> open_dir(int root, const std::vector<std::string>& dir) {
  return sys::open_dir_beneath(root, joined(dir));
}

Result<Fd> open_file(int dir, const ReplayStep& s, int flags) {
  return TRY_CTX(sys::open_at(dir, s.name, flags | O_NOFOLLOW), shown(s));
}

Result<void> check(int r, const std::string& what) {
  if (r < 0) return sys_error(errno, what);
  return {};
}

// Copies [data, data+n) of the side file to offset `off` of `fd` through
// `buf`, which is grown to at most 1 MiB and kept for the next write.
Result<void> copy_data(int data, uint64_t from, uint64_t n, int fd, uint64_t off,
                       std::vector<char>& buf) {
  if (buf.size() < std::min<uint64_t>(n, 1 << 20))
    buf.resize(static_cast<size_t>(std::min<uint64_t>(n, 1 << 20)));
  while (n > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, buf.size()));
    ssize_t r = ::pread(data, buf.data(), chunk, static_cast<off_t>(from));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      return r == 0 ? error("the data log is shorter than the log says")
                    : sys_error(errno, "reading the data log");
    size_t got = static_cast<size_t>(r), done = 0;
    while (done < got) {
      ssize_t w = ::pwrite(fd, buf.data() + done, got - done, static_cast<off_t>(off + done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return sys_error(errno, "writing");
      done += static_cast<size_t>(w);
    }
    from += got;
    off += got;
    n -= got;
  }
  return {};
}

// Owner first: chown clears set-ID bits, which the mode then restores.
Result<void> set_owner_mode(int dir, const std::string& name, const Op& op, bool owner, bool mode) {
  const char* n = name.empty() ? "" : name.c_str();
  int at = AT_SYMLINK_NOFOLLOW | (name.empty() ? AT_EMPTY_PATH : 0);
  if (owner) TRY(check(::fchownat(dir, n, op.uid, op.gid, at), "chown"));
  if (!mode) return {};
  int r = name.empty() ? ::fchmod(dir, op.mode & 07777)
                       : ::fchmodat(dir, n, op.mode & 07777, AT_SYMLINK_NOFOLLOW);
  if (r < 0 && errno != EOPNOTSUPP) return sys_error(errno, "chmod");  // symlinks have no mode
  return {};
}

Result<void> execute(int root, int data, std::vector<char>& buf, const Op& op,
                     const ReplayStep& s) {
  Fd dir = TRY(open_dir(root, s.dir));
  int d = dir.get();
  const char* name = s.name.c_str();
  switch (op.kind) {
    case OpKind::kCreate: {
      Fd f = TRY(open_file(d, s, O_WRONLY | O_CREAT | O_EXCL));
      TRY(check(::fchown(f.get(), op.uid, op.gid), "chown"));
      return check(::fchmod(f.get(), op.mode & 07777), "chmod");
    }
    case OpKind::kMknod:
      TRY(check(::mknodat(d, name, op.mode, op.rdev), "mknod " + shown(s)));
      return set_owner_mode(d, s.name, op, true, true);
    case OpKind::kMkdir:
      TRY(check(::mkdirat(d, name, 0700), "mkdir " + shown(s)));
      return set_owner_mode(d, s.name, op, true, true);
    case OpKind::kSymlink:
      TRY(check(::symlinkat(op.target.c_str(), d, name), "symlink " + shown(s)));
      return set_owner_mode(d, s.name, op, true, false);
    case OpKind::kLink: {
      Fd src = TRY(open_dir(root, s.dir2));
      return check(::linkat(src.get(), s.name2.c_str(), d, name, 0), "link " + shown(s));
    }
    case OpKind::kUnlink:
    case OpKind::kRmdir:
      return check(::unlinkat(d, name, op.kind == OpKind::kRmdir ? AT_REMOVEDIR : 0),
                   "remove " + shown(s));
    case OpKind::kRename: {
      Fd to = TRY(open_dir(root, s.dir2));
      return check(::renameat2(d, name, to.get(), s.name2.c_str(), op.flags), "rename " + shown(s));
    }
    case OpKind::kSetattr: {
      if (op.set & (kSetUid | kSetGid | kSetMode))
        TRY(set_owner_mode(d, s.name, op, op.set & (kSetUid | kSetGid), op.set & kSetMode));
      if (op.set & kSetSize) {
        Fd f = TRY(open_file(d, s, O_WRONLY));
        TRY(check(::ftruncate(f.get(), static_cast<off_t>(op.size)), "truncate " + shown(s)));
      }
      if (op.set & (kSetAtime | kSetMtime)) {
        struct timespec tv[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
        if (op.set & kSetAtime) tv[0] = {op.atime_sec, op.atime_nsec};
        if (op.set & kSetMtime) tv[1] = {op.mtime_sec, op.mtime_nsec};
        int r = s.name.empty() ? ::futimens(d, tv) : ::utimensat(d, name, tv, AT_SYMLINK_NOFOLLOW);
        TRY(check(r, "utimens " + shown(s)));
      }
      return {};
    }
    case OpKind::kSetxattr:
    case OpKind::kRemovexattr: {
      // What the call leaves is replayed, not whether it could fail: in a
      // reordered state the set it replaced or removed may be lost, so
      // XATTR_CREATE/XATTR_REPLACE are dropped and a missing one is removed.
      std::string p = "/proc/self/fd/" + std::to_string(d) + "/" + s.name;
      const char* key = op.target.c_str();
      int r =
          op.kind == OpKind::kSetxattr
              ? (s.name.empty() ? ::fsetxattr(d, key, op.value.data(), op.value.size(), 0)
                                : ::lsetxattr(p.c_str(), key, op.value.data(), op.value.size(), 0))
              : (s.name.empty() ? ::fremovexattr(d, key) : ::lremovexattr(p.c_str(), key));
      if (r < 0 && errno == ENODATA && op.kind == OpKind::kRemovexattr) r = 0;
      return check(r, "xattr " + op.target + " of " + shown(s));
    }
    case OpKind::kWrite: {
      Fd f = TRY(open_file(d, s, O_WRONLY));
      TRY_CTX(copy_data(data, op.data, std::min(op.length, s.keep), f.get(), op.offset, buf),
              shown(s));
      return {};
    }
    case OpKind::kFallocate: {
      Fd f = TRY(open_file(d, s, O_WRONLY));
      return check(::fallocate(f.get(), static_cast<int>(op.flags), static_cast<off_t>(op.offset),
                               static_cast<off_t>(op.length)),
                   "fallocate " + shown(s));
    }
    default:
      return {};
  }
}

}  // namespace

Result<Materialized> materialize(const std::string& snapshot_dir, const Log& log,
                                 const CrashState& state, const std::string& dest_dir) {
  ReplayPlan plan = plan_replay(log, state);
  TRY_CTX(snapshot(snapshot_dir, dest_dir), "copying the starting tree");
  Fd root = TRY(sys::open_at(AT_FDCWD, dest_dir, O_RDONLY | O_DIRECTORY));
  Fd data;
  std::vector<char> buf;  // one for all of the state's writes
  for (const ReplayStep& s : plan.steps) {
    const Op& op = log.ops[s.op];
    if (op.kind == OpKind::kWrite && !data.valid())
      data = TRY(sys::open_at(AT_FDCWD, log.data_path, O_RDONLY));
    TRY_CTX(execute(root.get(), data.get(), buf, op, s), "replaying " + log.describe(s.op));
  }
  return Materialized{.applied = plan.steps.size(), .dropped = std::move(plan.dropped)};
}

Result<Materialized> materialize(const std::string& snapshot_dir, const Log& log, size_t cut,
                                 Mode mode, const std::string& dest_dir,
                                 const ModelOptions& options) {
  auto states = crash_states(log, cut, mode, options);
  if (states.empty()) states = crash_states(log, cut, Mode::kAllApplied, options);
  return materialize(snapshot_dir, log, states.front(), dest_dir);
}

}  // namespace togo::crashfs
