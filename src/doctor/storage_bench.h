// `togo doctor --storage-bench`: a few seconds of I/O in the store's tmp/
// (or, before the store exists, where it would be) that tell whether the
// drive will make envs pleasant: sequential write and read (images, pulls,
// exports), small random writes (package managers, builds) and the latency
// of fsync (databases, and togo's own durable commits).
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"
#include "doctor/checks.h"

namespace togo::doctor {

/// How much each measurement may take. The defaults keep the whole bench
/// under 10 s even on a USB 2 stick.
struct BenchBudget {
  uint64_t max_bytes = 256ull << 20;  // of the sequential file
  double write_s = 2.0;               // sequential write, fsync included
  double read_s = 1.5;                // sequential read
  double random_s = 1.5;              // 4 KiB writes at random offsets
  double fsync_s = 1.0;               // 4 KiB append + fsync, repeatedly
};

/// What the bench measured.
struct BenchFigures {
  double write_mbs = 0;    // MB/s (10^6 bytes), including the final fsync
  double read_mbs = 0;     // MB/s, from a cold cache where the kernel allows
  double random_iops = 0;  // 4 KiB random writes per second, fsyncs included
  double fsync_ms = 0;     // median latency of a 4 KiB append + fsync
  double fsync_p90_ms = 0;
  uint64_t bytes = 0;  // size of the sequential file
  double seconds = 0;  // the whole bench
};

/// Pleasant-env thresholds: below them a drive is reported as degraded.
struct BenchThresholds {
  double write_mbs = 80;
  double read_mbs = 100;
  double random_iops = 500;
  double fsync_ms = 10;
};

/// Runs the bench in a fresh directory inside `dir` (removed afterwards),
/// using at most `budget`, and at most a quarter of the free space.
Result<BenchFigures> run_storage_bench(const std::string& dir, const BenchBudget& budget = {});

/// The finding for a set of figures. Pure.
Finding judge_bench(const BenchFigures& figures, const BenchThresholds& limits = {});

}  // namespace togo::doctor
