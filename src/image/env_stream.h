// The byte stream under an export's tar, both ways. Going out, the tar is
// compressed here (zstd frames with checksums, made by a pool of threads, or gzip);
// coming in, it is decompressed here. In both directions the bytes of the
// writable tree, between two offsets the tar layer marks, are digested, so
// that damage to the tree is noticed whatever the compression (libarchive's
// gzip reader checks no CRC; a plain tar has no checksum over file data).
#pragma once

#include <archive.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "base/error.h"
#include "base/sha256.h"
#include "image/env_archive.h"

namespace togo::image {

/// Where a libarchive writer's tar goes (set it up with archive_write_open2,
/// `sink_write` and no block size: every byte must arrive when written).
/// Once anything failed nothing more is written, so a writer freed on an
/// error path cannot end the archive and make an incomplete export look whole.
class ExportSink {
 public:
  ExportSink(int fd, ExportCompression c);
  ~ExportSink();
  ExportSink(const ExportSink&) = delete;
  ExportSink& operator=(const ExportSink&) = delete;

  /// Compresses and writes `n` bytes of the tar; false once anything failed.
  bool write(const void* p, size_t n);
  /// Ends the compressed stream and writes what is buffered.
  Result<void> finish();
  /// Stops all output: called when the export fails.
  void abandon() { failed_ = true; }
  /// Why a write failed.
  std::unexpected<Error> failure(const std::string& what) const;

  /// Digests everything written from now on, until stop_digest.
  void start_digest();
  /// "sha256:<hex>" of the bytes since start_digest, and how many.
  std::string stop_digest(uint64_t* bytes);

 private:
  bool flush_buffer();
  bool emit(const void* p, size_t n);
  bool compress(const void* p, size_t n, bool end);

  int fd_;
  ExportCompression compression_;
  bool failed_ = false;
  int err_ = 0;
  std::string codec_error_;
  struct Codec;
  std::unique_ptr<Codec> codec_;
  std::string buf_;  // output not yet written
  std::unique_ptr<Sha256> digest_;
  uint64_t digested_ = 0;
};

la_ssize_t sink_write(struct archive*, void* sink, const void* buf, size_t n);

/// What a libarchive tar reader reads (archive_read_open with `source_read`):
/// the file `fd`, decompressed (zstd, gzip, xz, bzip2 or none). Keeps the
/// last stretch of the stream so that a digest can start at an offset the
/// tar reader reached after reading past it, and end at one known later.
class ImportSource {
 public:
  explicit ImportSource(int fd);
  ~ImportSource();
  ImportSource(const ImportSource&) = delete;
  ImportSource& operator=(const ImportSource&) = delete;

  /// Starts the decompressor; kBadInput if the input is no stream it reads.
  Result<void> open();
  /// The next block of the decompressed stream (0 at its end, -1 on error,
  /// with the reason set on `reader`).
  la_ssize_t read(struct archive* reader, const void** out);
  /// errno of a failed read of the file, or 0.
  int read_errno() const;

  struct Input;  // the file as the decompressor reads it

  /// Digests the stream from offset `at` (a tar reader's position: see
  /// archive_filter_bytes) onwards.
  void start_digest(uint64_t at);
  /// "sha256:<hex>" of the bytes from the start to `at`; kBadInput when
  /// `at` is out of reach (the stream is damaged).
  Result<std::string> digest_until(uint64_t at);

 private:
  struct Block {
    uint64_t start;
    std::string data;
  };
  void digest_block(const Block& b, uint64_t until);

  std::unique_ptr<Input> input_;
  struct archive* raw_;
  std::deque<Block> window_;
  uint64_t window_bytes_ = 0;
  uint64_t end_ = 0;  // offset after the last byte read
  std::unique_ptr<Sha256> digest_;
  uint64_t digested_to_ = 0;
  bool lost_ = false;  // a byte to digest left the window unseen
};

la_ssize_t source_read(struct archive* reader, void* source, const void** out);

}  // namespace togo::image
