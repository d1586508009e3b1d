#include "base/proc_title.h"

#include <sys/prctl.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace togo::proc_title {

namespace {
char* g_args = nullptr;  // argv[0], and the strings after it
size_t g_size = 0;       // up to the end of the last one that follows on
}  // namespace

void remember(int argc, char** argv) {
  if (argc < 1 || !argv[0]) return;
  g_args = argv[0];
  char* end = argv[0] + std::strlen(argv[0]) + 1;
  // The kernel places the strings one after another; only what does is
  // the command line's space.
  for (int i = 1; i < argc && argv[i] == end; i++) end += std::strlen(argv[i]) + 1;
  g_size = static_cast<size_t>(end - g_args);
}

void set(const char* name) {
  ::prctl(PR_SET_NAME, name);
  if (!g_args) return;
  size_t n = std::min(std::strlen(name), g_size - 1);
  std::memset(g_args, 0, g_size);
  std::memcpy(g_args, name, n);
}

}  // namespace togo::proc_title
