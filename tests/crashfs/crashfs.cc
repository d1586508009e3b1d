// togo-crashfs: a recording pass-through file system for crash-consistency
// tests, in the spirit of LazyFS and ALICE. See README.md in this directory.
//
//   togo-crashfs [--real-sync] [--debug] BACKING MOUNTPOINT LOG
//       Mounts a pass-through of BACKING at MOUNTPOINT (allow_other,
//       default_permissions), logs every mutating operation and every fsync
//       to LOG (written bytes to LOG.data), prints "ready" on stdout once
//       mounted, and serves until unmounted. Run as root.
//   togo-crashfs watch [--uid UID] MOUNTPOINT -- COMMAND [ARG...]
//       Runs COMMAND (as UID, gid UID, no groups) with its syncfs(2)/sync(2)
//       calls recorded.
//
// Exit status: 0 after a clean unmount, 1 on a setup failure, 2 on usage.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/sys.h"
#include "crashfs_fs.h"
#include "sync_watch.h"

namespace togo::crashfs {
namespace {

constexpr const char* kUsage =
    "usage: togo-crashfs [--real-sync] [--debug] BACKING MOUNTPOINT LOG\n"
    "       togo-crashfs watch [--uid UID] MOUNTPOINT -- COMMAND [ARG...]\n";

int fail(const Error& e) {
  std::fprintf(stderr, "togo-crashfs: %s\n", e.message.c_str());
  return 1;
}

// Every node holds a descriptor: allow as many as the system lets us.
void raise_fd_limit() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int serve(const std::string& backing, const std::string& mountpoint, const std::string& log_path,
          FsOptions options, bool debug) {
  // Modes arrive already masked by the caller's umask; do not mask them again.
  ::umask(0);
  raise_fd_limit();
  auto root = sys::open_at(AT_FDCWD, backing, O_PATH | O_DIRECTORY);
  if (!root) return fail(root.error());
  auto log = LogWriter::open(log_path);
  if (!log) return fail(log.error());
  CrashFs fs(std::move(*root), std::move(*log), options);
  if (auto s = fs.scan(); !s) return fail(s.error());

  std::vector<std::string> args = {
      "togo-crashfs", "-o",
      "allow_other,default_permissions,fsname=togo-crashfs,subtype=togo-crashfs"};
  if (debug) args.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  struct fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  struct fuse_session* se =
      fuse_session_new(&fargs, &CrashFs::ops(), sizeof(fuse_lowlevel_ops), &fs);
  if (!se) return fail({.message = "cannot create the FUSE session"});
  int rc = 1;
  if (fuse_set_signal_handlers(se) == 0) {
    if (fuse_session_mount(se, mountpoint.c_str()) == 0) {
      std::printf("ready\n");
      std::fflush(stdout);
      rc = fuse_session_loop(se) == 0 ? 0 : 1;
      fuse_session_unmount(se);
    } else {
      std::fprintf(stderr, "togo-crashfs: cannot mount on %s\n", mountpoint.c_str());
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  return rc;
}

}  // namespace
}  // namespace togo::crashfs

int main(int argc, char** argv) {
  using namespace togo::crashfs;
  if (argc >= 2 && std::strcmp(argv[1], "watch") == 0) {
    int i = 2, uid = -1;
    if (i + 1 < argc && std::strcmp(argv[i], "--uid") == 0) {
      uid = std::atoi(argv[i + 1]);
      i += 2;
    }
    if (argc < i + 3 || std::strcmp(argv[i + 1], "--") != 0) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    return watch_main(argv[i], argv + i + 2, uid);
  }
  FsOptions options;
  bool debug = false;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--real-sync")
      options.real_sync = true;
    else if (a == "--debug")
      debug = true;
    else if (a.starts_with("-")) {
      std::fputs(kUsage, stderr);
      return 2;
    } else
      pos.push_back(a);
  }
  if (pos.size() != 3) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  return serve(pos[0], pos[1], pos[2], options, debug);
}
