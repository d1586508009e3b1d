// The probes behind the checks (checks.cc lists them) and the pieces they
// share. Each probe only looks through its HostView and returns a Finding:
// it never fails and never throws.
#pragma once

#include <string>

#include "doctor/checks.h"
#include "doctor/host_view.h"

namespace togo::doctor {

// host (kernel_probes.cc)
Finding probe_kernel(const HostView& v);
Finding probe_openat2(const HostView& v);

// isolation (userns_probes.cc, mount_probes.cc, cgroup_probes.cc, kernel_probes.cc)
Finding probe_namespaces(const HostView& v);
Finding probe_userns(const HostView& v);
Finding probe_subids(const HostView& v);
Finding probe_overlay(const HostView& v);
Finding probe_fuse(const HostView& v);
Finding probe_idmapped(const HostView& v);
Finding probe_cgroups(const HostView& v);
Finding probe_seccomp(const HostView& v);

// storage (storage_probes.cc, storage_bench.cc)
Finding probe_filesystem(const HostView& v);
Finding probe_mount(const HostView& v);
Finding probe_space(const HostView& v);
Finding probe_device(const HostView& v);
Finding probe_storage_bench(const HostView& v);

// vm (vm_probes.cc)
Finding probe_kvm(const HostView& v);
Finding probe_cpu_virt(const HostView& v);
Finding probe_hypervisors(const HostView& v);
Finding probe_qemu(const HostView& v);
Finding probe_guest_kernel(const HostView& v);

// network (network_probes.cc)
Finding probe_net_helpers(const HostView& v);
Finding probe_dns(const HostView& v);
Finding probe_proxy(const HostView& v);

// cross-arch (kernel_probes.cc)
Finding probe_binfmt(const HostView& v);

// Shared (storage_probes.cc).

/// The store's path, and the nearest directory of it that exists (the
/// store itself once created): where its filesystem is judged.
struct StoreSpot {
  std::string path;      // the store
  std::string existing;  // the store, or its nearest existing ancestor
  bool exists = false;   // the store directory itself exists
};
StoreSpot store_spot(const HostView& v);

/// The entry of the view's mount table that holds `path` (absolute; its
/// symlinks are resolved first, where they resolve): the last one whose
/// mount point is the longest prefix of it. Null if none does.
const MountEntry* mount_of(const HostView& v, const std::string& path);

/// A directory on the store's filesystem this user may write, for the
/// probes that try things there: the store's tmp/, else the store, else its
/// nearest existing ancestor; "" if none is writable.
std::string scratch_dir(const HostView& v);

/// The name of a filesystem type from statfs's magic ("ext4", "vfat", ...),
/// or "" when unknown.
std::string fs_name(int64_t magic);

/// Where the guest kernel for vm mode will be kept, relative to the store.
inline constexpr const char* kGuestKernel = "vm/vmlinuz";

}  // namespace togo::doctor
