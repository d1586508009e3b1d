// Resource limits of an environment (--memory, --cpus, --pids): what a person
// typed, parsed into numbers. Pure; cgroups_apply.h enforces them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "base/error.h"

namespace togo::runtime {

struct Limits {
  std::optional<uint64_t> memory;  // bytes of RAM; as much again may be swap
  std::optional<double> cpus;      // CPU time per wall-clock second, e.g. 1.5
  std::optional<uint64_t> pids;    // processes and threads alive at once
  bool any() const { return memory || cpus || pids; }
};

inline constexpr uint64_t kMinMemory = 1ull << 20;   // below this nothing starts
inline constexpr uint64_t kMaxMemory = 1ull << 60;
inline constexpr double kMinCpus = 0.01;             // the kernel's 1 ms quota per 100 ms
inline constexpr double kMaxCpus = 1024;
inline constexpr uint64_t kMaxPids = 4194304;        // the kernel's PID_MAX_LIMIT

/// "512m", "2g", "1.5G", "1048576", "64MiB": bytes. Units are binary (k, m, g,
/// t, any case, optionally followed by "b" or "ib"); a plain number is bytes.
/// At least 1m. Errors are kUsage: "--memory 12x: not a size (use e.g. 512m or 2g)".
Result<uint64_t> parse_memory(std::string_view text);

/// "1.5", "2", "0.25": a decimal number, 0.01 <= cpus <= 1024. Errors are kUsage.
Result<double> parse_cpus(std::string_view text);

/// "100": a whole number, 1 <= pids <= 4194304. Errors are kUsage.
Result<uint64_t> parse_pids(std::string_view text);

}  // namespace togo::runtime
