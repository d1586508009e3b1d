// The recording pass-through filesystem behind togo-crashfs: a libfuse3
// low-level file system that forwards every operation to a backing directory
// and appends a record of each mutating one (and each fsync) to a log before
// it replies, so the log's order is the order the callers saw.
//
// One thread serves all requests: the log needs no lock and its order is total.
// Each inode the kernel knows is a Node holding an O_PATH descriptor of the
// backing object, which also pins the backing inode so its number cannot be
// reused while the kernel may still name it.
#pragma once

#define FUSE_USE_VERSION 35
#include <dirent.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "base/error.h"
#include "base/fd.h"
#include "log_format.h"

namespace togo::crashfs {

/// "/proc/self/fd/N": reaches the object `fd` (O_PATH too) holds by path.
inline std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

/// Appends records to the log and written bytes to its side file.
class LogWriter {
 public:
  /// Creates (truncating) `path` and `path`.data.
  static Result<LogWriter> open(const std::string& path);
  /// Appends one record with a single write(2) (O_APPEND), so records from
  /// several writers never interleave within a line.
  void record(const Op& op);
  /// Appends `n` bytes to the side file; returns their offset there.
  uint64_t put_data(const char* data, size_t n);

 private:
  Fd log_, data_;
  uint64_t data_end_ = 0;
};

struct FsOptions {
  /// Also fsync the backing files when the caller fsyncs. Off by default: the
  /// log, not the backing disk, is what a crash test replays.
  bool real_sync = false;
};

/// One backing inode the kernel holds a reference to.
struct Node {
  Fd fd;  // O_PATH | O_NOFOLLOW
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t type = 0;  // S_IFMT bits
  uint64_t id = 0;  // the object's id in the log
  uint64_t nlookup = 0;
};

/// An open file or directory (fuse_file_info::fh points at one).
struct Handle {
  Fd fd;               // the backing file, or an O_RDONLY descriptor of the directory
  uint64_t id = 0;     // the object's id in the log
  DIR* dir = nullptr;  // directories: the stream readdir walks (owns a dup of fd)
  off_t offset = 0;
  struct dirent* entry = nullptr;  // read but not yet returned
  ~Handle() {
    if (dir) ::closedir(dir);
  }
};

class CrashFs {
 public:
  CrashFs(Fd backing_root, LogWriter log, FsOptions options);

  /// Walks the backing tree and logs a `root` record and one `entry` record
  /// per name, giving every object found an id. Call once, before mounting.
  Result<void> scan();
  /// The operation table to give fuse_session_new(), with this object as
  /// userdata.
  static const fuse_lowlevel_ops& ops();

  // Handlers, called by the table's trampolines.
  void lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void forget(fuse_ino_t ino, uint64_t n);
  void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid, fuse_file_info* fi);
  void readlink(fuse_req_t req, fuse_ino_t ino);
  void make_node(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev,
                 const char* link);
  void link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name);
  void remove(fuse_req_t req, fuse_ino_t parent, const char* name, bool dir);
  void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
              const char* new_name, unsigned flags);
  void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
  void read(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi);
  void write(fuse_req_t req, const char* buf, size_t size, off_t off, fuse_file_info* fi);
  void release(fuse_req_t req, fuse_file_info* fi);
  void fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi, bool dir);
  void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void readdir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi);
  void releasedir(fuse_req_t req, fuse_file_info* fi);
  void statfs(fuse_req_t req, fuse_ino_t ino);
  void setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags);
  void getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  void listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
  void removexattr(fuse_req_t req, fuse_ino_t ino, const char* name);
  void fallocate(fuse_req_t req, int mode, off_t off, off_t len, fuse_file_info* fi);
  void lseek(fuse_req_t req, off_t off, int whence, fuse_file_info* fi);

 private:
  struct Where {
    uint64_t dir = 0;
    std::string name;
  };

  Node& node(fuse_ino_t ino);
  /// Opens `parent`/`name` and returns its Node (found or made), counting one
  /// more kernel reference. `fresh` gives the object a new id (it was just
  /// created). Fills `e` for the reply. Returns 0 or an errno.
  int child(Node& parent, const char* name, bool fresh, fuse_entry_param* e, Node** out);
  /// The id of a backing inode: the one it was given, or a new one.
  uint64_t id_of(ino_t ino);
  uint64_t new_id(ino_t ino);
  /// The id of `parent`/`name` without following it, 0 if it does not exist.
  uint64_t id_at(Node& parent, const char* name);
  /// Best-effort path of an object from the mount's root, for log readers.
  std::string path_of(uint64_t id) const;
  std::string path_in(uint64_t dir, const std::string& name) const;
  /// "/proc/self/fd/N/name" for the last known name of a symlink node whose
  /// directory is still known to the kernel; empty if there is none.
  std::string symlink_path(const Node& n);
  /// Handles reads of the signal xattrs on the root; true if `name` was one.
  bool signal(const char* name);
  /// The group a new object in `parent` is given: the caller's, or (-1:
  /// left as made) the set-group-ID directory's, which the backing file
  /// system already gave.
  gid_t new_gid(const Node& parent, const fuse_ctx* ctx);
  /// Logs the creation of `n` as `parent`/`name` (`link`: a symlink's target).
  void log_made(OpKind kind, const Node& parent, const char* name, const Node& n,
                const struct stat& st, const char* link = nullptr);
  /// Logs the truncation to 0 an open with O_TRUNC made.
  void log_truncated(const Node& n);
  void log(Op op) { log_.record(op); }

  Fd backing_;
  LogWriter log_;
  FsOptions options_;
  Node root_;
  std::map<std::pair<dev_t, ino_t>, std::unique_ptr<Node>> nodes_;
  std::unordered_map<ino_t, uint64_t> ids_;    // backing inode -> current id
  std::unordered_map<uint64_t, Where> where_;  // id -> last known name
  std::unordered_map<uint64_t, Node*> dirs_;   // id -> live directory node
  uint64_t next_id_ = 1;
};

}  // namespace togo::crashfs
