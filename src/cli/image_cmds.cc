// togo image import | create | ls | rm
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <set>

#include "base/fs.h"
#include "base/sys.h"
#include "base/text.h"
#include "cli/commands.h"
#include "image/archive_import.h"
#include "image/gc.h"
#include "image/import.h"
#include "store/layout.h"

namespace togo::cli {

namespace {

// "rootfs.tar.gz" -> "rootfs"
std::string name_from_path(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  std::string base = p.substr(p.rfind('/') + 1);
  for (std::string_view ext : {".gz", ".xz", ".zst", ".bz2", ".tgz", ".txz", ".tar"})
    while (base.size() > ext.size() && base.ends_with(ext)) base.resize(base.size() - ext.size());
  return base;
}

void print_imported(const store::ImageRecord& img) {
  std::printf("%s %s\n", img.name.c_str(), img.id.substr(7, 12).c_str());
}

// What `image ls` shows of each image's size: the bytes of its unpacked
// layers, the compressed bytes of those still packed (pulled, not yet
// unpacked: their unpacked size is not known), and the part of both that
// layers of other images share.
struct Sizes {
  uint64_t size = 0, packed = 0, shared = 0;
  bool damaged = false;  // a layer `togo fsck --repair` marked damaged
  std::string text() const {
    if (packed == 0) return text::human_size(size);
    return (size ? text::human_size(size) + " + " : "") + text::human_size(packed) + " packed";
  }
};

// Two catalog queries in all, whatever the number of images and layers.
Result<std::map<std::string, Sizes>> image_sizes(store::Store& st,
                                                 const std::vector<store::ImageRecord>& images) {
  std::map<std::string, store::LayerRecord> layers;
  for (auto& l : TRY(st.catalog().layers())) layers[l.digest] = l;
  std::map<std::string, std::set<std::string>> users;  // layer -> ids of the images using it
  for (auto& im : images)
    for (auto& l : im.layers) users[l].insert(im.id);
  std::map<std::string, Sizes> out;  // by image id: names of one content share its sizes
  for (auto& im : images) {
    if (out.count(im.id)) continue;
    Sizes& s = out[im.id];
    for (auto& l : im.layers) {
      auto it = layers.find(l);
      if (it == layers.end()) continue;
      s.damaged = s.damaged || it->second.damaged;
      uint64_t bytes = it->second.unpacked ? it->second.size : it->second.blob_size;
      (it->second.unpacked ? s.size : s.packed) += bytes;
      if (users[l].size() > 1) s.shared += bytes;
    }
  }
  return out;
}

}  // namespace

Result<int> cmd_image_import(Context& c) {
  const std::string& path = c.inv.args[0];
  Fd file;
  int in = STDIN_FILENO;
  if (path != "-") {
    // A directory (an OCI layout), a file, or a pipe such as <(cmd): what
    // is opened here is what is read, never reopened by name.
    file = TRY_CTX(sys::open_at(AT_FDCWD, path, O_RDONLY), "image import");
    in = file.get();
  }
  auto st = TRY(c.open_store(store::Store::Access::kWrite));
  image::ArchiveImportOptions opts;
  opts.base = {c.inv.value("--name").value_or(""), path == "-" ? "stdin" : fs::absolute(path),
               Context::notice, {}, {}};
  opts.ref = c.inv.value("--ref").value_or("");
  opts.platform = c.inv.value("--platform").value_or("");
  opts.fallback_name = path == "-" ? "" : name_from_path(path);
  auto img = TRY_CTX(image::import_any(st, path, in, opts), "image import");
  print_imported(img);
  return 0;
}

Result<int> cmd_image_create(Context& c) {
  if (c.inv.args[0] != "debian")
    return error(ErrorKind::kUsage, "image create " + c.inv.args[0] + ": unknown recipe",
                 "the recipe available is `debian`");
  std::string suite = c.inv.value("--suite").value_or("bookworm");
  if (!store::valid_env_name(suite))
    return error(ErrorKind::kUsage, "image create debian: --suite " + suite + ": not a suite name");
  std::string name = c.inv.value("--name").value_or(suite == "bookworm" ? "debian" : "debian:" + suite);
  std::vector<std::string> argv = {"mmdebstrap", "--variant=minbase", "--quiet", suite, "-"};
  if (auto mirror = c.inv.value("--mirror")) argv.push_back(*mirror);
  auto st = TRY(c.open_store(store::Store::Access::kWrite));

  // Everything the child needs is made before fork: between fork and exec it
  // neither allocates nor prints; a failed exec sends its errno back.
  std::vector<char*> a;
  for (auto& s : argv) a.push_back(s.data());
  a.push_back(nullptr);
  int fds[2];
  TRY(sys::pipe(fds));
  Fd out_r(fds[0]), out_w(fds[1]);
  TRY(sys::pipe(fds));
  Fd exec_r(fds[0]), exec_w(fds[1]);
  Context::notice("building Debian " + suite + " with mmdebstrap (this takes a while)");
  pid_t pid = ::fork();
  if (pid < 0) return sys_error(errno, "fork");
  if (pid == 0) {
    ::dup2(out_w.get(), STDOUT_FILENO);
    ::execvp(a[0], a.data());
    int err = errno;
    (void)!::write(exec_w.get(), &err, sizeof err);
    ::_exit(127);
  }
  out_w.reset();
  exec_w.reset();
  int exec_err = 0;
  ssize_t got;
  do got = ::read(exec_r.get(), &exec_err, sizeof exec_err);
  while (got < 0 && errno == EINTR);
  if (got == sizeof exec_err) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return error(ErrorKind::kFailed,
                 "image create debian: running mmdebstrap: " + std::string(strerror(exec_err)),
                 exec_err == ENOENT ? "install it with `apt-get install mmdebstrap`" : "");
  }
  // mmdebstrap's status decides before the image is committed.
  auto wait_mmdebstrap = [&]() -> Result<void> {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
    return error(ErrorKind::kFailed,
                 "mmdebstrap failed (" +
                     (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                        : std::string("killed by a signal")) + ")",
                 ::geteuid() != 0 ? "rootless mmdebstrap needs subordinate ids in /etc/subuid and "
                                    "/etc/subgid; or run as root"
                                  : "its messages above say why");
  };
  image::ImportOptions opts{name, "mmdebstrap " + suite, Context::notice, wait_mmdebstrap};
  auto img = image::import_rootfs(st, out_r.get(), opts);
  out_r.reset();
  if (pid > 0) {
    ::kill(pid, SIGTERM);
    (void)wait_mmdebstrap();
  }
  if (!img) return std::unexpected(std::move(img.error()).context("image create debian"));
  print_imported(*img);
  return 0;
}

