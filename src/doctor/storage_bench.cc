#include "doctor/storage_bench.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "base/fd.h"
#include "base/fs.h"
#include "base/sys.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

constexpr size_t kChunk = 1u << 20;
constexpr size_t kBlock = 4096;

/// Bytes that do not compress (btrfs and zfs would shrink zeros).
void fill(std::vector<char>& buf, uint64_t seed) {
  uint64_t x = seed | 1;
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&buf[i], &x, 8);
  }
}

Result<void> pwrite_all(int fd, const char* data, size_t size, off_t at, const char* what) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(errno, std::string("writing ") + what);
    data += n;
    size -= static_cast<size_t>(n);
    at += n;
  }
  return {};
}

Result<void> datasync(int fd, const char* what) {
  if (::fdatasync(fd) < 0) return sys_error(errno, std::string("syncing ") + what);
  return {};
}

Result<BenchFigures> measure(const std::string& work, const BenchBudget& b, uint64_t max_bytes) {
  BenchFigures out;
  std::vector<char> buf(kChunk);
  fill(buf, static_cast<uint64_t>(::getpid()) * 2654435761u);

  // Sequential write, until the size or the time budget is reached.
  Fd seq = TRY(sys::open_at(AT_FDCWD, work + "/seq", O_RDWR | O_CREAT | O_EXCL, 0600));
  auto t = Clock::now();
  uint64_t bytes = 0;
  while (bytes < max_bytes && (bytes == 0 || since(t) < b.write_s)) {
    TRY(pwrite_all(seq.get(), buf.data(), kChunk, static_cast<off_t>(bytes), "the bench file"));
    // Each chunk reaches the drive inside the timed loop, so a slow drive
    // ends the loop by the time budget instead of in one long sync after it.
    (void)::sync_file_range(seq.get(), static_cast<off_t>(bytes), kChunk,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                SYNC_FILE_RANGE_WAIT_AFTER);
    bytes += kChunk;
  }
  TRY(datasync(seq.get(), "the bench file"));
  out.write_mbs = static_cast<double>(bytes) / 1e6 / std::max(since(t), 1e-6);
  out.bytes = bytes;

  // Sequential read, with the file's clean pages dropped first.
  (void)::posix_fadvise(seq.get(), 0, 0, POSIX_FADV_DONTNEED);
  t = Clock::now();
  uint64_t read = 0;
  while (read < bytes && since(t) < b.read_s) {
    ssize_t n = ::pread(seq.get(), buf.data(), kChunk, static_cast<off_t>(read));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(errno, "reading the bench file");
    if (n == 0) break;
    read += static_cast<uint64_t>(n);
  }
  out.read_mbs = static_cast<double>(read) / 1e6 / std::max(since(t), 1e-6);

  // 4 KiB writes at random block offsets of the (allocated) file, synced
  // in rounds that grow while they are quick, so a slow stick cannot
  // overrun the budget by much.
  uint64_t blocks = bytes / kBlock, state = 0x9E3779B97F4A7C15ull, writes = 0;
  size_t round = 16;
  t = Clock::now();
  while (since(t) < b.random_s) {
    auto r0 = Clock::now();
    for (size_t i = 0; i < round; i++) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      off_t at = static_cast<off_t>((state % blocks) * kBlock);
      TRY(pwrite_all(seq.get(), buf.data() + (i % 256) * kBlock, kBlock, at, "the bench file"));
    }
    TRY(datasync(seq.get(), "the bench file"));
    writes += round;
    if (since(r0) < 0.05 && round < 1024) round *= 2;
  }
  out.random_iops = static_cast<double>(writes) / std::max(since(t), 1e-6);

  // fsync latency: append a block, fsync, as a database commit does.
  Fd log = TRY(sys::open_at(AT_FDCWD, work + "/fsync", O_WRONLY | O_CREAT | O_EXCL, 0600));
  std::vector<double> ms;
  t = Clock::now();
  while (ms.size() < 3 || (since(t) < b.fsync_s && ms.size() < 2000)) {
    auto s0 = Clock::now();
    TRY(pwrite_all(log.get(), buf.data(), kBlock, static_cast<off_t>(ms.size() * kBlock),
                   "the fsync file"));
    if (::fsync(log.get()) < 0) return sys_error(errno, "fsync of the bench file");
    ms.push_back(since(s0) * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  out.fsync_ms = ms[ms.size() / 2];
  out.fsync_p90_ms = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
  return out;
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

Result<BenchFigures> run_storage_bench(const std::string& dir, const BenchBudget& budget) {
  auto start = Clock::now();
  struct statvfs sv;
  if (::statvfs(dir.c_str(), &sv) < 0) return sys_error(errno, "statvfs " + dir);
  uint64_t free_bytes = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
  uint64_t max_bytes = std::min(budget.max_bytes, free_bytes / 4) / kChunk * kChunk;
  if (max_bytes < 8 * kChunk)
    return error("not enough free space for the bench in " + dir + " (it needs 32 MiB)");
  std::string work = fs::join(dir, fs::temp_name(".togo-bench-"));
  if (::mkdir(work.c_str(), 0700) < 0) return sys_error(errno, "creating " + work);
  auto r = measure(work, budget, max_bytes);
  (void)fs::remove_tree(AT_FDCWD, work);
  if (r) r->seconds = since(start);
  return r;
}

Finding judge_bench(const BenchFigures& m, const BenchThresholds& limits) {
  Finding f;
  f.found = "sequential write " + fixed(m.write_mbs, 0) + " MB/s, read " + fixed(m.read_mbs, 0) +
            " MB/s; 4 KiB random writes " + fixed(m.random_iops, 0) + "/s; fsync " +
            fixed(m.fsync_ms, 1) + " ms (median; 90% under " + fixed(m.fsync_p90_ms, 1) + " ms); " +
            std::to_string(m.bytes >> 20) + " MiB in " + fixed(m.seconds, 1) + " s";
  std::vector<std::string> slow;
  if (m.write_mbs < limits.write_mbs)
    slow.push_back("writes at " + fixed(m.write_mbs, 0) + " MB/s (pleasant: " +
                   fixed(limits.write_mbs, 0) + "+) make imports and pulls crawl");
  if (m.read_mbs < limits.read_mbs)
    slow.push_back("reads at " + fixed(m.read_mbs, 0) + " MB/s (pleasant: " +
                   fixed(limits.read_mbs, 0) + "+) slow every program's start");
  if (m.random_iops < limits.random_iops)
    slow.push_back(fixed(m.random_iops, 0) + " small random writes/s (pleasant: " +
                   fixed(limits.random_iops, 0) + "+) stall apt, pip and builds");
  if (m.fsync_ms > limits.fsync_ms)
    slow.push_back("fsync taking " + fixed(m.fsync_ms, 1) + " ms (pleasant: under " +
                   fixed(limits.fsync_ms, 0) + ") makes databases and dpkg wait at every commit");
  if (slow.empty()) return f;
  f.status = Status::kDegraded;
  f.why = join(slow, "; ");
  return f;
}

Finding probe_storage_bench(const HostView& v) {
  Finding f;
  std::string dir = scratch_dir(v);
  if (dir.empty()) {
    f.status = Status::kMissing;
    f.found = "not run: " + v.user_name() + " may not write on the store's filesystem";
    f.fix = "pass --store with a directory you own";
    return f;
  }
  auto figures = run_storage_bench(dir);
  if (!figures) {
    f.status = Status::kMissing;
    f.found = "the bench failed: " + figures.error().message;
    return f;
  }
  return judge_bench(*figures);
}

}  // namespace togo::doctor
