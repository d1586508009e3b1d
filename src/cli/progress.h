// Progress of layer transfers, for people: on a terminal, one line per
// layer (bytes so far of the total, and the rate) redrawn in place;
// otherwise one plain line as each layer finishes, for logs.
#pragma once

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

#include "image/pull.h"

namespace togo::cli {

/// True if `fd` is a terminal that can redraw lines (TERM is not "dumb").
bool live_terminal(int fd);

class TransferDisplay {
 public:
  /// Draws on `out`; `live` redraws in place (see live_terminal()).
  TransferDisplay(FILE* out, bool live);
  ~TransferDisplay();
  TransferDisplay(const TransferDisplay&) = delete;
  TransferDisplay& operator=(const TransferDisplay&) = delete;

  /// Takes one event; thread-safe. A live display redraws at most ten
  /// times a second for byte counts, at once for anything else.
  void on_event(const image::TransferEvent& e);
  /// A notice on stderr ("togo: <text>") that leaves the live lines intact.
  void notice(const std::string& text);
  /// Draws the final state; later events are ignored.
  void finish();

  /// A TransferProgress that feeds this display.
  image::TransferProgress callback() {
    return [this](const image::TransferEvent& e) { on_event(e); };
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Row {
    std::string label;  // "layer 2/3 sha256:0123456789ab"
    image::TransferEvent::Kind state = image::TransferEvent::Kind::kStart;
    uint64_t total = 0, done = 0, resumed_at = 0;
    Clock::time_point started;
    std::string note;
  };
  std::string text(const Row& r, Clock::time_point now) const;
  void plain(const Row& r, image::TransferEvent::Kind kind);
  void redraw();
  void clear();

  FILE* out_;
  bool live_;
  bool finished_ = false;
  std::mutex mu_;
  std::map<size_t, Row> rows_;
  size_t drawn_ = 0;  // lines of the live display on screen
  Clock::time_point last_draw_;
};

}  // namespace togo::cli
