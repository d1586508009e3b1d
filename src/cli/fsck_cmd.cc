// `togo fsck [--repair]`: what is damaged in the store, in plain words.
#include <fcntl.h>

#include <cstdio>

#include "base/sys.h"
#include "cli/commands.h"
#include "image/fsck.h"

namespace togo::cli {

namespace {

// "sha256:<12 hex>" in place of a full digest, for lines people read.
std::string shorten(std::string s) {
  for (size_t at = s.find("sha256:"); at != std::string::npos; at = s.find("sha256:", at + 1))
    if (s.size() >= at + 71) s.erase(at + 19, 52);
  return s;
}

void print(const image::FsckReport& r) {
  size_t damaged = 0, fixed = 0, leftovers = 0;
  for (auto& f : r.findings) {
    bool leftover = f.kind == image::Finding::Kind::kLeftover;
    (leftover ? leftovers : damaged)++;
    if (f.fixed && !leftover) fixed++;
    std::printf("%-9s %s: %s%s\n", leftover ? "leftover" : "damaged", shorten(f.object).c_str(),
                shorten(f.problem).c_str(), f.outcome.empty() ? "" : (" -> " + f.outcome).c_str());
  }
  std::string packed = r.packed ? " (" + std::to_string(r.packed) + " packed)" : "";
  std::printf("fsck: checked %llu catalog pages, %llu blobs, %llu layers%s, %llu environments: ",
              static_cast<unsigned long long>(r.pages), static_cast<unsigned long long>(r.blobs),
              static_cast<unsigned long long>(r.layers), packed.c_str(),
              static_cast<unsigned long long>(r.envs));
  if (r.findings.empty()) {
    std::printf("clean\n");
    return;
  }
  std::printf("%zu damaged (%zu repaired), %zu leftover(s)%s\n", damaged, fixed, leftovers,
              r.damaged() ? "" : "; the store is whole");
}

}  // namespace

Result<int> cmd_fsck(Context& c) {
  bool repair = c.inv.flag("--repair");
  std::string path = TRY(c.store_path());
  auto existing = store::Store::open_existing(path, store::Store::Access::kWrite);
  image::FsckReport report;
  if (!existing) {
    // A catalog too damaged to open: say what can be said without it.
    Fd fd = TRY_CTX(sys::open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY), "store");
    TRY(image::check_catalog_pages(fd.get(), false, report));
    if (report.findings.empty()) return std::unexpected(std::move(existing.error()));
    std::fprintf(stderr, "togo: %s\n", existing.error().message.c_str());
    TRY(image::check_blob_names(fd.get(), report));
    print(report);
    return kExitDamaged;
  }
  if (!*existing) {
    std::printf("nothing to check (no store at %s yet)\n", path.c_str());
    return 0;
  }
  report = TRY_CTX(image::fsck(**existing, repair), "fsck");
  print(report);
  if (report.damaged() && !repair) Context::notice("hint: `togo fsck --repair` rebuilds what can be rebuilt");
  return report.damaged() ? kExitDamaged : kExitOk;
}

}  // namespace togo::cli
