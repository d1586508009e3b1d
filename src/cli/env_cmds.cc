// togo create | ls | rm
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "base/host_check.h"
#include "base/sys.h"
#include "base/text.h"
#include "cli/commands.h"
#include "cli/env_access.h"
#include "cli/env_spec.h"
#include "cli/env_state.h"
#include "cli/settings.h"
#include "image/import.h"
#include "image/unpack_image.h"
#include "runtime/cgroups_apply.h"
#include "runtime/idmap_apply.h"
#include "runtime/idmap_plan.h"
#include "runtime/launcher.h"
#include "runtime/overlay_probe.h"
#include "store/envs.h"
#include "store/layout.h"

namespace togo::cli {

namespace {

// Stops an env that is only lingering; true if it is stopped now.
bool stop_if_idle(store::Store& st, const store::EnvRecord& env) {
  if (env_state(st, env) != EnvState::kIdle) return !is_running(st, env);
  auto dir = sys::open_at(st.fd(), store::env_paths(env.id).dir, O_RDONLY | O_DIRECTORY);
  if (!dir) return false;
  auto ch = runtime::connect_env(dir->get());
  if (ch && *ch) (void)runtime::stop_env((*ch)->get(), dir->get(), 0);
  return !is_running(st, env);
}

}  // namespace

Result<int> cmd_create(Context& c) {
  const std::string& name = c.inv.args[0];
  if (!store::valid_env_name(name))
    return error(ErrorKind::kUsage, "create " + name + ": not a valid environment name",
                 "use up to 63 letters, digits, '.', '_' or '-', starting with a letter or digit");
  auto image_name = c.inv.value("--image");
  if (!image_name)
    return error(ErrorKind::kUsage, "create " + name + ": --image is required",
                 "`togo image ls` lists images; `togo image create debian` builds one");
  std::string mode = c.inv.value("--rootfs").value_or("");
  if (!mode.empty() && mode != "overlay" && mode != "copy")
    return error(ErrorKind::kUsage, "create " + name + ": --rootfs must be overlay or copy");

  // Settings from the flags, checked before anything is written.
  Settings settings;
  for (const char* key : {"env", "share", "port"})
    for (auto& v : c.inv.all(std::string("--") + key))
      TRY_CTX(apply_edit(settings, std::string(key) + "+=" + v), "create " + name);
  for (const char* key : {"workdir", "hostname", "network", "memory", "cpus", "pids"})
    if (auto v = c.inv.value(std::string("--") + key))
      TRY_CTX(apply_edit(settings, std::string(key) + "=" + *v), "create " + name);
  for (const char* key : {"user", "privileged"})
    if (c.inv.flag(std::string("--") + key)) TRY(apply_edit(settings, std::string(key) + "=true"));
  TRY_CTX(check_settings(settings), "create " + name);

  auto st = TRY(c.open_store(store::Store::Access::kWrite));
  auto lock = TRY(st.lock_for_writing("create " + name));
  if (TRY(st.catalog().find_env(name)))
    return error(ErrorKind::kConflict, "create " + name + ": an environment of that name exists",
                 "choose another name, or `togo rm " + name + "` first");
  auto img = TRY(st.catalog().find_image(*image_name));
  if (!img)
    return error(ErrorKind::kNotFound, "create " + name + ": image " + *image_name + ": no such image",
                 "`togo image ls` lists images; `togo image create debian` builds one");

  // Files `togo fsck` found damaged and could not rebuild are not built upon.
  for (auto& [object, why] : TRY(st.catalog().damaged()))
    for (auto& l : img->layers)
      if (object == "layer " + l)
        return error(ErrorKind::kFailed,
                     "create " + name + ": image " + *image_name + ": layer " + l.substr(0, 19) +
                         " is damaged (" + why + ")",
                     "pull or import the image again");

  // A pulled image's layers are unpacked by its first create, under this lock.
  TRY_CTX(image::unpack_image(st, *img, Context::notice), "create " + name);

  store::EnvRecord env{store::new_env_id(), name, img->id, mode.empty() ? "overlay" : mode,
                       static_cast<int64_t>(::time(nullptr)), format_settings(settings)};
  TRY_CTX(store::create_env(st, env,
                            [&](const std::string& stage) -> Result<void> {
                              if (env.rootfs == "overlay") {
                                auto spec = overlay_spec(st.path(), *img, stage);
                                auto probe = runtime::probe_overlay(spec);
                                if (probe) return {};
                                if (!mode.empty())
                                  return std::unexpected(host_check::point_at(
                                      std::move(probe.error()).with_hint(
                                          "use --rootfs copy on this host"),
                                      host_check::kOverlay));
                                Context::notice("overlayfs is not usable here (" +
                                                probe.error().message +
                                                "); " + name + " gets a private copy of the image" +
                                                host_check::see(host_check::kOverlay));
                                env.rootfs = "copy";
                              }
                              // A private copy: each layer unpacked again from
                              // its verified blob.
                              Fd dir = TRY(sys::open_at(st.fd(), stage, O_RDONLY | O_DIRECTORY));
                              for (auto& layer : img->layers)
                                TRY(image::unpack_blob(st, layer, dir.get(), "rootfs", /*merge=*/true,
                                                       Context::notice));
                              return {};
                            }),
          "create " + name);
  // Once, here rather than at every run: what a rootless env will lack.
  if (auto facts = runtime::read_id_facts()) {
    auto id = runtime::plan_identity(*facts, settings.user);
    if (!id.notice.empty()) Context::notice(id.notice);
  }
  std::printf("%s\n", name.c_str());
  return 0;
}

Result<int> cmd_config(Context& c) {
  const std::string& name = c.inv.args[0];
  std::vector<std::string> edits(c.inv.args.begin() + 1, c.inv.args.end());
  auto existing = TRY(store::Store::open_existing(
      TRY(c.store_path()), edits.empty() ? store::Store::Access::kRead : store::Store::Access::kWrite));
  if (!existing) return no_such_env(name);
  store::Store& st = *existing;
  std::optional<store::WriterLock> lock;
  if (!edits.empty()) lock.emplace(TRY(st.lock_for_writing("config " + name)));
  auto env = TRY(st.catalog().find_env(name));
  if (!env) return no_such_env(name);
  Settings settings = TRY_CTX(parse_settings(env->settings), "config " + name);
  if (edits.empty()) {
    std::fputs(format_settings(settings).c_str(), stdout);
    return 0;
  }
  for (auto& e : edits) TRY_CTX(apply_edit(settings, e), "config " + name);
  TRY_CTX(check_settings(settings), "config " + name);
  std::string text = format_settings(settings);
  TRY(st.catalog().transaction([&] { return st.catalog().set_env_settings(env->id, text); }));
  if (is_running(st, *env))
    Context::notice(name + " is running: the change takes effect when it next starts");
  std::fputs(text.c_str(), stdout);
  return 0;
}

Result<int> cmd_ls(Context& c) {
  auto st = TRY(store::Store::open_existing(TRY(c.store_path()), store::Store::Access::kRead));
  std::vector<store::EnvRecord> envs;
  if (st) envs = TRY(st->catalog().envs());
  auto image_name = [&](const std::string& id) {
    auto img = st->catalog().find_image(id);
    return img && *img ? (*img)->name : id.substr(7, 12);
  };
  if (c.json()) {
    std::vector<std::string> items;
    for (auto& e : envs)
      items.push_back(text::JsonObject()
                          .add("name", e.name)
                          .add("id", e.id)
                          .add("image", image_name(e.image_id))
                          .add("image_id", e.image_id)
                          .add("rootfs", e.rootfs)
                          .add("state", state_name(env_state(*st, e)))
                          .add("created", e.created)
                          .str());
    std::printf("%s\n", text::json_array(items).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "IMAGE", "STATE", "ROOTFS", "CREATED"}};
  int64_t now = ::time(nullptr);
  for (auto& e : envs)
    rows.push_back({e.name, image_name(e.image_id), state_name(env_state(*st, e)), e.rootfs,
                    text::ago(e.created, now)});
  std::fputs(text::table(rows).c_str(), stdout);
  return 0;
}

Result<int> cmd_rm(Context& c) {
  auto existing =
      TRY(store::Store::open_existing(TRY(c.store_path()), store::Store::Access::kWrite));
  if (!existing) return no_such_env(c.inv.args[0]);
  store::Store& st = *existing;
  auto lock = TRY(st.lock_for_writing("rm"));
  for (auto& name : c.inv.args) {
    auto env = TRY(st.catalog().find_env(name));
    if (!env) return no_such_env(name);
    stop_if_idle(st, *env);
    Fd held = TRY(store::try_lock_env(st, *env));
    if (!held.valid())
      return error(ErrorKind::kConflict, "rm " + name + ": the environment is running",
                   "end the `togo run " + name + "` sessions first");
    // An init that freed the lock may still be on its way out of the
    // env's cgroup.
    if (auto dir = sys::open_at(st.fd(), store::env_paths(env->id).dir, O_RDONLY | O_DIRECTORY))
      runtime::wait_init_gone(dir->get(), 5000);
    TRY_CTX(store::remove_env(st, *env), "rm " + name);
    if (auto s = parse_settings(env->settings);
        s && !(s->memory.empty() && s->cpus.empty() && s->pids.empty()))
      if (auto host = runtime::detect_cgroups()) runtime::remove_env_cgroups(*host, env->id);
    std::printf("%s\n", name.c_str());
  }
  return 0;
}

}  // namespace togo::cli
