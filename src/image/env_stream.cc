#include "image/env_stream.h"

#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "base/sys.h"

namespace togo::image {

namespace {

constexpr size_t kOutBuffer = 1 << 20;
// How much of the stream an ImportSource keeps behind its newest block: more
// than a tar reader reads ahead of its position (a header with its pax
// records) and more than follows the tree (the trailer and the end marker).
constexpr uint64_t kWindow = 4 << 20;

}  // namespace

// ---- zstd frames compressed in parallel ----

// zstd as independent frames of kChunk input bytes each, compressed by a
// pool of threads and written in order: the static libzstd togo links has
// no worker threads of its own. Each frame carries a checksum (libarchive's
// own zstd filter writes none); concatenated frames are one zstd stream to
// every reader. The pool keeps at most two chunks per thread in flight.
class ZstdFrames {
 public:
  static constexpr size_t kChunk = 4 << 20;

  explicit ZstdFrames(std::function<bool(const std::string&)> emit) : emit_(std::move(emit)) {
    unsigned n = std::thread::hardware_concurrency();
    n = std::clamp(n, 1u, 16u);
    max_inflight_ = 2 * n;
    for (unsigned i = 0; i < n; i++) workers_.emplace_back([this] { work(); });
    chunk_.reserve(kChunk);
  }
  ~ZstdFrames() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  bool add(const void* p, size_t n) {
    auto* c = static_cast<const char*>(p);
    while (n > 0) {
      size_t take = std::min(n, kChunk - chunk_.size());
      chunk_.append(c, take);
      c += take;
      n -= take;
      if (chunk_.size() == kChunk && !submit()) return false;
    }
    return true;
  }

  bool finish() {
    if (!chunk_.empty() && !submit()) return false;
    return drain(0);
  }

  const std::string& error() const { return error_; }

 private:
  struct Job {
    std::string in, out, error;
    bool done = false;
  };

  bool submit() {
    auto job = std::make_shared<Job>();
    job->in = std::move(chunk_);
    chunk_ = std::string();
    chunk_.reserve(kChunk);
    {
      std::lock_guard<std::mutex> g(mu_);
      queue_.push_back(job);
      inflight_.push_back(job);
    }
    work_cv_.notify_one();
    return drain(max_inflight_);
  }

  // Writes finished frames in order until at most `keep` are in flight.
  bool drain(size_t keep) {
    for (;;) {
      std::shared_ptr<Job> front;
      {
        std::unique_lock<std::mutex> l(mu_);
        if (inflight_.empty()) return true;
        if (!inflight_.front()->done) {
          if (inflight_.size() <= keep) return true;
          done_cv_.wait(l, [&] { return inflight_.front()->done; });
        }
        front = inflight_.front();
        inflight_.pop_front();
      }
      if (!front->error.empty()) {
        error_ = front->error;
        return false;
      }
      if (!emit_(front->out)) return false;
    }
  }

  void work() {
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    if (cctx) {
      ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
      ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    }
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> l(mu_);
        work_cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) break;
        job = queue_.front();
        queue_.pop_front();
      }
      if (!cctx) {
        job->error = "zstd: out of memory";
      } else {
        job->out.resize(ZSTD_compressBound(job->in.size()));
        size_t n =
            ZSTD_compress2(cctx, job->out.data(), job->out.size(), job->in.data(), job->in.size());
        if (ZSTD_isError(n))
          job->error = std::string("zstd: ") + ZSTD_getErrorName(n);
        else
          job->out.resize(n);
      }
      job->in = std::string();
      {
        std::lock_guard<std::mutex> g(mu_);
        job->done = true;
      }
      done_cv_.notify_all();
    }
    ZSTD_freeCCtx(cctx);
  }

  std::function<bool(const std::string&)> emit_;
  std::string chunk_;
  std::string error_;
  size_t max_inflight_ = 2;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<std::shared_ptr<Job>> queue_;     // not yet taken by a worker
  std::deque<std::shared_ptr<Job>> inflight_;  // every job not yet written, in order
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

// ---- ExportSink ----

struct ExportSink::Codec {
  std::unique_ptr<ZstdFrames> zstd;
  z_stream gz{};
  bool gz_open = false;
  std::string out;
  ~Codec() {
    if (gz_open) deflateEnd(&gz);
  }
};

