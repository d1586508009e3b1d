#include "store/catalog.h"

#include <sqlite3.h>

#include "store/page_check.h"

#include <map>
#include <utility>

namespace togo::store {

namespace {

constexpr int kSchema = 5;

const char* kSchemaV1 = R"(
CREATE TABLE layers (
  digest    TEXT PRIMARY KEY,
  blob_size INTEGER NOT NULL,
  size      INTEGER NOT NULL
);
CREATE TABLE images (
  name    TEXT PRIMARY KEY,
  id      TEXT NOT NULL,
  config  TEXT NOT NULL,
  source  TEXT NOT NULL,
  created INTEGER NOT NULL
);
CREATE INDEX images_by_id ON images(id);
CREATE TABLE image_layers (
  image    TEXT NOT NULL,
  position INTEGER NOT NULL,
  layer    TEXT NOT NULL REFERENCES layers(digest),
  PRIMARY KEY (image, position)
);
CREATE TABLE envs (
  id      TEXT PRIMARY KEY,
  name    TEXT NOT NULL UNIQUE,
  image   TEXT NOT NULL,
  rootfs  TEXT NOT NULL,
  created INTEGER NOT NULL,
  settings TEXT NOT NULL DEFAULT ''
);
)";

// Schema 2: what a layer's blob is, for OCI export and for verifying it.
const char* kSchemaV2 = R"(
ALTER TABLE layers ADD COLUMN diff_id TEXT NOT NULL DEFAULT '';
ALTER TABLE layers ADD COLUMN media_type TEXT NOT NULL DEFAULT '';
)";

// Schema 3: what an unpacked layer holds (the digest of its listing, see
// tree_listing.h), and what `togo fsck --repair` found damaged and could not
// rebuild.
const char* kSchemaV3 = R"(
ALTER TABLE layers ADD COLUMN tree TEXT NOT NULL DEFAULT '';
CREATE TABLE damaged (
  object TEXT PRIMARY KEY,
  reason TEXT NOT NULL,
  found  INTEGER NOT NULL
);
)";

// Schema 4: layers stored as their blob alone until something needs their
// files (image pull); every older layer was unpacked.
const char* kSchemaV4 = R"(
ALTER TABLE layers ADD COLUMN unpacked INTEGER NOT NULL DEFAULT 1;
)";
// Schema 5 adds no table: from it on every write transaction counts itself
// in the header's application_id (Catalog::generation), which a catalog of
// schema 4 or older, written by an older togo, does not.

std::unexpected<Error> db_error(sqlite3* db, const std::string& what) {
  int code = sqlite3_errcode(db);
  Error e;
  e.kind = code == SQLITE_BUSY ? ErrorKind::kConflict : ErrorKind::kFailed;
  e.message = "catalog: " + what + ": " + sqlite3_errmsg(db);
  if (sqlite3_extended_errcode(db) == SQLITE_IOERR_DATA) {
    e.message = "catalog: " + what + ": page " + std::to_string(last_damaged_page()) +
                " of the catalog is damaged (its checksum does not match)";
    e.hint = "run `togo fsck`";
  }
  if (code == SQLITE_BUSY) e.hint = "another togo is writing the store; try again";
  // A reader's read-only map of the log index (Catalog::open) found it half
  // written by a writer that died while others kept it open; the next
  // connection that may write it rebuilds it.
  if (sqlite3_extended_errcode(db) == SQLITE_READONLY_RECOVERY) {
    e.message = "catalog: " + what + ": the index of its log was left half written";
    e.hint = "try again";
  }
  return std::unexpected(std::move(e));
}

// One prepared statement; binds by position, steps, reads columns.
// The count of write transactions, in the header's application_id.
Result<uint32_t> read_generation(sqlite3* db) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, nullptr) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    return db_error(db, "reading the catalog's generation");
  }
  auto g = static_cast<uint32_t>(sqlite3_column_int64(st, 0));
  sqlite3_finalize(st);
  return g;
}

