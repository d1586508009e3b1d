#include "store/drive.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/fd.h"
#include "base/fs.h"
#include "store/layout.h"

namespace togo::store {

std::string drive_of(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, best_mp, best_src;
  while (std::getline(in, line)) {
    // id parent maj:min root mountpoint options [optional...] - fstype source super
    std::istringstream f(line);
    std::string id, parent, dev, root, mp;
    f >> id >> parent >> dev >> root >> mp;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string type, src;
    tail >> type >> src;
    bool inside = path == mp || mp == "/" || path.starts_with(mp + "/");
    if (inside && mp.size() >= best_mp.size()) best_mp = mp, best_src = src;
  }
  return best_mp.empty() ? "" : best_src + " at " + best_mp;
}

std::optional<std::string> drive_failure(const std::string& store_path) {
  Fd fd(::open(fs::join(store_path, kMarker).c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
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
