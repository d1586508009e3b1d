// The catalog: what the store holds, in SQLite (WAL mode, so readers never
// wait for a writer). It names only data that is already durable on disk.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

struct sqlite3;

namespace togo::store {

struct LayerRecord {
  std::string digest;   // "sha256:<hex>" of the blob the layer was unpacked from
  uint64_t blob_size = 0;
  uint64_t size = 0;    // bytes of regular files once unpacked (0 while packed)
  std::string diff_id;  // "sha256:<hex>" of the uncompressed tar (OCI's diff_id)
  std::string media_type;  // the OCI layer media type that says how the blob is compressed
  std::string tree;     // "sha256:<hex>" of the unpacked tree's listing ("" if not recorded)
  /// False while only the blob is stored (a pulled layer no command has
  /// needed the files of yet): then there is no tree, and diff_id is what
  /// the image config claims, checked when the layer is unpacked.
  bool unpacked = true;
  /// True if `togo fsck --repair` marked the layer's blob or tree damaged
  /// (the `damaged` table; read, never written, through this record).
  bool damaged = false;
};

/// One name of an image. Names are unique; several names may share the same
/// content (id), which is then stored once.
struct ImageRecord {
  std::string id;       // "sha256:<hex>" of its config (schema 1 imports: over its layers)
  std::string name;
  std::vector<std::string> layers;  // layer digests, bottom first
  std::string config;   // OCI image config JSON ("{}" when the source had none)
  std::string source;   // where it came from, for people
  int64_t created = 0;
};

struct EnvRecord {
  std::string id;       // 16 hex digits; names the env's directory
  std::string name;
  std::string image_id;
  std::string rootfs;   // "overlay" or "copy"
  int64_t created = 0;
  std::string settings; // KEY=VALUE lines (see cli/settings.h)
};

class Catalog {
 public:
  /// Opens (creating if `create`) the catalog file and brings its schema up
  /// to date. A schema newer than this togo knows is refused. Without
  /// `create` the connection only reads, and changes none of the catalog's
  /// files; one process must not write through another connection to the
  /// same catalog while it has it open (Store::lock_for_writing reopens).
  static Result<Catalog> open(const std::string& path, bool create);
  Catalog(Catalog&& o) noexcept;
  Catalog& operator=(Catalog&&) = delete;
  ~Catalog();

  /// Runs `body` in one transaction (BEGIN IMMEDIATE .. COMMIT); rolls back
  /// if it fails. Every change to the catalog is made in one: outside, a
  /// change is refused. Each counts itself in generation().
  template <typename F>
  Result<void> transaction(F&& body) {
    TRY(exec("BEGIN IMMEDIATE"));
    Result<void> r = body();
    if (r) r = count_change();
    if (!r) {
      (void)exec("ROLLBACK");
      return r;
    }
    return exec("COMMIT");
  }

  /// Runs `body` in one read transaction: its queries see one state of the
  /// catalog, found once (a reader's every query otherwise finds it anew).
  template <typename F>
  Result<void> read(F&& body) {
    TRY(exec("BEGIN"));
    Result<void> r = body();
    (void)exec(r ? "COMMIT" : "ROLLBACK");
    return r;
  }

  /// How many write transactions the catalog has seen (modulo 2^31): kept
  /// in the SQLite header's application_id, so a reader can compare it
  /// without opening the catalog (store/run_cache.h).
  Result<uint32_t> generation();

  Result<std::optional<LayerRecord>> find_layer(const std::string& digest);
  /// The layer `digest` as an import or a pull may reuse it: nullopt if the
  /// store lacks it or `togo fsck` marked it damaged, whose content, brought
  /// again, replaces it (the commit clears the mark: clear_layer_damaged).
  Result<std::optional<LayerRecord>> find_known_layer(const std::string& digest);
  Result<void> put_layer(const LayerRecord& layer);
  Result<void> delete_layer(const std::string& digest);
  /// Every stored layer, by digest.
  Result<std::vector<LayerRecord>> layers();
  /// The layer rows of the image `id`'s layers, bottom first, in one query
  /// (a layer the image names twice comes twice; one without a row, never).
  Result<std::vector<LayerRecord>> image_layers(const std::string& id);
  /// Layers no image names.
  Result<std::vector<std::string>> unused_layers();

  /// The image called `name_or_id`, or else one with that id.
  Result<std::optional<ImageRecord>> find_image(const std::string& name_or_id);
  Result<std::vector<ImageRecord>> images();
  /// Every name the content `id` has.
  Result<std::vector<std::string>> image_names(const std::string& id);
  /// Inserts, or replaces what the name pointed to.
  Result<void> put_image(const ImageRecord& image);
  Result<void> rename_image(const std::string& name, const std::string& new_name);
  /// Removes one name; the content's layer list goes with its last name.
  Result<void> delete_image_name(const std::string& name);

  Result<std::optional<EnvRecord>> find_env(const std::string& name);
  Result<std::vector<EnvRecord>> envs();
  Result<void> put_env(const EnvRecord& env);
  Result<void> set_env_settings(const std::string& id, const std::string& settings);
  Result<void> delete_env(const std::string& id);

  Result<void> exec(const std::string& sql);

  /// True for a writer's connection (open with `create`): a reader's cannot
  /// write (see open) and leaves the log as it is when closed.
  bool writer() const { return writer_; }

  /// Problems SQLite finds in the catalog's structure and references, in
  /// words; empty when there are none.
  Result<std::string> integrity_check();
  /// Writes the log back into the database file and empties it, so the
  /// file alone holds every commit (fsck checks the file page by page).
  Result<void> checkpoint();

  /// Objects `togo fsck --repair` found damaged and could not rebuild
  /// ("layer sha256:...", "blob sha256:..."), with why.
  Result<void> mark_damaged(const std::string& object, const std::string& reason, int64_t now);
  Result<void> clear_damaged(const std::string& object);
  Result<std::vector<std::pair<std::string, std::string>>> damaged();
  /// Clears the marks of the layer `digest` (its blob and tree were replaced).
  Result<void> clear_layer_damaged(const std::string& digest);

 private:
  explicit Catalog(sqlite3* db) : db_(db) {}
  /// Opens `name` (a path, or a URI with SQLITE_OPEN_URI in `flags`).
  static Result<Catalog> connect(const std::string& name, int flags, bool create);
  /// True if the schema and the page layout are this togo's.
  Result<bool> up_to_date();
  Result<void> count_change();
  Result<void> migrate();
  Result<int64_t> page_count();
  Result<int> reserved_bytes();
  Result<void> reserve_checksums();
  sqlite3* db_;
  bool writer_ = false;
  bool checkpoint_on_close_ = false;  // a reader that migrated the schema
};

}  // namespace togo::store
