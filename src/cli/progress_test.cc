#include "cli/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace togo::cli {
namespace {

using Kind = image::TransferEvent::Kind;

const std::string kDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// What a display wrote to a memory stream.
class Captured {
 public:
  Captured() : f_(open_memstream(&buf_, &size_)) {}
  ~Captured() {
    std::fclose(f_);
    std::free(buf_);
  }
  FILE* file() { return f_; }
  std::string text() {
    std::fflush(f_);
    return std::string(buf_, size_);
  }

 private:
  char* buf_ = nullptr;
  size_t size_ = 0;
  FILE* f_;
};

image::TransferEvent event(Kind kind, size_t index, uint64_t done, std::string_view note = {}) {
  return {kind, index, 3, kDigest, 12u << 20, done, note};
}

TEST(TransferDisplay, PlainLinesSayWhatHappenedToEachLayer) {
  Captured out;
  {
    TransferDisplay d(out.file(), false);
    d.on_event(event(Kind::kSkipped, 0, 0, "already stored"));
    d.on_event(event(Kind::kStart, 1, 0));
    d.on_event(event(Kind::kBytes, 1, 1 << 20));
    d.on_event(event(Kind::kDone, 1, 12u << 20));
    d.on_event(event(Kind::kStart, 2, 3u << 20));
    d.on_event(event(Kind::kDone, 2, 12u << 20));
    d.on_event(event(Kind::kUnpacking, 1, 12u << 20));
    d.on_event(event(Kind::kDone, 1, 12u << 20));  // unpacked: said already
  }
  EXPECT_EQ(out.text(),
            "layer 1/3 sha256:0123456789ab already stored\n"
            "layer 2/3 sha256:0123456789ab 12.0 MiB done\n"
            "layer 3/3 sha256:0123456789ab resuming at 3.0 MiB of 12.0 MiB\n"
            "layer 3/3 sha256:0123456789ab 12.0 MiB done\n");
}

TEST(TransferDisplay, ALiveDisplayRedrawsItsLinesInPlace) {
  Captured out;
  TransferDisplay d(out.file(), true);
  d.on_event(event(Kind::kStart, 0, 0));
  EXPECT_EQ(out.text(), "\r\x1b[2Klayer 1/3 sha256:0123456789ab  0 B / 12.0 MiB\n");
  d.on_event(event(Kind::kStart, 1, 0));
  std::string two = out.text();
  EXPECT_NE(two.find("\x1b[1A\r\x1b[2Klayer 1/3"), std::string::npos) << two;
  EXPECT_NE(two.find("\r\x1b[2Klayer 2/3 sha256:0123456789ab  0 B / 12.0 MiB\n"), std::string::npos) << two;
  d.on_event(event(Kind::kDone, 0, 12u << 20));
  d.finish();
  std::string all = out.text();
  EXPECT_NE(all.rfind("\x1b[2A\r\x1b[2Klayer 1/3 sha256:0123456789ab 12.0 MiB done\n"), std::string::npos) << all;
  size_t before = all.size();
  d.on_event(event(Kind::kDone, 1, 12u << 20));
  EXPECT_EQ(out.text().size(), before) << "nothing is drawn after finish()";
}

}  // namespace
}  // namespace togo::cli