Result<int> cmd_image_ls(Context& c) {
  auto st = TRY(store::Store::open_existing(TRY(c.store_path()), store::Store::Access::kRead));
  std::vector<store::ImageRecord> images;
  std::map<std::string, Sizes> sizes;
  if (st) {
    images = TRY(st->catalog().images());
    sizes = TRY(image_sizes(*st, images));
  }
  if (c.json()) {
    std::vector<std::string> items;
    for (auto& im : images)
      items.push_back(text::JsonObject()
                          .add("name", im.name)
                          .add("id", im.id)
                          .add("size", sizes[im.id].size)
                          .add("packed_size", sizes[im.id].packed)
                          .add("shared_size", sizes[im.id].shared)
                          .add("created", im.created)
                          .add_raw("layers", text::json_string_array(im.layers))
                          .add("source", im.source)
                          .add_raw("damaged", sizes[im.id].damaged ? "true" : "false")
                          .str());
    std::printf("%s\n", text::json_array(items).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "ID", "SIZE", "SHARED", "CREATED", "SOURCE"}};
  int64_t now = ::time(nullptr);
  for (auto& im : images)
    rows.push_back({im.name == im.id ? "<none>" : im.name, im.id.substr(7, 12),
                    sizes[im.id].text() + (sizes[im.id].damaged ? " damaged" : ""),
                    text::human_size(sizes[im.id].shared),
                    text::ago(im.created, now),
                    im.source});
  std::fputs(text::table(rows).c_str(), stdout);
  return 0;
}

Result<int> cmd_image_inspect(Context& c) {
  const std::string& name = c.inv.args[0];
  auto st = TRY(store::Store::open_existing(TRY(c.store_path()), store::Store::Access::kRead));
  std::optional<store::ImageRecord> img;
  if (st) img = TRY(st->catalog().find_image(name));
  if (!img)
    return error(ErrorKind::kNotFound, "image " + name + ": no such image",
                 "`togo image ls` lists the images in this store");
  // The config is printed as stored, byte for byte: its digest is the id.
  std::map<std::string, store::LayerRecord> rows;  // one query, whatever the number of layers
  for (auto& l : TRY(st->catalog().image_layers(img->id))) rows.emplace(l.digest, l);
  std::vector<std::string> layers;
  for (auto& l : img->layers) {
    text::JsonObject o;
    o.add("digest", l);
    if (auto it = rows.find(l); it != rows.end()) {
      const store::LayerRecord& rec = it->second;
      o.add("diff_id", rec.diff_id).add("media_type", rec.media_type)
          .add("size", rec.blob_size).add_raw("unpacked", rec.unpacked ? "true" : "false");
      if (rec.unpacked) o.add("unpacked_size", rec.size);
    }
    layers.push_back(o.str());
  }
  std::printf("%s\n", text::JsonObject()
                          .add("name", img->name)
                          .add("id", img->id)
                          .add("source", img->source)
                          .add("created", img->created)
                          .add_raw("layers", text::json_array(layers))
                          .add_raw("config", img->config.empty() ? "{}" : img->config)
                          .str()
                          .c_str());
  return 0;
}

Result<int> cmd_gc(Context& c) {
  auto existing =
      TRY(store::Store::open_existing(TRY(c.store_path()), store::Store::Access::kWrite));
  if (!existing) {
    std::printf("nothing to remove (no store yet)\n");
    return 0;
  }
  auto report = TRY_CTX(image::collect_garbage(*existing), "gc");
  for (auto& line : report.removed) std::printf("removed %s\n", line.c_str());
  std::printf("%zu removed, %s freed\n", report.removed.size(),
              text::human_size(report.bytes).c_str());
  return 0;
}

Result<int> cmd_image_rm(Context& c) {
  auto existing =
      TRY(store::Store::open_existing(TRY(c.store_path()), store::Store::Access::kWrite));
  if (!existing)
    return error(ErrorKind::kNotFound, "image " + c.inv.args[0] + ": no such image (the store is empty)");
  store::Store& st = *existing;
  for (auto& name : c.inv.args) {
    TRY(image::remove_image(st, name, c.inv.flag("--force"), Context::notice));
    std::printf("%s\n", name.c_str());
  }
  return 0;
}

}  // namespace togo::cli
