#include "store/store.h"

#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "base/fs.h"
#include "base/sys.h"
#include "store/layout.h"
#include "store/recovery.h"

namespace togo::store {

Result<std::string> locate(const LocateInputs& in) {
  if (in.flag) {
    if (in.flag->empty()) return error(ErrorKind::kUsage, "--store: empty path");
    return fs::absolute(*in.flag);
  }
  if (const char* v = in.getenv("TOGO_STORE"); v && *v) return fs::absolute(v);
  if (!in.exe_dir.empty()) {
    std::string beside = fs::join(in.exe_dir, "togo-store");
    if (in.is_dir(beside)) return beside;
  }
  if (const char* v = in.getenv("XDG_DATA_HOME"); v && *v == '/') return fs::join(v, "togo");
  if (const char* v = in.getenv("HOME"); v && *v == '/') return fs::join(v, ".local/share/togo");
  return error(ErrorKind::kUsage, "cannot tell where the store is: HOME is not set", "pass --store PATH or set TOGO_STORE");
}

Result<std::string> locate(const std::optional<std::string>& flag) {
  LocateInputs in;
  in.flag = flag;
  in.getenv = [](const char* k) { return std::getenv(k); };
  // Where togo itself is matters only when neither --store nor TOGO_STORE
  // says where the store is.
  const char* env = std::getenv("TOGO_STORE");
  char exe[4096];
  ssize_t n = flag || (env && *env) ? 0 : ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string p(exe, static_cast<size_t>(n));
    in.exe_dir = p.substr(0, p.rfind('/'));
  }
  in.is_dir = [](const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  };
  return locate(in);
}

namespace {

bool dir_is_empty(int fd) {
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    return false;
  }
  bool empty = true;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  return empty;
}

// Reads and checks the marker; a missing marker in an empty directory is
// reported as format 0 (a store may be created there).
Result<int> read_format(int fd, const std::string& path) {
  auto text = fs::read_file(fd, kMarker);
  if (!text) {
    if (text.error().err == ENOENT && dir_is_empty(fd)) return 0;
    if (text.error().err == ENOENT)
      return error(ErrorKind::kConflict, path + ": not a togo store (it has files but no " +
                                             kMarker + " file)", "choose an empty directory or an existing store");
    return std::unexpected(std::move(text.error()).context(path));
  }
  int format = parse_marker(*text);
  if (format < 0)
    return error(ErrorKind::kBadInput, path + ": not a togo store (" + kMarker +
                                           " file is unreadable)");
  if (format > kFormat)
    return error(ErrorKind::kConflict,
                 "store " + path + ": format " + std::to_string(format) +
                     " is newer than this togo understands (" + std::to_string(kFormat) + ")", "use a newer togo with this store; it was left unchanged");
  return format;
}

// A crash while the store was being created leaves the marker without a
// catalog: nothing was ever stored, so a writer starts the catalog and a
// reader sees an empty store (kNotFound). A catalog lost from a store that
// holds things is damage, for `togo fsck` to report.
Result<void> unless_catalog_lost(int fd, const std::string& path, Store::Access access) {
  struct stat st;
  if (::fstatat(fd, kCatalog, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) return {};
  for (const char* d : {kBlobs, kLayers, kEnvs})
    if (auto sub = sys::open_at(fd, d, O_RDONLY | O_DIRECTORY); sub && !fs::list_dir(sub->get()).empty())
      return error(ErrorKind::kFailed,
                   "store " + path + ": " + kCatalog + " is missing though the store holds layers or environments",
                   "run `togo fsck`; restore " + std::string(kCatalog) + " from a copy of the store");
  if (access == Store::Access::kRead)
    return error(ErrorKind::kNotFound, "store " + path + ": empty (nothing created yet)");
  return {};
}

// The holder a lock file names ("pid N: VERB"), or "" if it is empty.
std::string holder_of(int lock_fd) {
  char buf[256];
  ssize_t n = ::pread(lock_fd, buf, sizeof buf - 1, 0);
  std::string holder(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
  return holder;
}

Result<void> create_layout(int fd, const std::string& path) {
  for (const char* d : {"blobs", kBlobs, kLayers, kEnvs, kTmp})
    TRY_CTX(sys::ensure_dir_at(fd, d, 0755), path);
  return fs::sync_dir(fd, path);
}

}  // namespace

bool Store::exists(const std::string& path) {
  struct stat st;
  return ::stat(fs::join(path, kMarker).c_str(), &st) == 0;
}

Result<std::optional<Store>> Store::open_existing(const std::string& path, Access access) {
  if (exists(path)) return TRY(open(path, access));
  auto probe = open(path, Access::kRead);  // says why a directory is not a store
  if (probe) return std::optional<Store>();
  if (probe.error().kind == ErrorKind::kNotFound) return std::nullopt;
  return std::unexpected(std::move(probe.error()));
}

Result<Store> Store::open(const std::string& path, Access access) {
  if (access == Access::kWrite) TRY(fs::make_dirs(path, 0755));
  Fd fd = TRY_CTX(sys::open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY), "store");
  int format = TRY(read_format(fd.get(), path));
  if (format == 0) {
    if (access == Access::kRead)
      return error(ErrorKind::kNotFound, "store " + path + ": empty (nothing created yet)");
    // Marker first: a crash after it leaves a store whose missing parts are
    // created again on the next open.
    TRY_CTX(fs::write_file_atomic(fd.get(), kMarker, marker_text(kFormat)), "creating store");
  }
  if (access == Access::kWrite) TRY(create_layout(fd.get(), path));
  // Readers look for a missing catalog only when opening it failed: that
  // costs nothing on the path of every `togo run`.
  if (access == Access::kWrite) TRY(unless_catalog_lost(fd.get(), path, access));
  Store store(path, std::move(fd));
  TRY(store.open_catalog(access));
  return store;
}

