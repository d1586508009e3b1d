#include "cli/env_spec.h"

#include <unistd.h>

#include "store/layout.h"

namespace togo::cli {

runtime::RunSpec overlay_spec(const std::string& store, const store::ImageRecord& image,
                              const std::string& env_dir) {
  runtime::RunSpec s;
  s.store = store;
  for (auto& l : image.layers) s.layers.push_back(store::layer_root(l));
  s.upper = env_dir + "/upper";
  s.work = env_dir + "/work";
  s.mount = env_dir + "/mount";
  s.rootless = ::geteuid() != 0;
  return s;
}

runtime::RunSpec run_spec(const std::string& store, const store::EnvRecord& env,
                          const store::ImageRecord& image) {
  store::EnvPaths p = store::env_paths(env.id);
  runtime::RunSpec s = overlay_spec(store, image, p.dir);
  s.hostname = env.name;
  if (env.rootfs == "copy") s.rootfs = p.rootfs;
  return s;
}

}  // namespace togo::cli