ExportSink::ExportSink(int fd, ExportCompression c) : fd_(fd), compression_(c) {
  buf_.reserve(kOutBuffer);
  if (c == ExportCompression::kNone) return;
  codec_ = std::make_unique<Codec>();
  if (c == ExportCompression::kZstd) {
    codec_->zstd = std::make_unique<ZstdFrames>(
        [this](const std::string& frame) { return emit(frame.data(), frame.size()); });
  } else {
    codec_->out.resize(256 << 10);
    // windowBits 15 + 16: a gzip member, with its header and CRC.
    if (deflateInit2(&codec_->gz, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      failed_ = true;
      codec_error_ = "cannot start gzip";
      return;
    }
    codec_->gz_open = true;
  }
}

ExportSink::~ExportSink() = default;

bool ExportSink::flush_buffer() {
  if (buf_.empty()) return true;
  auto r = sys::write_all(fd_, buf_, "the export");
  buf_.clear();
  if (!r) {
    failed_ = true;
    err_ = r.error().err;
  }
  return r.has_value();
}

bool ExportSink::emit(const void* p, size_t n) {
  if (buf_.size() + n > kOutBuffer && !flush_buffer()) return false;
  if (n >= kOutBuffer) {
    auto r = sys::write_all(fd_, std::string_view(static_cast<const char*>(p), n), "the export");
    if (!r) {
      failed_ = true;
      err_ = r.error().err;
    }
    return r.has_value();
  }
  buf_.append(static_cast<const char*>(p), n);
  return true;
}

bool ExportSink::compress(const void* p, size_t n, bool end) {
  Codec& c = *codec_;
  if (c.zstd) {
    bool ok = end ? c.zstd->finish() : c.zstd->add(p, n);
    if (!ok && !failed_) {
      failed_ = true;
      codec_error_ = c.zstd->error();
    }
    return ok;
  }
  c.gz.next_in = static_cast<Bytef*>(const_cast<void*>(p));
  c.gz.avail_in = static_cast<uInt>(n);
  for (;;) {
    c.gz.next_out = reinterpret_cast<Bytef*>(c.out.data());
    c.gz.avail_out = static_cast<uInt>(c.out.size());
    int rc = deflate(&c.gz, end ? Z_FINISH : Z_NO_FLUSH);
    if (rc == Z_STREAM_ERROR) {
      failed_ = true;
      codec_error_ = "gzip: compression failed";
      return false;
    }
    size_t made = c.out.size() - c.gz.avail_out;
    if (made && !emit(c.out.data(), made)) return false;
    if (end ? rc == Z_STREAM_END : c.gz.avail_in == 0 && c.gz.avail_out != 0) return true;
  }
}

bool ExportSink::write(const void* p, size_t n) {
  if (failed_) return false;
  if (digest_) {
    digest_->update(p, n);
    digested_ += n;
  }
  // zlib takes at most 4 GiB a call; libarchive's writes are far smaller.
  return codec_ ? compress(p, n, false) : emit(p, n);
}

Result<void> ExportSink::finish() {
  if (!failed_ && codec_) compress(nullptr, 0, true);
  if (!failed_) flush_buffer();
  if (failed_) return failure("finishing the export");
  return {};
}

std::unexpected<Error> ExportSink::failure(const std::string& what) const {
  if (err_) return sys_error(err_, "writing the export");
  return error(what + ": " + (codec_error_.empty() ? "stopped" : codec_error_));
}

void ExportSink::start_digest() {
  digest_ = std::make_unique<Sha256>();
  digested_ = 0;
}

std::string ExportSink::stop_digest(uint64_t* bytes) {
  std::string d = "sha256:" + digest_->hex();
  digest_.reset();
  if (bytes) *bytes = digested_;
  return d;
}

la_ssize_t sink_write(struct archive*, void* sink, const void* buf, size_t n) {
  return static_cast<ExportSink*>(sink)->write(buf, n) ? static_cast<la_ssize_t>(n) : -1;
}

// ---- ImportSource ----

struct ImportSource::Input {
  int fd = -1;
  int err = 0;
  char buf[1 << 20];
};

namespace {

la_ssize_t input_read(struct archive*, void* data, const void** out) {
  auto* in = static_cast<ImportSource::Input*>(data);
  ssize_t n;
  do n = ::read(in->fd, in->buf, sizeof in->buf);
  while (n < 0 && errno == EINTR);
  if (n < 0) in->err = errno;
  *out = in->buf;
  return n;
}

}  // namespace

ImportSource::ImportSource(int fd) : input_(std::make_unique<Input>()), raw_(archive_read_new()) {
  input_->fd = fd;
}

ImportSource::~ImportSource() { archive_read_free(raw_); }

Result<void> ImportSource::open() {
  archive_read_support_filter_zstd(raw_);
  archive_read_support_filter_gzip(raw_);
  archive_read_support_filter_xz(raw_);
  archive_read_support_filter_bzip2(raw_);
  archive_read_support_format_raw(raw_);
  archive_read_support_format_empty(raw_);
  auto failed = [&](const char* what) -> std::unexpected<Error> {
    if (input_->err) return sys_error(input_->err, "reading the export");
    const char* msg = archive_error_string(raw_);
    return error(ErrorKind::kBadInput, std::string(what) + (msg ? std::string(": ") + msg : ""));
  };
  if (archive_read_open(raw_, input_.get(), nullptr, input_read, nullptr) != ARCHIVE_OK)
    return failed("not a togo environment export");
  struct archive_entry* e = nullptr;
  int rc = archive_read_next_header(raw_, &e);
  if (rc == ARCHIVE_EOF) return error(ErrorKind::kBadInput, "the file is empty");
  if (rc < ARCHIVE_WARN) return failed("not a togo environment export");
  return {};
}

int ImportSource::read_errno() const { return input_->err; }

la_ssize_t ImportSource::read(struct archive* reader, const void** out) {
  const void* p = nullptr;
  size_t n = 0;
  la_int64_t off = 0;
  int rc = archive_read_data_block(raw_, &p, &n, &off);
  if (rc == ARCHIVE_EOF) return 0;
  if (rc < ARCHIVE_WARN) {
    const char* msg = archive_error_string(raw_);
    if (input_->err)
      archive_set_error(reader, input_->err, "reading the export: %s", std::strerror(input_->err));
    else
      archive_set_error(reader, -1, "%s", msg ? msg : "the stream is damaged");
    return -1;
  }
  // Kept (copied) in the window; what leaves it is digested if it must be.
  window_.push_back({end_, std::string(static_cast<const char*>(p), n)});
  window_bytes_ += n;
  end_ += n;
  while (window_.size() > 1 && window_bytes_ - window_.front().data.size() >= kWindow) {
    digest_block(window_.front(), UINT64_MAX);
    window_bytes_ -= window_.front().data.size();
    window_.pop_front();
  }
  *out = window_.back().data.data();
  return static_cast<la_ssize_t>(n);
}

void ImportSource::digest_block(const Block& b, uint64_t until) {
  if (!digest_) return;
  uint64_t from = std::max(b.start, digested_to_);
  uint64_t to = std::min<uint64_t>(b.start + b.data.size(), until);
  if (from >= to) return;
  if (from > digested_to_) lost_ = true;  // a gap: bytes left the window undigested
  digest_->update(b.data.data() + (from - b.start), to - from);
  digested_to_ = to;
}

void ImportSource::start_digest(uint64_t at) {
  digest_ = std::make_unique<Sha256>();
  digested_to_ = at;
  if (window_.empty() ? at != end_ : at < window_.front().start) lost_ = true;
}

Result<std::string> ImportSource::digest_until(uint64_t at) {
  if (!digest_ || at < digested_to_ || at > end_)
    return error(ErrorKind::kBadInput, "the environment's files end where the file does not");
  for (auto& b : window_) digest_block(b, at);
  if (lost_ || digested_to_ != at)
    return error(ErrorKind::kBadInput, "the environment's files cannot be checked (damaged file?)");
  std::string d = "sha256:" + digest_->hex();
  digest_.reset();
  return d;
}

la_ssize_t source_read(struct archive* reader, void* source, const void** out) {
  return static_cast<ImportSource*>(source)->read(reader, out);
}

}  // namespace togo::image