// Counts one more write transaction; in the one that is open.
Result<void> count_change(sqlite3* db) {
  uint32_t next = (TRY(read_generation(db)) + 1) & 0x7fffffffu;
  std::string sql = "PRAGMA application_id=" + std::to_string(next == 0 ? 1 : next);
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
    return db_error(db, "counting a change");
  return {};
}

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK) st_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(st_); }
  bool ok() const { return st_ != nullptr; }
  Stmt& bind(const std::string& v) {
    sqlite3_bind_text(st_, ++n_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int64_t v) {
    sqlite3_bind_int64(st_, ++n_, v);
    return *this;
  }
  /// Returns true while there is a row.
  Result<bool> step() {
    if (!st_) return db_error(db_, "preparing a query");
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_error(db_, "query");
  }
  Result<void> run() {
    // Every change is counted (Catalog::generation): transaction() counts
    // its own; a change outside one gets a transaction of its own here.
    if (st_ && !sqlite3_stmt_readonly(st_) && sqlite3_get_autocommit(db_)) {
      if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
        return db_error(db_, "BEGIN IMMEDIATE");
      Result<bool> r = step();
      Result<void> counted = r ? count_change(db_) : Result<void>();
      const char* end = r && counted ? "COMMIT" : "ROLLBACK";
      if (sqlite3_exec(db_, end, nullptr, nullptr, nullptr) != SQLITE_OK && r && counted)
        return db_error(db_, end);
      if (!r) return std::unexpected(std::move(r.error()));
      return counted;
    }
    TRY(step());
    return {};
  }
  std::string text(int col) {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col))) : "";
  }
  int64_t integer(int col) { return sqlite3_column_int64(st_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
  int n_ = 0;
};

// `path` as an SQLite URI ("file:" with '%', '?' and '#' escaped, and an
// empty authority before an absolute path) followed by `query`.
std::string uri(const std::string& path, const std::string& query) {
  std::string u = path.starts_with("/") ? "file://" : "file:";
  for (char ch : path) {
    if (ch == '%') u += "%25";
    else if (ch == '?') u += "%3f";
    else if (ch == '#') u += "%23";
    else u += ch;
  }
  return u + "?" + query;
}

}  // namespace

Result<Catalog> Catalog::open(const std::string& path, bool create) {
  // Before SQLite starts (the VFS's registration starts it): no page cache
  // made ready in bulk for each connection. Its 20 pages, written through
  // when they are set up, cost a lookup (a `togo run`) some 30 page faults
  // for a catalog of a dozen pages, which are read one by one anyway.
  static const int configured = sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0);
  (void)configured;
  register_page_check_vfs();
  // A reader (a `togo run`) maps the log's index read-only: the first
  // connection that maps it writable truncates the -shm file and writes it
  // anew, which changes the store's filesystem (and frees blocks of it) on
  // every run. With no writer attached SQLite reads the log itself. A
  // catalog that must be migrated, or an index that cannot be read this
  // way (no -shm file yet), gets the usual connection.
  if (!create) {
    auto reader = connect(uri(path, "readonly_shm=1"), SQLITE_OPEN_URI, false);
    if (reader && reader->up_to_date().value_or(false)) return reader;
  }
  auto c = TRY(connect(path, create ? SQLITE_OPEN_CREATE : 0, create));
  TRY(c.migrate());
  // A reader that brought the schema up to date leaves the log empty too, as
  // a writer does (run_cache.h reads only a catalog whose log is empty).
  if (!create) c.checkpoint_on_close_ = true;
  return c;
}

Result<Catalog> Catalog::connect(const std::string& name, int flags, bool create) {
  sqlite3* db = nullptr;
  flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(name.c_str(), &db, flags, kPageCheckVfs) != SQLITE_OK) {
    auto e = db_error(db, "opening " + name);
    sqlite3_close(db);
    return e;
  }
  Catalog c(db);
  c.writer_ = create;
  sqlite3_busy_timeout(db, 10000);
  // Keep the -wal file between commands: deleting and recreating it on
  // every close costs more than the lookup a `togo run` needs.
  int persist = 1;
  sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  // A reader (a `togo run`) never writes the database: the checkpoint that
  // closing the last connection would do is left to the next writer.
  if (!create) sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  // WAL: readers see the last commit and never wait for a writer. The mode
  // is kept in the file, so only a writer sets it (a reader's start is on
  // the path of every `togo run`).
  // synchronous=FULL: a commit that returned is on the disk.
  if (create) {
    // A new catalog reserves room for page checksums before its first page
    // is written; an older one gets it in migrate().
    if (TRY(c.page_count()) == 0) TRY(c.reserve_checksums());
    TRY(c.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"));
  }
  return c;
}

