#include "cli/env_state.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include "base/sys.h"
#include "runtime/launcher.h"
#include "store/layout.h"

namespace togo::cli {

bool is_running(store::Store& st, const store::EnvRecord& env) {
  auto fd = sys::open_at(st.fd(), store::env_paths(env.id).lock, O_RDONLY | O_NOFOLLOW);
  if (!fd) return false;
  return ::flock(fd->get(), LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
}

EnvState env_state(store::Store& st, const store::EnvRecord& env) {
  if (!is_running(st, env)) return EnvState::kStopped;
  auto dir = sys::open_at(st.fd(), store::env_paths(env.id).dir, O_RDONLY | O_DIRECTORY);
  if (!dir) return EnvState::kRunning;
  auto ch = runtime::connect_env(dir->get());
  if (!ch) return EnvState::kRunning;
  if (!*ch) return EnvState::kEnding;
  auto status = runtime::query_status((*ch)->get());
  return status && status->sessions == 0 && !status->persistent ? EnvState::kIdle
                                                                 : EnvState::kRunning;
}

const char* state_name(EnvState s) {
  switch (s) {
    case EnvState::kStopped: return "stopped";
    case EnvState::kIdle: return "idle";
    case EnvState::kRunning:
    case EnvState::kEnding: return "running";
  }
  return "running";
}

}  // namespace togo::cli
