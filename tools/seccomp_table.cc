// Build-time generator: prints the default seccomp filter as a C++ array, so
// a `togo run` loads a ready program instead of resolving ~400 syscall names
// through libseccomp's tables on every start. libseccomp is linked
// statically, so the tables it reads here are the ones the binary carries.
#include <cstdio>
#include <string>

#include "runtime/seccomp.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: seccomp_table OUTPUT\n");
    return 2;
  }
  auto program = togo::runtime::build_default_filter(/*privileged=*/false);
  if (!program) {
    std::fprintf(stderr, "seccomp_table: %s\n", program.error().message.c_str());
    return 1;
  }
  // Written aside and renamed, so a failed run leaves no half table that the
  // next build would take as up to date.
  std::string tmp = std::string(argv[1]) + ".tmp";
  FILE* out = std::fopen(tmp.c_str(), "w");
  if (!out) {
    std::perror(tmp.c_str());
    return 1;
  }
  std::fprintf(out, "// Generated at build time by tools/seccomp_table.cc: do not edit.\n");
  std::fprintf(out, "static const sock_filter kDefaultFilter[] = {\n");
  for (const sock_filter& f : program->code)
    std::fprintf(out, "  {0x%04x, %u, %u, 0x%08x},\n", f.code, f.jt, f.jf, f.k);
  std::fprintf(out, "};\n");
  if (std::fclose(out) != 0 || std::rename(tmp.c_str(), argv[1]) != 0) {
    std::perror(argv[1]);
    std::remove(tmp.c_str());
    return 1;
  }
  return 0;
}