Catalog::Catalog(Catalog&& o) noexcept
    : db_(std::exchange(o.db_, nullptr)),
      writer_(o.writer_),
      checkpoint_on_close_(o.checkpoint_on_close_) {}

Catalog::~Catalog() {
  // A writer leaves the log empty: at rest the database file alone holds
  // the catalog, so its page checksums cover everything (a stale copy of a
  // page in the log would otherwise hide damage to the file).
  if (db_ && (writer_ || checkpoint_on_close_)) {
    sqlite3_busy_timeout(db_, 500);
    sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  }
  sqlite3_close(db_);
}

Result<void> Catalog::exec(const std::string& sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    sqlite3_free(msg);
    return db_error(db_, "running " + sql.substr(0, sql.find_first_of(" ;")));
  }
  return {};
}

Result<bool> Catalog::up_to_date() {
  Stmt q(db_, "PRAGMA user_version");
  TRY(q.step());
  return q.integer(0) == kSchema && TRY(reserved_bytes()) == kPageCheckBytes;
}

Result<void> Catalog::migrate() {
  int64_t version = 0;
  {
    Stmt q(db_, "PRAGMA user_version");
    TRY(q.step());
    version = q.integer(0);
  }
  if (version > kSchema)
    return error(ErrorKind::kConflict, "catalog schema " + std::to_string(version) +
                                           " is newer than this togo understands (" +
                                           std::to_string(kSchema) + ")");
  if (version < kSchema) TRY(transaction([&]() -> Result<void> {
    if (version < 1) TRY(exec(kSchemaV1));
    if (version < 2) TRY(exec(kSchemaV2));
    if (version < 3) TRY(exec(kSchemaV3));
    if (version < 4) TRY(exec(kSchemaV4));
    // Schema 5: a first generation.
    if (version < 5) TRY(exec("PRAGMA application_id=1"));
    return exec("PRAGMA user_version=" + std::to_string(kSchema));
  }));
  // Catalogs made before page checksums are rewritten with room for them.
  if (TRY(reserved_bytes()) != kPageCheckBytes) {
    TRY(reserve_checksums());
    TRY(exec("VACUUM"));
  }
  return {};
}

Result<uint32_t> Catalog::generation() { return read_generation(db_); }

Result<void> Catalog::count_change() { return togo::store::count_change(db_); }

Result<int64_t> Catalog::page_count() {
  Stmt q(db_, "PRAGMA page_count");
  TRY(q.step());
  return q.integer(0);
}

Result<int> Catalog::reserved_bytes() {
  int n = -1;
  if (sqlite3_file_control(db_, "main", SQLITE_FCNTL_RESERVE_BYTES, &n) != SQLITE_OK)
    return db_error(db_, "reading the page layout");
  return n;
}

Result<void> Catalog::reserve_checksums() {
  int n = kPageCheckBytes;
  if (sqlite3_file_control(db_, "main", SQLITE_FCNTL_RESERVE_BYTES, &n) != SQLITE_OK)
    return db_error(db_, "reserving room for page checksums");
  return {};
}

Result<std::string> Catalog::integrity_check() {
  std::string out;
  Stmt q(db_, "PRAGMA integrity_check");
  while (TRY(q.step()))
    if (q.text(0) != "ok") out += (out.empty() ? "" : "; ") + q.text(0);
  Stmt f(db_, "PRAGMA foreign_key_check");
  while (TRY(f.step()))
    out += (out.empty() ? "" : "; ") + ("a row of " + f.text(0) + " names a missing " + f.text(2));
  return out;
}

Result<void> Catalog::checkpoint() {
  Stmt q(db_, "PRAGMA wal_checkpoint(TRUNCATE)");
  TRY(q.step());
  if (q.integer(0) != 0)
    return error(ErrorKind::kConflict, "catalog: a reader kept the log from being written back",
                 "try again when no other togo is running");
  return {};
}

Result<void> Catalog::mark_damaged(const std::string& object, const std::string& reason, int64_t now) {
  return Stmt(db_, "INSERT OR REPLACE INTO damaged (object, reason, found) VALUES (?, ?, ?)")
      .bind(object).bind(reason).bind(now).run();
}

