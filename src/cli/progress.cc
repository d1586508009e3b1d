#include "cli/progress.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "base/text.h"

namespace togo::cli {

using Kind = image::TransferEvent::Kind;

bool live_terminal(int fd) {
  const char* term = std::getenv("TERM");
  return ::isatty(fd) == 1 && !(term && std::strcmp(term, "dumb") == 0);
}

TransferDisplay::TransferDisplay(FILE* out, bool live) : out_(out), live_(live) {}

TransferDisplay::~TransferDisplay() { finish(); }

std::string TransferDisplay::text(const Row& r, Clock::time_point now) const {
  switch (r.state) {
    case Kind::kSkipped: return r.label + " " + r.note;
    case Kind::kDone: return r.label + " " + text::human_size(r.total) + " done";
    case Kind::kUnpacking: return r.label + " " + text::human_size(r.total) + " unpacking";
    case Kind::kStart:
    case Kind::kBytes: break;
  }
  std::string s = r.label + "  " + text::human_size(r.done) + " / " + text::human_size(r.total);
  double secs = std::chrono::duration<double>(now - r.started).count();
  if (secs > 0.2 && r.done > r.resumed_at)
    s += "  " + text::human_size(static_cast<uint64_t>(static_cast<double>(r.done - r.resumed_at) / secs)) + "/s";
  return s;
}

void TransferDisplay::plain(const Row& r, Kind kind) {
  std::string line;
  if (kind == Kind::kStart && r.resumed_at > 0 && r.resumed_at < r.total)
    line = r.label + " resuming at " + text::human_size(r.resumed_at) + " of " + text::human_size(r.total);
  else if (kind == Kind::kDone || kind == Kind::kSkipped)
    line = text(r, Clock::now());
  if (line.empty()) return;
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void TransferDisplay::clear() {
  if (drawn_ > 0) std::fprintf(out_, "\x1b[%zuA\r\x1b[J", drawn_);
  drawn_ = 0;
}

void TransferDisplay::redraw() {
  auto now = Clock::now();
  std::string frame;
  if (drawn_ > 0) frame += "\x1b[" + std::to_string(drawn_) + "A";
  for (auto& [i, r] : rows_) frame += "\r\x1b[2K" + text(r, now) + "\n";
  std::fputs(frame.c_str(), out_);
  std::fflush(out_);
  drawn_ = rows_.size();
  last_draw_ = now;
}

void TransferDisplay::on_event(const image::TransferEvent& e) {
  std::lock_guard lock(mu_);
  if (finished_) return;
  auto [it, fresh] = rows_.try_emplace(e.index);
  Row& r = it->second;
  if (fresh || e.kind == Kind::kStart) {
    std::string n = std::to_string(e.count);
    r.label = "layer " + std::to_string(e.index + 1) + "/" + n + " " + std::string(e.digest.substr(0, 19));
    r.started = Clock::now();
    r.resumed_at = e.kind == Kind::kStart ? e.done : 0;
  }
  r.total = e.total;
  r.done = e.done;
  bool unpacked = e.kind == Kind::kDone && r.state == Kind::kUnpacking;
  if (e.kind != Kind::kBytes) {
    r.state = e.kind;
    r.note = std::string(e.note);
  }
  if (!live_) {
    if (!unpacked) plain(r, e.kind);
    return;
  }
  if (e.kind == Kind::kBytes && Clock::now() - last_draw_ < std::chrono::milliseconds(100)) return;
  redraw();
}

void TransferDisplay::notice(const std::string& line) {
  std::lock_guard lock(mu_);
  if (live_ && !finished_) clear();
  std::fflush(out_);
  std::fprintf(stderr, "togo: %s\n", line.c_str());
  if (live_ && !finished_ && !rows_.empty()) redraw();
}

void TransferDisplay::finish() {
  std::lock_guard lock(mu_);
  if (finished_) return;
  if (live_ && !rows_.empty()) redraw();
  finished_ = true;
}

}  // namespace togo::cli
