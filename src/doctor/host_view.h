// What `togo doctor` looks at. Every probe reads the host through a HostView:
// the files under /proc, /sys, /etc and /dev below an injectable root, the
// store's path, the environment, a command lookup, and the few actions that
// must be tried rather than read (creating namespaces, mounting overlayfs,
// running a KVM guest). On a real host these are the real thing; unit tests
// point the root at a fixture tree and replace the actions, so each outcome
// of each probe is tested without the host having it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/mountinfo.h"
#include "doctor/kvm_probe.h"

namespace togo::doctor {

/// What a live action did: the step that failed and its errno (0: all
/// steps succeeded).
struct Outcome {
  std::string step;
  int err = 0;
  bool ok() const { return err == 0; }
};

/// statfs(2), statvfs(3) and stat(2) of one path, as the storage probes need them.
struct FsStats {
  int64_t magic = 0;                      // statfs f_type
  uint64_t block_size = 0;                // f_frsize
  uint64_t blocks = 0;                    // f_blocks
  uint64_t available = 0;                 // f_bavail: blocks an unprivileged user may fill
  unsigned dev_major = 0, dev_minor = 0;  // st_dev of the path
};

/// The actions a probe tries. Each runs in a child process (nothing it does
/// reaches togo's own namespaces) and reports what happened.
struct LiveProbes {
  /// unshare(flags); with CLONE_NEWUSER, the caller's own ids mapped to
  /// root; then a tmpfs mounted in the new mount namespace.
  std::function<Outcome(int flags)> namespaces;
  /// As root: what an unprivileged user gets. A child becomes nobody
  /// (65534), then tries CLONE_NEWUSER | CLONE_NEWNS, maps itself and
  /// mounts a tmpfs.
  std::function<Outcome()> unprivileged_userns;
  /// runtime::probe_overlay with a lower, upper and work directory made in
  /// `dir` (a writable directory on the store's filesystem).
  std::function<Result<void>(const std::string& dir)> overlay;
  /// An idmapped clone of `dir` (open_tree + mount_setattr MOUNT_ATTR_IDMAP),
  /// in a user namespace of its own when not root.
  std::function<Outcome(const std::string& dir)> idmapped_mount;
  /// openat2(RESOLVE_IN_ROOT) of "/"; errno or 0.
  std::function<int()> openat2;
  /// no_new_privs, then an allow-everything seccomp filter.
  std::function<Outcome()> seccomp;
  /// run_kvm_test(device, timeout).
  std::function<KvmRun(const std::string& device)> kvm;
  /// errno of open(path, O_RDWR), 0 if it opened.
  std::function<int(const std::string& path)> open_rw;
  /// The filesystem facts of `path`; nullopt if it cannot be seen.
  std::function<std::optional<FsStats>(const std::string& path)> fs_stats;
  /// The first line a program prints to stdout, given half a second;
  /// nullopt if it cannot run, fails or takes longer.
  std::function<std::optional<std::string>(const std::vector<std::string>& argv)> output;
};

/// The real actions.
LiveProbes real_live();

struct HostView {
  std::string root;   // prefix of /proc, /sys, /etc, /dev: "" for this host
  std::string store;  // the store's absolute path (it may not exist yet)
  uid_t uid = 0;      // whose rights count (togo's effective ids)
  gid_t gid = 0;
  std::string machine;                     // the kernel's architecture (uname -m)
  std::string exe;                         // the running togo binary
  std::map<std::string, std::string> env;  // environment variables
  /// <proc>/self/mountinfo, parsed; empty if unreadable (load_tables).
  std::vector<MountEntry> mounts;
  /// This user's name in <etc>/passwd; nullopt if the uid is not there (load_tables).
  std::optional<std::string> passwd_name;
  /// The absolute path of an installed program, or "".
  std::function<std::string(const std::string& name)> which;
  LiveProbes live;

  std::string proc() const { return root + "/proc"; }
  std::string sys() const { return root + "/sys"; }
  std::string etc() const { return root + "/etc"; }
  std::string dev() const { return root + "/dev"; }

  /// A file's text (symlinks followed, at most 1 MiB); nullopt if unreadable.
  std::optional<std::string> read(const std::string& path) const;
  /// The names in a directory, sorted; empty if it cannot be read.
  std::vector<std::string> list(const std::string& dir) const;
  /// The value of an environment variable, or "".
  std::string getenv(const std::string& name) const;
  /// This user's name from <etc>/passwd, or "uid N".
  std::string user_name() const;
  /// True when the user's name is in <etc>/passwd.
  bool user_in_passwd() const { return passwd_name.has_value(); }

  /// Reads what several probes share (`mounts`, `passwd_name`) below `root`
  /// for `uid`, so that a run reads each of those files once. real() calls
  /// it; a view made by hand calls it once root and uid are set.
  void load_tables();

  /// This host: this process's ids, environment and binary, the real files
  /// and actions; programs found in $PATH, then /usr/sbin, /usr/bin, /sbin, /bin.
  static HostView real(const std::string& store);
};

// Small text helpers the probes share.

/// `s` without leading and trailing whitespace.
std::string trim(std::string_view s);
/// "Operation not permitted" for an errno.
std::string errno_text(int err);
/// The first line of `s`, trimmed.
std::string first_line(std::string_view s);
/// `items` with `sep` between them: join({"a", "b"}) is "a, b".
std::string join(const std::vector<std::string>& items, std::string_view sep = ", ");

}  // namespace togo::doctor
