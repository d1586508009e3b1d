// How an environment's records become a runtime spec.
#pragma once

#include <string>

#include "runtime/plan.h"
#include "store/catalog.h"

namespace togo::cli {

/// A spec whose overlay dirs are under `env_dir` (store-relative), for
/// mounting the image's layers there.
runtime::RunSpec overlay_spec(const std::string& store, const store::ImageRecord& image,
                              const std::string& env_dir);

/// The full spec to run `env`: its root, hostname, user mapping, command.
runtime::RunSpec run_spec(const std::string& store, const store::EnvRecord& env,
                          const store::ImageRecord& image);

}  // namespace togo::cli
