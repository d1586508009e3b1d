#include "cli/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "base/fs.h"
#include "base/sys.h"

namespace togo::cli {

Result<OutputFile> OutputFile::open(const std::string& path, mode_t mode) {
  OutputFile f;
  f.path_ = path;
  size_t slash = path.rfind('/');
  f.dir_name_ = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  f.base_ = slash == std::string::npos ? path : path.substr(slash + 1);
  if (f.base_.empty() || f.base_ == "." || f.base_ == "..")
    return error(ErrorKind::kUsage, path + ": not a file name");
  f.dir_ = TRY_CTX(sys::open_at(AT_FDCWD, f.dir_name_, O_RDONLY | O_DIRECTORY), path);
  // Refused now, not by the rename after the whole export was written.
  if (auto st = sys::stat_at(f.dir_.get(), f.base_, AT_SYMLINK_NOFOLLOW);
      st && S_ISDIR(st->st_mode))
    return error(ErrorKind::kUsage, path + ": is a directory", "give the archive's file name");
  if (auto unnamed = sys::open_at(f.dir_.get(), ".", O_WRONLY | O_TMPFILE, mode)) {
    f.fd_ = std::move(*unnamed);
    return f;
  }
  f.tmp_ = fs::temp_name("." + f.base_ + ".togo-");
  f.fd_ = TRY_CTX(
      sys::open_at(f.dir_.get(), f.tmp_, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode), path);
  return f;
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : dir_(std::move(o.dir_)),
      fd_(std::move(o.fd_)),
      path_(std::move(o.path_)),
      dir_name_(std::move(o.dir_name_)),
      base_(std::move(o.base_)),
      tmp_(std::exchange(o.tmp_, {})) {}

OutputFile::~OutputFile() {
  if (!tmp_.empty()) (void)sys::unlink_at(dir_.get(), tmp_);
}

Result<void> OutputFile::commit() {
  TRY_CTX(sys::fsync(fd_.get(), base_), path_);
  if (tmp_.empty()) {
    // The unnamed file gets a temporary name (link() cannot replace), then
    // FILE's by rename.
    std::string tmp = fs::temp_name("." + base_ + ".togo-");
    std::string self = "/proc/self/fd/" + std::to_string(fd_.get());
    if (::linkat(AT_FDCWD, self.c_str(), dir_.get(), tmp.c_str(), AT_SYMLINK_FOLLOW) < 0)
      return sys_error(errno, path_ + ": naming the written file");
    tmp_ = tmp;
  }
  TRY_CTX(sys::rename_at(dir_.get(), tmp_, dir_.get(), base_), path_);
  tmp_.clear();
  TRY_CTX(fs::sync_dir(dir_.get(), dir_name_), path_);
  return {};
}

}  // namespace togo::cli
