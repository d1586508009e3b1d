// Running independent jobs on a few threads, stopping at the first error.
#pragma once

#include <cstddef>
#include <functional>

#include "base/error.h"

namespace togo {

/// Runs job(worker, item) for items 0..count-1 on up to `workers` threads
/// (worker 0 is the calling thread), each worker taking the next item.
/// After the first error no new item is started; that error is returned.
Result<void> in_parallel(size_t count, size_t workers,
                         const std::function<Result<void>(size_t worker, size_t item)>& job);

}  // namespace togo
