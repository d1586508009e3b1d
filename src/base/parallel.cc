#include "base/parallel.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace togo {

Result<void> in_parallel(size_t count, size_t workers,
                         const std::function<Result<void>(size_t worker, size_t item)>& job) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::optional<Error> first_error;
  auto work = [&](size_t w) {
    for (size_t j; !failed && (j = next++) < count;) {
      auto r = job(w, j);
      if (r) continue;
      std::lock_guard lock(mu);
      if (!first_error) first_error = std::move(r.error());
      failed = true;
    }
  };
  size_t n = std::min(count, std::max<size_t>(workers, 1));
  std::vector<std::thread> threads;
  for (size_t w = 1; w < n; w++) threads.emplace_back(work, w);
  if (n > 0) work(0);
  for (auto& t : threads) t.join();
  if (first_error) return std::unexpected(std::move(*first_error));
  return {};
}

}  // namespace togo
