// The FILE an export is written to (`togo export`, `togo image export`).
#pragma once

#include <sys/types.h>

#include <string>

#include "base/error.h"
#include "base/fd.h"

namespace togo::cli {

/// FILE, written without its name and named only once whole and durable:
/// an export that fails, or is killed (Ctrl-C), leaves FILE as it was and
/// nothing beside it. The data goes to an unnamed file in FILE's directory
/// (O_TMPFILE); where the file system has none (FAT, exFAT: the drives togo
/// travels on), to a hidden temporary name beside FILE, removed on failure
/// (though not when the process is killed).
class OutputFile {
 public:
  /// kUsage if `path` names a directory or no file name.
  static Result<OutputFile> open(const std::string& path, mode_t mode);
  OutputFile(OutputFile&& o) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  ~OutputFile();

  int fd() const { return fd_.get(); }

  /// fsync, FILE's name (replacing the file that had it), fsync of the
  /// directory.
  Result<void> commit();

 private:
  OutputFile() = default;
  Fd dir_, fd_;
  std::string path_, dir_name_, base_;
  std::string tmp_;  // the temporary name, while the file has one
};

}  // namespace togo::cli
