// The plan for one run of an environment: every mount, file and exec the
// child performs, decided in the parent as plain data (bubblewrap's idea).
// The child only walks the list: between clone and exec nothing allocates.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "runtime/caps.h"
#include "runtime/idmap.h"
#include "runtime/seccomp.h"

namespace togo::runtime {

/// A host directory (or file) shown inside the env.
struct ShareMount {
  std::string host;  // absolute host path
  std::string path;  // absolute path inside the env
  bool readonly = false;
  bool directory = true;
};

/// What a person asked for, resolved against the store.
struct RunSpec {
  std::string store;                // the store's absolute path
  std::string hostname;
  std::vector<std::string> layers;  // layer root dirs, relative to the store, bottom first
  std::string upper, work, mount;   // overlay dirs, relative to the store
  std::string rootfs;               // set for a private copy instead of overlayfs
  std::string resolv_conf;          // generated files, relative to the store ("" = none)
  std::string hosts, hostname_file;
  std::string passwd, group;        // generated for --user ("" = the env's own)
  std::string apt_no_sandbox;       // generated apt setting, for a single-id map ("" = none)
  bool own_network = false;         // a network namespace of its own (none, private)
  bool rootless = false;            // in a user namespace, mapped to root inside
  std::vector<ShareMount> shares;
  bool privileged = false;          // no masked paths, capability drop or seccomp
};

enum class StepKind {
  kMakePrivate,   // mounts stop propagating to the host
  kHostname,      // a: the new hostname
  kMountOverlay,  // a: target (store-relative), b: options
  kBindSelf,      // a: directory (store-relative) made its own mount point
  kOpenRoot,      // a: directory (store-relative) that becomes the env's root
  kMountFs,       // a: target in root, b: fs type, c: data, flags: mount flags
  kBind,          // a: target in root, b: source (absolute: host; relative: store)
  kSymlink,       // a: link path in root, b: link text
  kReadOnly,      // a: path in root, made a read-only bind of itself
  kDevice,        // a: character device made in root (its directory exists), dev: its number
  kMaskDir,       // a: directory in root hidden under an empty read-only tmpfs (c: its data,
                  // flags: its mount flags); every kMaskDir step shows the same one
  kLoopbackUp,    // the env's own network namespace gets a working lo
  kPivotRoot,     // the root becomes "/"; the host's tree is detached
};

/// Creation of a missing mount target before a mount step.
enum class Create { kNone, kDir, kFile };

struct Step {
  StepKind kind;
  std::string a, b, c;
  unsigned long flags = 0;
  dev_t dev = 0;
  Create create = Create::kNone;
  std::string parent, base;  // a split at its last '/', for creating it
  bool readonly = false, recursive = false;
  bool optional = false;  // a missing target (ENOENT) skips the step
  bool not_on_kernel_fs = false;  // refuse a target on proc or sysfs (shares)
};

struct Plan {
  std::string store;  // entered by path once in the new mount namespace
  std::vector<Step> steps;
  unsigned long clone_flags = 0;
  bool rootless = false;
  // Rootless: the user namespace's maps, written by the parent after clone.
  std::vector<IdMapping> uid_map, gid_map;
  // Hardening, applied by init after pivot_root and inherited by every
  // session: no_new_privs, the capability bounding set, the seccomp filter.
  bool harden = true;
  CapSet caps;
  int last_cap = 0;
  SeccompProgram seccomp;
};

/// Builds the plan for a spec. Pure: no system calls.
Plan build_plan(const RunSpec& spec);

/// "mounting proc on /proc", for error messages about a step.
std::string describe(const Step& step);

/// The overlayfs mount options for a spec (paths are store-relative).
std::string overlay_options(const RunSpec& spec);

}  // namespace togo::runtime
