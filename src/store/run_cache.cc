#include "store/run_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/fs.h"
#include "base/json.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "store/layout.h"

namespace togo::store {

namespace {

constexpr std::string_view kMagic = "togo-run-record 1\n";

// The SQLite header's application_id: 4 bytes, big-endian, at offset 68.
std::optional<uint32_t> header_generation(int db) {
  unsigned char h[100];
  if (::pread(db, h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return std::nullopt;
  if (std::memcmp(h, "SQLite format 3", 16) != 0) return std::nullopt;
  return (uint32_t{h[68]} << 24) | (uint32_t{h[69]} << 16) | (uint32_t{h[70]} << 8) | h[71];
}

json::Value strings(const std::vector<std::string>& v) {
  json::Value a = json::Value::array();
  for (const auto& s : v) a.push(s);
  return a;
}

std::string body_of(const RunRecord& r) {
  json::Value env = json::Value::object();
  env.set("id", r.env.id).set("name", r.env.name).set("image_id", r.env.image_id);
  env.set("rootfs", r.env.rootfs).set("created", r.env.created).set("settings", r.env.settings);
  json::Value img = json::Value::object();
  img.set("id", r.image.id).set("name", r.image.name).set("layers", strings(r.image.layers));
  img.set("config", r.image.config).set("source", r.image.source);
  img.set("created", r.image.created);
  json::Value doc = json::Value::object();
  doc.set("env", std::move(env)).set("image", std::move(img));
  return json::dump(doc);
}

std::optional<RunRecord> parse_body(std::string_view body) {
  auto doc = json::parse(body);
  if (!doc) return std::nullopt;
  const json::Value* env = doc->find("env");
  const json::Value* img = doc->find("image");
  if (!env || !img || !env->is_object() || !img->is_object()) return std::nullopt;
  auto text = [](const json::Value& o, const char* key) {
    const json::Value* v = o.find(key);
    return v ? v->as_string() : std::string();
  };
  auto number = [](const json::Value& o, const char* key) {
    const json::Value* v = o.find(key);
    return v ? v->as_int() : int64_t{0};
  };
  RunRecord r;
  r.env = {text(*env, "id"), text(*env, "name"), text(*env, "image_id"), text(*env, "rootfs"),
           number(*env, "created"), text(*env, "settings")};
  r.image.id = text(*img, "id");
  r.image.name = text(*img, "name");
  if (const json::Value* layers = img->find("layers"))
    for (const auto& l : layers->items()) r.image.layers.push_back(l.as_string());
  r.image.config = text(*img, "config");
  r.image.source = text(*img, "source");
  r.image.created = number(*img, "created");
  return r;
}

}  // namespace

std::optional<uint32_t> settled_generation(int store_fd) {
  Fd db(::openat(store_fd, kCatalog, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!db.valid()) return std::nullopt;
  // Read twice around the look at the log: a commit that was checkpointed
  // (and its log emptied) between them shows as a changed generation.
  auto before = header_generation(db.get());
  if (!before) return std::nullopt;
  struct stat wal;
  std::string wal_name = std::string(kCatalog) + "-wal";
  if (::fstatat(store_fd, wal_name.c_str(), &wal, AT_SYMLINK_NOFOLLOW) == 0) {
    if (wal.st_size != 0) return std::nullopt;
  } else if (errno != ENOENT) {
    return std::nullopt;
  }
  if (header_generation(db.get()) != before) return std::nullopt;
  return before;
}

std::optional<RunRecord> read_run_record(int store_fd, const std::string& name) {
  auto generation = settled_generation(store_fd);
  if (!generation) return std::nullopt;
  auto text = fs::read_file(store_fd, std::string(kRunCache) + "/" + name);
  if (!text || !text->starts_with(kMagic)) return std::nullopt;
  // "togo-run-record 1\n<generation> <sha256 of the rest>\n<JSON>"
  size_t eol = text->find('\n', kMagic.size());
  if (eol == std::string::npos) return std::nullopt;
  std::string line = text->substr(kMagic.size(), eol - kMagic.size());
  size_t space = line.find(' ');
  if (space == std::string::npos || line.substr(0, space) != std::to_string(*generation))
    return std::nullopt;
  std::string_view body = std::string_view(*text).substr(eol + 1);
  if (line.substr(space + 1) != Sha256::digest_of(body)) return std::nullopt;
  auto r = parse_body(body);
  if (!r || r->env.name != name) return std::nullopt;
  return r;
}

void write_run_record(int store_fd, uint32_t generation, const RunRecord& r) {
  if (!valid_env_name(r.env.name)) return;
  for (const char* dir : {"cache", kRunCache})
    if (::mkdirat(store_fd, dir, 0755) < 0 && errno != EEXIST) return;
  std::string body = body_of(r);
  std::string text = std::string(kMagic) + std::to_string(generation) + " " +
                     Sha256::digest_of(body) + "\n" + body;
  std::string dir = kRunCache;
  std::string tmp = dir + "/" + fs::temp_name(".new-");
  Fd fd(::openat(store_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 0644));
  if (!fd.valid()) return;
  bool written = static_cast<bool>(sys::write_all(fd.get(), text, tmp));
  fd.reset();
  if (!written || ::renameat(store_fd, tmp.c_str(), store_fd, (dir + "/" + r.env.name).c_str()) < 0)
    ::unlinkat(store_fd, tmp.c_str(), 0);
}

}  // namespace togo::store