Result<void> Catalog::clear_damaged(const std::string& object) {
  return Stmt(db_, "DELETE FROM damaged WHERE object = ?").bind(object).run();
}

Result<void> Catalog::clear_layer_damaged(const std::string& digest) {
  return Stmt(db_, "DELETE FROM damaged WHERE object IN (?, ?)").bind("blob " + digest).bind("layer " + digest).run();
}

Result<std::vector<std::pair<std::string, std::string>>> Catalog::damaged() {
  Stmt q(db_, "SELECT object, reason FROM damaged ORDER BY object");
  std::vector<std::pair<std::string, std::string>> out;
  while (TRY(q.step())) out.emplace_back(q.text(0), q.text(1));
  return out;
}

namespace {
constexpr const char* kLayerCols =
    "SELECT digest, blob_size, size, diff_id, media_type, tree, unpacked, "
    "EXISTS (SELECT 1 FROM damaged WHERE object IN ('blob ' || digest, 'layer ' || digest)) "
    "FROM layers";
LayerRecord layer_row(Stmt& q) {
  return {q.text(0), static_cast<uint64_t>(q.integer(1)), static_cast<uint64_t>(q.integer(2)),
          q.text(3), q.text(4), q.text(5), q.integer(6) != 0, q.integer(7) != 0};
}
}  // namespace

Result<std::optional<LayerRecord>> Catalog::find_layer(const std::string& digest) {
  Stmt q(db_, (std::string(kLayerCols) + " WHERE digest = ?").c_str());
  q.bind(digest);
  if (!TRY(q.step())) return std::nullopt;
  return layer_row(q);
}

Result<std::optional<LayerRecord>> Catalog::find_known_layer(const std::string& digest) {
  auto rec = TRY(find_layer(digest));
  if (rec && rec->damaged) return std::nullopt;
  return rec;
}

Result<std::vector<LayerRecord>> Catalog::layers() {
  Stmt q(db_, (std::string(kLayerCols) + " ORDER BY digest").c_str());
  std::vector<LayerRecord> out;
  while (TRY(q.step())) out.push_back(layer_row(q));
  return out;
}

Result<std::vector<LayerRecord>> Catalog::image_layers(const std::string& id) {
  Stmt q(db_, (std::string(kLayerCols) +
               " JOIN image_layers ON layer = digest WHERE image = ? ORDER BY position").c_str());
  q.bind(id);
  std::vector<LayerRecord> out;
  while (TRY(q.step())) out.push_back(layer_row(q));
  return out;
}

Result<void> Catalog::put_layer(const LayerRecord& l) {
  Stmt q(db_,
         "INSERT OR REPLACE INTO layers (digest, blob_size, size, diff_id, media_type, tree, unpacked) "
         "VALUES (?, ?, ?, ?, ?, ?, ?)");
  return q.bind(l.digest).bind(static_cast<int64_t>(l.blob_size))
      .bind(static_cast<int64_t>(l.size)).bind(l.diff_id).bind(l.media_type).bind(l.tree)
      .bind(static_cast<int64_t>(l.unpacked)).run();
}

Result<void> Catalog::delete_layer(const std::string& digest) {
  return Stmt(db_, "DELETE FROM layers WHERE digest = ?").bind(digest).run();
}

Result<std::vector<std::string>> Catalog::unused_layers() {
  Stmt q(db_,
         "SELECT digest FROM layers WHERE digest NOT IN (SELECT layer FROM image_layers)");
  std::vector<std::string> out;
  while (TRY(q.step())) out.push_back(q.text(0));
  return out;
}

namespace {
Result<std::vector<std::string>> layers_of(sqlite3* db, const std::string& id) {
  Stmt q(db, "SELECT layer FROM image_layers WHERE image = ? ORDER BY position");
  q.bind(id);
  std::vector<std::string> out;
  while (TRY(q.step())) out.push_back(q.text(0));
  return out;
}
constexpr const char* kImageCols = "SELECT id, name, config, source, created FROM images";
}  // namespace

Result<std::optional<ImageRecord>> Catalog::find_image(const std::string& name_or_id) {
  // A name first; an id names its oldest name.
  Stmt q(db_, (std::string(kImageCols) +
               " WHERE name = ?1 OR id = ?1 ORDER BY name != ?1, created, name LIMIT 1")
                  .c_str());
  q.bind(name_or_id);
  if (!TRY(q.step())) return std::nullopt;
  ImageRecord r{q.text(0), q.text(1), {}, q.text(2), q.text(3), q.integer(4)};
  r.layers = TRY(layers_of(db_, r.id));
  return r;
}

