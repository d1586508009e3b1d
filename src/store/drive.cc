#include "store/drive.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fd.h"
#include "base/fs.h"
#include "base/mountinfo.h"
#include "store/layout.h"

namespace togo::store {

std::string drive_of(const std::string& path) {
  auto text = fs::read_file(AT_FDCWD, "/proc/self/mountinfo");
  if (!text) return "";
  auto mounts = parse_mountinfo(*text);
  const MountEntry* m = mount_holding(mounts, path);
  return m ? m->source + " at " + m->mount_point : "";
}

std::optional<std::string> drive_failure(int store_fd, const std::string& store_path) {
  Fd fd(::openat(store_fd, kMarker, O_RDONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC));
  int err = errno;
  if (fd.valid()) {
    alignas(4096) static unsigned char buf[4096];
    if (::pread(fd.get(), buf, sizeof buf, 0) >= 0) return std::nullopt;
    err = errno;
  }
  if (err != EIO && err != ENODEV && err != ENXIO) return std::nullopt;
  std::string drive = drive_of(store_path);
  return "the drive holding the store (" + (drive.empty() ? store_path : drive) +
         ") returns I/O errors (" + std::strerror(err) + ")";
}

}  // namespace togo::store
