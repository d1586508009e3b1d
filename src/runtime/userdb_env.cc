#include "runtime/userdb_env.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "base/fs.h"
#include "base/sys.h"

namespace togo::runtime {

namespace {

constexpr off_t kMaxUserDbSize = 8 << 20;

std::optional<std::string> env_var(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

// Reads an already opened image file, refusing what is not a plain file.
Result<std::string> read_regular(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) < 0) return sys_error(errno, "stat " + path);
  if (!S_ISREG(st.st_mode))
    return error(ErrorKind::kBadInput, path + " in the image is not a regular file");
  if (st.st_size > kMaxUserDbSize)
    return error(ErrorKind::kBadInput, path + " in the image is larger than 8 MiB");
  std::string text = TRY(sys::read_all(fd, path));
  if (text.size() > static_cast<size_t>(kMaxUserDbSize))
    return error(ErrorKind::kBadInput, path + " in the image is larger than 8 MiB");
  return text;
}

// SECURITY: every image path is opened with RESOLVE_IN_ROOT and without
// magic links; O_NONBLOCK so that a FIFO planted at the path cannot hang us.
Result<Fd> open_in_root(int root, const std::string& path, int flags) {
  if (!(flags & O_PATH)) flags |= O_NONBLOCK | O_NOCTTY;  // openat2 refuses them with O_PATH
  return sys::open_at2(root, path, flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}
}  // namespace

std::string read_host_file(const char* path) {
  auto fd = sys::open_at(AT_FDCWD, path, O_RDONLY);
  if (!fd) return {};
  auto text = sys::read_all(fd->get(), path);
  return text ? std::move(*text) : std::string();
}

InvokerFacts read_invoker_facts() {
  InvokerFacts f;
  f.uid = ::getuid();
  f.gid = ::getgid();
  f.passwd = read_host_file("/etc/passwd");
  f.group = read_host_file("/etc/group");
  f.sudo_uid = env_var("SUDO_UID");
  f.sudo_gid = env_var("SUDO_GID");
  f.sudo_user = env_var("SUDO_USER");
  f.doas_user = env_var("DOAS_USER");
  f.user = env_var("USER");
  if (!f.user) f.user = env_var("LOGNAME");
  f.home = env_var("HOME");
  f.shell = env_var("SHELL");
  return f;
}

Result<Invoker> read_invoker() { return resolve_invoker(read_invoker_facts()); }

Result<std::string> read_env_file(int root, const std::string& path) {
  auto fd = open_in_root(root, path, O_RDONLY);
  if (!fd) {
    if (fd.error().err == ENOENT) return std::string();
    return std::unexpected(std::move(fd.error()));
  }
  return read_regular(fd->get(), path);
}

Result<std::string> read_layered_file(const std::vector<int>& layers, const std::string& path) {
  for (int layer : layers) {
    auto fd = open_in_root(layer, path, O_RDONLY);
    if (fd) return read_regular(fd->get(), path);
    if (fd.error().err == ENXIO || fd.error().err == ENODEV || fd.error().err == EACCES ||
        fd.error().err == EPERM) {
      // Opening a device node may fail; a whiteout is a 0/0 character device.
      // SECURITY: looked at through the layer's root like the open above.
      auto node = open_in_root(layer, path, O_PATH | O_NOFOLLOW);
      struct stat st;
      if (node && ::fstat(node->get(), &st) == 0 && S_ISCHR(st.st_mode) &&
          st.st_rdev == makedev(0, 0))
        return std::string();
      return std::unexpected(std::move(fd.error()));
    }
    // A parent that is not a directory in this layer (a file, or a whiteout
    // of the directory) hides the path in every layer below, as in overlayfs.
    if (fd.error().err == ENOTDIR) return std::string();
    if (fd.error().err != ENOENT) return std::unexpected(std::move(fd.error()));
    // Not honoured: an opaque parent directory (overlay.opaque xattr) would
    // also hide the lower layers' file. Images rarely make /etc opaque.
  }
  return std::string();
}

bool env_has_program(int root, const std::string& path) {
  auto fd = open_in_root(root, path, O_PATH);
  if (!fd) return false;
  struct stat st;
  return ::fstat(fd->get(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

Result<EnvUserFiles> env_user_files(std::string_view env_passwd, std::string_view env_group,
                                    const Invoker& who, const std::string& shell) {
  UserRecord user = who.user;
  user.shell = shell;
  GroupRecord group{who.group, who.user.gid, {}};
  EnvUserFiles out;
  out.passwd =
      TRY_CTX(merge_passwd(env_passwd, user), "adding " + user.name + " to the env's passwd");
  out.group =
      TRY_CTX(merge_group(env_group, group), "adding " + group.name + " to the env's group");
  return out;
}

Result<void> write_env_user_files(int run_dir, const EnvUserFiles& files) {
  TRY(fs::write_file_if_changed(run_dir, kRunPasswd, files.passwd));
  TRY(fs::write_file_if_changed(run_dir, kRunGroup, files.group));
  return {};
}

}  // namespace togo::runtime