Result<std::vector<ImageRecord>> Catalog::images() {
  Stmt q(db_, (std::string(kImageCols) + " ORDER BY name").c_str());
  std::vector<ImageRecord> out;
  while (TRY(q.step())) out.push_back({q.text(0), q.text(1), {}, q.text(2), q.text(3), q.integer(4)});
  // Every layer list in one query, not one per image.
  std::map<std::string, std::vector<std::string>> layers;
  Stmt l(db_, "SELECT image, layer FROM image_layers ORDER BY image, position");
  while (TRY(l.step())) layers[l.text(0)].push_back(l.text(1));
  for (auto& r : out)
    if (auto it = layers.find(r.id); it != layers.end()) r.layers = it->second;
  return out;
}

Result<std::vector<std::string>> Catalog::image_names(const std::string& id) {
  Stmt q(db_, "SELECT name FROM images WHERE id = ? ORDER BY name");
  q.bind(id);
  std::vector<std::string> out;
  while (TRY(q.step())) out.push_back(q.text(0));
  return out;
}

Result<void> Catalog::put_image(const ImageRecord& r) {
  TRY(delete_image_name(r.name));
  TRY(Stmt(db_, "INSERT INTO images (name, id, config, source, created) VALUES (?, ?, ?, ?, ?)")
          .bind(r.name).bind(r.id).bind(r.config).bind(r.source).bind(r.created).run());
  TRY(Stmt(db_, "DELETE FROM image_layers WHERE image = ?").bind(r.id).run());
  for (size_t i = 0; i < r.layers.size(); i++)
    TRY(Stmt(db_, "INSERT INTO image_layers (image, position, layer) VALUES (?, ?, ?)")
            .bind(r.id).bind(static_cast<int64_t>(i)).bind(r.layers[i]).run());
  return {};
}

Result<void> Catalog::rename_image(const std::string& name, const std::string& new_name) {
  return Stmt(db_, "UPDATE images SET name = ? WHERE name = ?").bind(new_name).bind(name).run();
}

Result<void> Catalog::delete_image_name(const std::string& name) {
  TRY(Stmt(db_, "DELETE FROM images WHERE name = ?").bind(name).run());
  // The layer list goes with the last name of that content.
  return Stmt(db_, "DELETE FROM image_layers WHERE image NOT IN (SELECT id FROM images)").run();
}

namespace {
constexpr const char* kEnvCols = "SELECT id, name, image, rootfs, created, settings FROM envs";
}

Result<std::optional<EnvRecord>> Catalog::find_env(const std::string& name) {
  Stmt q(db_, (std::string(kEnvCols) + " WHERE name = ?").c_str());
  q.bind(name);
  if (!TRY(q.step())) return std::nullopt;
  return EnvRecord{q.text(0), q.text(1), q.text(2), q.text(3), q.integer(4), q.text(5)};
}

Result<std::vector<EnvRecord>> Catalog::envs() {
  Stmt q(db_, (std::string(kEnvCols) + " ORDER BY name").c_str());
  std::vector<EnvRecord> out;
  while (TRY(q.step()))
    out.push_back({q.text(0), q.text(1), q.text(2), q.text(3), q.integer(4), q.text(5)});
  return out;
}

Result<void> Catalog::put_env(const EnvRecord& e) {
  return Stmt(db_, "INSERT INTO envs (id, name, image, rootfs, created, settings) "
                  "VALUES (?, ?, ?, ?, ?, ?)")
      .bind(e.id).bind(e.name).bind(e.image_id).bind(e.rootfs).bind(e.created).bind(e.settings)
      .run();
}

Result<void> Catalog::set_env_settings(const std::string& id, const std::string& settings) {
  return Stmt(db_, "UPDATE envs SET settings = ? WHERE id = ?").bind(settings).bind(id).run();
}

Result<void> Catalog::delete_env(const std::string& id) {
  return Stmt(db_, "DELETE FROM envs WHERE id = ?").bind(id).run();
}

}  // namespace togo::store
