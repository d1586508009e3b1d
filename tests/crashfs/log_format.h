// The record format of a togo-crashfs log, shared by the recorder (the FUSE
// daemon) and the replay library.
//
// A log is a text file, one record per line: an operation name followed by
// `key=value` fields, values percent-encoded so a line never holds a space,
// a newline or a NUL. The bytes a `write` carried are in a side file (the
// log's path + ".data"); the record names their offset there.
//
// Objects are named by ids, not paths: the daemon gives every inode it sees an
// id (the ones present at the start in `root`/`entry` records, each new one
// when an operation creates it), so a file keeps its identity across renames
// and a reused inode number never aliases an older file. `path` fields are
// informational only: where the object was when the record was written.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace togo::crashfs {

enum class OpKind : uint8_t {
  // The namespace when recording began (not operations).
  kRoot,   // id: the mount's root directory
  kEntry,  // dir/name -> id, mode holds the file type
  // Namespace operations: they change a directory.
  kCreate,   // dir/name: new regular file id, mode, uid, gid
  kMknod,    // dir/name: new fifo/socket/device id, mode, rdev, uid, gid
  kMkdir,    // dir/name: new directory id, mode, uid, gid
  kSymlink,  // dir/name: new symlink id -> target, uid, gid
  kLink,     // dir/name: a new name for the existing object id
  kUnlink,   // dir/name (naming id) removed
  kRmdir,    // dir/name (naming directory id) removed
  kRename,   // dir/name (id) -> new_dir/new_name (replacing `other`, 0 if none);
             // flags: RENAME_NOREPLACE/EXCHANGE/WHITEOUT; whiteout: the id the
             // RENAME_WHITEOUT device left at dir/name
  // Data and attribute operations on one object.
  kSetattr,      // id: the fields in `set` (SetField bits), values as they resulted
  kSetxattr,     // id: xattr `target` = `value`, flags XATTR_CREATE/REPLACE
  kRemovexattr,  // id: xattr `target` removed
  kWrite,        // id: `length` bytes at `offset`, stored at `data` in the side file
  kFallocate,    // id: fallocate(flags as mode, offset, length)
  // Durability barriers.
  kFsync,     // id: fsync, or fdatasync when flags is 1
  kFsyncdir,  // id (a directory): fsync, or fdatasync when flags is 1
  kSyncfs,    // syncfs(2) of the mount (seen by `togo-crashfs watch`)
  kSync,      // sync(2) (seen by `togo-crashfs watch`)
  // Not an operation: a label the test put between operations.
  kMark,  // value: the label
};

/// Which fields a kSetattr record carries.
enum SetField : uint32_t {
  kSetMode = 1,
  kSetUid = 2,
  kSetGid = 4,
  kSetSize = 8,
  kSetAtime = 16,
  kSetMtime = 32,
};

/// One record. Fields a kind does not use stay zero or empty.
struct Op {
  OpKind kind = OpKind::kMark;
  uint64_t id = 0;        // the object the record is about
  uint64_t dir = 0;       // namespace ops: the directory holding `name`
  std::string name;       // namespace ops: one path component
  uint64_t new_dir = 0;   // rename: target directory
  std::string new_name;   // rename: target name
  uint64_t other = 0;     // rename: the object replaced or exchanged at the target
  uint64_t whiteout = 0;  // rename with RENAME_WHITEOUT: the whiteout's id
  uint32_t flags = 0;
  uint32_t mode = 0;  // st_mode (type and permission bits)
  uint32_t uid = 0, gid = 0;
  uint64_t rdev = 0;
  uint32_t set = 0;  // kSetattr: SetField bits
  uint64_t size = 0;
  int64_t atime_sec = 0, atime_nsec = 0, mtime_sec = 0, mtime_nsec = 0;
  uint64_t offset = 0, length = 0, data = 0;
  std::string target;  // symlink target, or xattr name
  std::string value;   // xattr value, or mark label
  std::string path;    // informational: the object's path at the time, "" if unknown
  uint64_t ino = 0;    // informational: the backing inode number
};

/// The record's name in the log ("create", "rename", ...).
const char* op_name(OpKind k);
/// True for operations that change a directory (create .. rename).
bool is_namespace_op(OpKind k);
/// True for operations that change one object's data or attributes.
bool is_object_op(OpKind k);
/// True for fsync, fsyncdir, syncfs and sync.
bool is_barrier(OpKind k);

/// True if `name` can be one path component: not empty, not "." or "..", no
/// '/' and no NUL, at most 255 bytes.
bool valid_name(std::string_view name);

/// `s` with every byte outside [A-Za-z0-9._/+:,-] written as %XX.
std::string escape(std::string_view s);
/// The inverse of escape(); an error on a malformed %XX.
Result<std::string> unescape(std::string_view s);

/// The record as one line, '\n' included.
std::string format_op(const Op& op);
/// Parses one line (with or without its '\n'). Names are checked with
/// valid_name(); unknown operations or keys are errors.
Result<Op> parse_op(std::string_view line);

/// The xattr names `togo-crashfs watch` and the recorder read on the mount's
/// root to put a record in the log in order with the operations around it.
inline constexpr std::string_view kSignalSyncfs = "user.togo-crashfs.syncfs";
inline constexpr std::string_view kSignalSync = "user.togo-crashfs.sync";
/// Followed by the escaped label.
inline constexpr std::string_view kSignalMarkPrefix = "user.togo-crashfs.mark.";

}  // namespace togo::crashfs
