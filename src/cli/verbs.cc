#include <cstdio>
#include <string_view>
#include <utility>

#include "base/text.h"
#include "cli/commands.h"
#include "cli/settings.h"
#include "store/layout.h"

namespace togo::cli {

std::span<const VerbSpec> verbs() {
  static const VerbSpec table[] = {
      {"run", "NAME [-- CMD...]", "run a command in an environment (no CMD: a login shell)", {},
       1, 1, true,
       "Starts the environment if it is not running, or joins it if it is (same processes,\n"
       "same /tmp). With a terminal the command gets a pty. The command's exit status is\n"
       "togo's (128+N if signal N ended it). togo's own failures: 125; a command that cannot\n"
       "run: 126; not found: 127. An environment started by run stops with its last session."},
      {"exec", "NAME -- CMD...", "run a command in a running environment", {}, 1, 1, true,
       "Like run, but the environment must already be running (`togo start`)."},
      {"start", "NAME", "keep an environment running in the background", {}, 1, 1, false,
       "Its processes live until `togo stop`; run and exec join it."},
      {"stop", "NAME...", "stop running environments",
       {{"--time", "SECONDS", "grace period between SIGTERM and SIGKILL (default 10)"}}, 1, 64},
      {"ps", "[NAME]", "list running environments, or the processes of one",
       {{"--json", "", "print JSON"}}, 0, 1},
      {"logs", "NAME", "show an environment's log", {{"--follow", "", "keep printing while it runs"}},
       1, 1},
      {"create", "NAME", "create an environment from an image",
       {{"--image", "IMAGE", "the image to start from (required)"},
        {"--rootfs", "overlay|copy",
         "how the root is assembled: overlayfs over the shared image (default when the host "
         "allows it) or a private copy"},
        {"--env", "KEY=VALUE", "a variable for every command (repeatable)"},
        {"--workdir", "PATH", "where commands start (default: the user's home)"},
        {"--hostname", "NAME", "the env's host name (default: its name)"},
        {"--share", "HOST:PATH[:ro]", "show a host directory at PATH (repeatable)"},
        {"--network", "host|none|private", "the network (default: the host's)"},
        {"--port", "[IP:]HOST:ENV[/udp]", "forward a host port (private network; repeatable)"},
        {"--memory", "SIZE", "memory limit, e.g. 512m"},
        {"--cpus", "N", "CPU limit, e.g. 1.5"},
        {"--pids", "N", "limit on the number of processes"},
        {"--user", "", "run commands as you (same uid, name, home) instead of root"},
        {"--privileged", "", "no capability drop, seccomp filter or masked paths"}},
       1, 1},
      {"config", "NAME [KEY=VALUE...]", "show or change an environment's settings", {}, 1, 64,
       false,
       "KEY=VALUE sets, KEY+=VALUE adds to a list, KEY-=VALUE removes, KEY= resets.\n"
       "Changes take effect the next time the environment starts. Keys:\n"},
      {"ls", "", "list environments", {{"--json", "", "print JSON"}}},
      {"rm", "NAME...", "remove environments and everything they wrote", {}, 1, 64},
      {"image import", "PATH|-",
       "import an OCI image layout (directory or tar), a docker/podman save archive, or a "
       "root filesystem tarball (.tar, .gz, .xz, .zst, .bz2)",
       {{"--name", "N",
         "the image's name (default: the archive's tag, else the file's name without extensions)"},
        {"--ref", "NAME", "which image of an archive that holds several (a tag or ref name)"},
        {"--platform", "OS/ARCH", "which platform of a multi-arch image (default: this host's)"}},
       1, 1},
      {"image create", "debian", "build a minimal Debian image with mmdebstrap",
       {{"--suite", "S", "Debian suite (default: bookworm)"},
        {"--name", "N", "the image's name (default: debian, or debian:SUITE)"},
        {"--mirror", "URL", "the Debian archive to use (default: mmdebstrap's)"}},
       1, 1},
      {"image ls", "", "list images", {{"--json", "", "print JSON"}}, 0, 0, false,
       "SIZE is what the image's unpacked layers hold. Layers pulled and not unpacked yet\n"
       "(the first `togo create` unpacks them) count as their compressed blobs, marked:\n"
       "`27.3 MiB packed`, or `120.0 MiB + 27.3 MiB packed`. SHARED is the part that\n"
       "other images share. --json gives size, packed_size and shared_size in bytes.\n"
       "`damaged` follows the size of an image with a layer `togo fsck --repair` marked\n"
       "damaged; pulling or importing the image again replaces it."},
      {"image inspect", "NAME", "show an image's id, layers and OCI config (JSON)", {}, 1, 1},
      {"image rm", "NAME...", "remove images no environment uses",
       {{"--force", "", "remove the name even if environments use the image (they keep its "
                        "layers until removed)"}},
       1, 64},
      {"commit", "NAME IMAGE", "make an image from an environment's current files",
       {{"--message", "M", "a comment for the image's history"},
        {"--change", "KEY=VALUE",
         "set CMD, ENTRYPOINT, ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME or STOPSIGNAL in the "
         "image's config (repeatable)"},
        {"--compression", "zstd|gzip", "how the new layer is compressed (default: zstd)"}},
       2, 2, false,
       "The image is the environment's image plus one layer holding what the environment\n"
       "changed (added, changed and deleted files). An environment with a private copy\n"
       "(--rootfs copy) gives an image of one layer: the whole copy. A running environment\n"
       "is committed as it is, with a warning; `togo stop` it first for a consistent image.\n"
       "gzip layers suit Docker engines older than 23, which cannot read zstd."},
      {"image export", "IMAGE FILE|-", "write an image as an OCI layout tar or a docker archive",
       {{"--format", "oci|docker",
         "oci (default): an OCI image layout, as skopeo's oci-archive; docker: a `docker save` "
         "archive for `docker load` and `podman load`"}},
       2, 2, false,
       "A docker archive tags the image localhost/NAME:latest (a NAME without a registry gets\n"
       "localhost/, as Podman names what it builds; one without a tag gets :latest).\n"
       "Layers are exported as stored (decompressed in docker archives); every blob is\n"
       "checked against its digest as it is read. FILE is replaced only once it is whole."},
      {"image pull", "REF", "download an image from a registry (OCI distribution API v2)",
       {{"--name", "N", "the image's name (default: the reference's short form, e.g. debian:bookworm)"},
        {"--arch", "ARCH", "which architecture of a multi-arch image (default: this host's)"},
        {"--platform", "OS/ARCH[/VARIANT]", "which platform of a multi-arch image"},
        {"--creds", "USER:PASSWORD",
         "credentials for the registry (default: from $DOCKER_CONFIG/config.json or "
         "~/.docker/config.json)"},
        {"--insecure", "", "accept a registry's TLS certificate unverified, or plain HTTP"},
        {"--unpack", "", "unpack the layers now, not when `togo create` first needs them"}},
       1, 1, false,
       "REF is read as Docker reads it: debian:bookworm is docker.io/library/debian:bookworm;\n"
       "REPO@sha256:... pulls by digest. Registries on loopback addresses are spoken to over\n"
       "plain HTTP, others over TLS. Layers the store has are not downloaded again; layers\n"
       "are downloaded 3 at a time, and a pull that was interrupted resumes where it stopped\n"
       "(its partial files wait in the store's tmp/downloads/). TOGO_HTTP_TIMEOUT=SECONDS\n"
       "sets how long to wait for a registry that does not answer (default 60).\n"
       "Layers are stored as their verified blobs and unpacked (their content checked\n"
       "against the config's diff_ids) by the first `togo create` from the image; until\n"
       "then `image ls` shows their compressed size, marked `packed`. --unpack does it now,\n"
       "and then the pull fails, changing nothing, if a layer is not what the config says."},
      {"image push", "IMAGE REF", "upload an image to a registry (OCI distribution API v2)",
       {{"--creds", "USER:PASSWORD",
         "credentials for the registry (default: from $DOCKER_CONFIG/config.json or "
         "~/.docker/config.json)"},
        {"--insecure", "", "accept a registry's TLS certificate unverified, or plain HTTP"}},
       2, 2, false,
       "Sends the layers the registry lacks as they are stored (xz and bzip2 ones\n"
       "uncompressed), the config, and an OCI image manifest under REF's tag, then prints\n"
       "REF@DIGEST. TOGO_HTTP_TIMEOUT works as for image pull."},
      {"export", "NAME FILE|-", "write an environment to one file: image, writable layer, settings",
       {{"--compression", "zstd|gzip|none", "how FILE is compressed (default: zstd)"},
        {"--no-image", "", "leave the image's layers out: the importing store must have the image"}},
       2, 2, false,
       "FILE is a tar that `togo import` reads on any host: togo-export.json (name, settings),\n"
       "the image as an OCI image layout, then the env's writable layer with its owners,\n"
       "modes, times, extended attributes, hardlinks and sparse files. A running environment\n"
       "is refused (`togo stop` it first); one only lingering after its last session is\n"
       "stopped. Rootless, owners are written as the environment sees them. FILE is private\n"
       "(mode 0600) and replaced only once it is whole."},
      {"import", "FILE|- [NAME]", "recreate an environment from a `togo export` file",
       {}, 1, 2, false,
       "The environment gets the name in the file, or NAME. Its image is imported unless this\n"
       "store has it (a file made with --no-image needs it here). Rootless, files of other\n"
       "owners become yours (root inside), as with image import. Nothing changes on error."},
      {"gc", "", "remove what nothing in the store names: unused layers and blobs, leftovers"},
      {"fsck", "", "check the whole store: catalog, blobs, unpacked layers, environments",
       {{"--repair", "", "rebuild layers from their blobs, remove leftovers, mark what is lost"}},
       0, 0, false,
       "Every blob is hashed and every unpacked layer compared with what was unpacked, so it\n"
       "reads the whole store. Exit status 0: whole; 6: damage that is still there (the lines\n"
       "say which object and why). After a crash, the next command that changes the store\n"
       "rolls back or finishes what was interrupted; fsck does too."},
      {"doctor", "", "check what this host can run, what it lacks, and how to fix it",
       {{"--json", "", "print JSON: {\"checks\": [{id, group, status, found, why, fix}, ...]}"},
        {"--storage-bench", "", "also measure the store's drive (under 10 seconds)"}},
       0, 0, false,
       "One line per check, grouped (host, isolation, storage, vm, network, cross-arch):\n"
       "ok, degraded (togo works around it) or missing, what was found and, when not ok,\n"
       "why it matters and the fix. Checks that must be tried are tried (namespaces,\n"
       "overlayfs on the store's filesystem, a KVM guest), in child processes. The exit\n"
       "status is 1 only when the default mode (process isolation) cannot run here.\n"
       "Errors of other commands name the check that explains them, e.g.\n"
       "`(see: togo doctor, check isolation.userns)`."},
      {"version", "", "print togo's version and store format"},
      {"help", "[VERB]", "show help for togo or one verb", {}, 0, 2},
  };
  return table;
}

Handler handler_for(const VerbSpec& v) {
  // Looked through in order, as few as they are: no map to build at each start.
  static constexpr std::pair<std::string_view, Handler> handlers[] = {
      {"run", cmd_run},           {"create", cmd_create},
      {"exec", cmd_exec},         {"start", cmd_start},
      {"stop", cmd_stop},         {"ps", cmd_ps},
      {"logs", cmd_logs},         {"config", cmd_config},
      {"ls", cmd_ls},             {"rm", cmd_rm},
      {"image import", cmd_image_import}, {"image create", cmd_image_create},
      {"image ls", cmd_image_ls}, {"image rm", cmd_image_rm},
      {"image inspect", cmd_image_inspect},
      {"commit", cmd_commit},     {"image export", cmd_image_export},
      {"image pull", cmd_image_pull}, {"image push", cmd_image_push},
      {"export", cmd_export},     {"import", cmd_import},
      {"gc", cmd_gc},             {"fsck", cmd_fsck},
      {"doctor", cmd_doctor},
      {"version", cmd_version},   {"help", cmd_help},
  };
  for (auto& [name, handler] : handlers)
    if (name == v.name) return handler;
  return nullptr;
}

int exit_code_for(const Error& e) {
  if (e.exit_code) return e.exit_code;
  switch (e.kind) {
    case ErrorKind::kUsage: return kExitUsage;
    case ErrorKind::kNotFound: return kExitNotFound;
    case ErrorKind::kConflict: return kExitConflict;
    case ErrorKind::kBadInput: return kExitBadInput;
    case ErrorKind::kFailed: break;
  }
  return kExitFailed;
}

Result<std::string> Context::store_path() { return store::locate(inv.store); }

Result<store::Store> Context::open_store(store::Store::Access access) {
  std::string path = TRY(store_path());
  return store::Store::open(path, access);
}

void Context::notice(const std::string& text) {
  // Every line its own "togo: " line (a notice may tell several things).
  for (auto& line : text::split(text, '\n')) std::fprintf(stderr, "togo: %s\n", line.c_str());
}

Result<int> cmd_version(Context&) {
  std::printf("togo %s (store format %d)\n", TOGO_VERSION, store::kFormat);
  return 0;
}

Result<int> cmd_help(Context& c) {
  const auto& all = verbs();
  if (!c.inv.args.empty()) {
    std::string name = c.inv.args[0] + (c.inv.args.size() > 1 ? " " + c.inv.args[1] : "");
    const VerbSpec* v = find_verb(all, name);
    if (!v) return error(ErrorKind::kUsage, "help " + name + ": unknown command", "see `togo help`");
    std::printf("usage: %s\n\n%s\n", usage_line(*v).c_str(), std::string(v->summary).c_str());
    if (v->options.size() > 0) {
      std::printf("\noptions:\n");
      for (auto& o : v->options)
        std::printf("  %-22s %s\n",
                    (std::string(o.name) + (o.value_name.empty() ? "" : " " + std::string(o.value_name))).c_str(),
                    std::string(o.help).c_str());
    }
    std::string details(v->details);
    // config's keys come from the settings' own table.
    if (v->name == "config")
      for (auto& [k, h] : setting_keys()) details += "  " + k + std::string(12 - k.size(), ' ') + h + "\n";
    if (!details.empty()) std::printf("\n%s\n", details.c_str());
    return 0;
  }
  std::printf(
      "togo: Linux environments to go\n\n"
      "usage: togo [--store PATH] VERB [ARGS...]\n\nverbs:\n");
  for (auto& v : all)
    std::printf("  %-14s %s\n", std::string(v.name).c_str(), std::string(v.summary).c_str());
  std::printf(
      "\nThe store is --store, else $TOGO_STORE, else togo-store/ beside the togo binary,\n"
      "else $XDG_DATA_HOME/togo or ~/.local/share/togo.\n"
      "`togo help VERB` tells more about one verb.\n");
  return 0;
}

}  // namespace togo::cli
