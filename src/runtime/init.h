// The env's pid 1 once its root is set up: it serves the control socket,
// runs one session itself and forks a leader for each other one at the
// same time, reaps, and ends the env when asked or, for an env started by
// `togo run`, when its last session ends.
#pragma once

namespace togo::runtime {

struct InitConfig {
  int listen = -1;         // listening control socket (SOCK_SEQPACKET)
  int first = -1;          // an already connected session channel, or -1
  int log = -1;            // where init writes its lines (the env's log)
  bool persistent = false; // `togo start`: stay up with no session
  int linger_ms = 0;       // otherwise: how long to stay up after the last session
  int drive = -1;          // a file on the store's drive opened O_DIRECT, or -1: read
                           // every few seconds; an I/O error ends the env
  int lock = -1;           // the env's lock file, locked: held until the env ends
};

/// Runs init's loop; never returns.
[[noreturn]] void init_main(const InitConfig& config);

}  // namespace togo::runtime
