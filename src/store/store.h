// A store: the directory that holds everything togo keeps. It is found by
// locate(), opened by Store::open(), and changed by one writer at a time.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "store/catalog.h"

namespace togo::store {

/// What locate() looks at, injectable for tests.
struct LocateInputs {
  std::optional<std::string> flag;  // --store
  std::function<const char*(const char*)> getenv;
  std::string exe_dir;              // directory of the running binary
  std::function<bool(const std::string&)> is_dir;
};

/// The store's path, in order: --store, $TOGO_STORE, a togo-store/ directory
/// next to the binary (the "to go" layout on a drive), $XDG_DATA_HOME/togo,
/// ~/.local/share/togo.
Result<std::string> locate(const LocateInputs& in);
/// locate() with this process's flag, environment and binary.
Result<std::string> locate(const std::optional<std::string>& flag);

/// Held while a command changes the store. The lock file names the holder
/// (durably) while it is held; releasing it empties the file, so a name
/// found there by the next writer means its holder died mid-change.
class WriterLock {
 public:
  WriterLock() = default;
  explicit WriterLock(Fd fd) : fd_(std::move(fd)) {}
  WriterLock(WriterLock&&) = default;
  WriterLock& operator=(WriterLock&&) = default;
  /// Marks the store clean and releases the lock.
  ~WriterLock();

 private:
  Fd fd_;
};

class Store {
 public:
  enum class Access { kRead, kWrite };

  /// Opens the store at `path`. kWrite creates it if the directory is
  /// missing or empty. Refuses a directory that is not a store, and a store
  /// of a newer format, without changing anything.
  static Result<Store> open(const std::string& path, Access access);
  /// For reading only, without the catalog yet: open_catalog() opens it.
  static Result<Store> open_without_catalog(const std::string& path);
  /// True if `path` holds a store marker.
  static bool exists(const std::string& path);
  /// Opens the store if there is one; nothing (and no error) when `path` is
  /// missing or an empty directory. Never creates anything.
  static Result<std::optional<Store>> open_existing(const std::string& path, Access access);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  Catalog& catalog() { return *catalog_; }
  /// Opens the catalog of a store opened without it (for reading), as
  /// open() would have.
  Result<void> open_catalog(Access access = Access::kRead);

  /// Takes the writer lock, saying on stderr what it waits for if another
  /// togo holds it. `what` names this command for the other side's message.
  /// If the last holder died mid-change, what it left is rolled back or
  /// finished (recovery.h) before this returns, and said on stderr.
  Result<WriterLock> lock_for_writing(const std::string& what);

  /// Creates a fresh staging directory under tmp/ and returns its name
  /// relative to the store root.
  Result<std::string> make_staging_dir();

 private:
  Store(std::string path, Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  Fd fd_;
  std::optional<Catalog> catalog_;
};

}  // namespace togo::store