Result<Store> Store::open_without_catalog(const std::string& path) {
  Fd fd = TRY_CTX(sys::open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY), "store");
  if (TRY(read_format(fd.get(), path)) == 0)
    return error(ErrorKind::kNotFound, "store " + path + ": empty (nothing created yet)");
  return Store(path, std::move(fd));
}

Result<void> Store::open_catalog(Access access) {
  auto catalog = Catalog::open(fs::join(path_, kCatalog), access == Access::kWrite);
  if (!catalog) {
    TRY(unless_catalog_lost(fd_.get(), path_, access));
    return std::unexpected(std::move(catalog.error()).context("store " + path_));
  }
  catalog_.emplace(std::move(*catalog));
  return {};
}

Result<WriterLock> Store::lock_for_writing(const std::string& what) {
  auto opened = sys::open_at(fd_.get(), kLock, O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
  if (!opened && opened.error().err == EROFS)
    return error(ErrorKind::kFailed, "store " + path_ + ": read-only (its filesystem is mounted read-only)",
                 "commands that only read (ls, image ls, image inspect) work; remount the drive "
                 "read-write to change the store");
  if (!opened && opened.error().err == EACCES) {
    struct stat st;
    std::string owner = ::fstat(fd_.get(), &st) == 0 ? " (it belongs to uid " + std::to_string(st.st_uid) + ")" : "";
    return error(ErrorKind::kFailed, "store " + path_ + ": no permission to change it" + owner,
                 "use it as its owner, or pass --store with a store of your own");
  }
  Fd fd = TRY(std::move(opened));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno != EWOULDBLOCK) return sys_error(errno, "locking store " + path_);
    std::string holder = holder_of(fd.get());
    std::fprintf(stderr, "togo: waiting for the store lock (%s)\n",
                 holder.empty() ? "held by another togo" : holder.c_str());
    while (::flock(fd.get(), LOCK_EX) < 0)
      if (errno != EINTR) return sys_error(errno, "locking store " + path_);
  }
  // A store opened for reading reads the catalog as a reader does (its log
  // index mapped read-only): the writer gets a writer's connection.
  if (!catalog_->writer()) {
    catalog_.reset();
    catalog_.emplace(TRY(Catalog::open(fs::join(path_, kCatalog), true)));
  }
  // A name left in the file: its holder died before it was done.
  if (std::string holder = holder_of(fd.get()); !holder.empty()) {
    Swept swept = TRY_CTX(sweep_unnamed(*this, false), "recovering the store after an interrupted " + holder);
    std::fprintf(stderr, "togo: the store was left mid-change (%s); recovered%s\n", holder.c_str(),
                 swept.removed.empty() ? ", nothing to undo"
                                       : (": removed " + std::to_string(swept.removed.size()) +
                                          " unfinished item(s)").c_str());
  }
  // The name is on disk before anything changes.
  std::string me = "pid " + std::to_string(::getpid()) + ": " + what + "\n";
  if (::ftruncate(fd.get(), 0) < 0) return sys_error(errno, "writing " + path_ + "/" + kLock);
  TRY(sys::write_all(fd.get(), me, std::string(kLock)));
  if (::fdatasync(fd.get()) < 0) return sys_error(errno, "syncing " + path_ + "/" + kLock);
  return WriterLock(std::move(fd));
}

WriterLock::~WriterLock() {
  if (fd_.get() < 0) return;
  // What the holder removed (staging, forgotten files) is gone for good
  // before the store is marked clean; otherwise a crash could bring back
  // garbage that no recovery would look for.
  (void)::syncfs(fd_.get());
  if (::ftruncate(fd_.get(), 0) == 0) (void)::fdatasync(fd_.get());
}

Result<std::string> Store::make_staging_dir() {
  std::string name = std::string(kTmp) + "/" + fs::temp_name("stage-");
  TRY(sys::mkdir_at(fd_.get(), name, 0755));
  return name;
}

}  // namespace togo::store
