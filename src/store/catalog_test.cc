#include "store/catalog.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <optional>
#include <tuple>

#include "base/fs.h"

namespace togo::store {
namespace {

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/togo-catalog-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { (void)fs::remove_tree(AT_FDCWD, dir_); }
  std::string db() { return dir_ + "/catalog.db"; }
  std::string dir_;
};

// A catalog as togo's first schema left it, with one layer.
void write_schema_one(const std::string& path) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  const char* v1 =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE layers (digest TEXT PRIMARY KEY, blob_size INTEGER NOT NULL,"
      " size INTEGER NOT NULL);"
      "CREATE TABLE images (name TEXT PRIMARY KEY, id TEXT NOT NULL, config TEXT NOT NULL,"
      " source TEXT NOT NULL, created INTEGER NOT NULL);"
      "CREATE TABLE image_layers (image TEXT NOT NULL, position INTEGER NOT NULL,"
      " layer TEXT NOT NULL REFERENCES layers(digest), PRIMARY KEY (image, position));"
      "CREATE TABLE envs (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image TEXT NOT NULL,"
      " rootfs TEXT NOT NULL, created INTEGER NOT NULL, settings TEXT NOT NULL DEFAULT '');"
      "INSERT INTO layers VALUES ('sha256:old', 3, 4);"
      "PRAGMA user_version=1;";
  ASSERT_EQ(sqlite3_exec(raw, v1, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
}

// A store written by an older togo keeps its layers and gains the new
// columns, empty.
TEST_F(CatalogTest, SchemaOneIsUpgradedKeepingItsRows) {
  ASSERT_NO_FATAL_FAILURE(write_schema_one(db()));
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c) << c.error().message;
  auto old = c->find_layer("sha256:old");
  ASSERT_TRUE(old && *old);
  EXPECT_EQ((*old)->size, 4u);
  EXPECT_EQ((*old)->diff_id, "");
  EXPECT_TRUE((*old)->unpacked) << "every layer of an older store was unpacked";
  ASSERT_TRUE(c->put_layer({"sha256:new", 1, 2, "sha256:d", "application/vnd.oci.image.layer.v1.tar"}));
  EXPECT_EQ((*c->find_layer("sha256:new"))->diff_id, "sha256:d");
}

TEST_F(CatalogTest, AReaderThatUpgradesTheSchemaLeavesTheLogEmpty) {
  ASSERT_NO_FATAL_FAILURE(write_schema_one(db()));
  {
    auto c = Catalog::open(db(), false);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_GT(*c->generation(), 0u);
  }
  struct stat wal;
  ASSERT_EQ(::stat((db() + "-wal").c_str(), &wal), 0);
  EXPECT_EQ(wal.st_size, 0) << "the upgrade is in the database file";
}

TEST_F(CatalogTest, APackedLayerStaysPackedUntilItIsRecordedUnpacked) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c) << c.error().message;
  LayerRecord l{"sha256:p", 10, 0, "sha256:dp", "application/vnd.oci.image.layer.v1.tar+gzip", "", false};
  ASSERT_TRUE(c->put_layer(l));
  EXPECT_FALSE((*c->find_layer("sha256:p"))->unpacked);
  EXPECT_FALSE((*c->layers())[0].unpacked);
  l.unpacked = true;
  l.size = 100;
  l.tree = "sha256:t";
  ASSERT_TRUE(c->put_layer(l));
  auto got = *c->find_layer("sha256:p");
  EXPECT_TRUE(got->unpacked);
  EXPECT_EQ(got->size, 100u);
  EXPECT_EQ(got->tree, "sha256:t");
}

// A layer whose blob or tree fsck marked damaged is still a row (gc keeps
// it, fsck reports it) but no longer known to an import or a pull, whose
// content replaces it; clearing the mark makes it known again.
TEST_F(CatalogTest, ALayerMarkedDamagedIsNotKnown) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(c->put_layer({"sha256:a", 1, 2, "sha256:da", ""}));
  ASSERT_TRUE(c->put_layer({"sha256:b", 1, 2, "sha256:db", ""}));
  EXPECT_TRUE(*c->find_known_layer("sha256:a"));
  EXPECT_FALSE(*c->find_known_layer("sha256:missing"));
  for (std::string object : {"blob sha256:a", "layer sha256:a"}) {
    SCOPED_TRACE(object);
    ASSERT_TRUE(c->mark_damaged(object, "damaged: test", 1));
    EXPECT_FALSE(*c->find_known_layer("sha256:a"));
    ASSERT_TRUE(*c->find_layer("sha256:a"));
    EXPECT_TRUE((*c->find_layer("sha256:a"))->damaged);
    auto all = *c->layers();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_TRUE(all[0].damaged);
    EXPECT_FALSE(all[1].damaged) << "the mark is the layer's own";
    EXPECT_TRUE(*c->find_known_layer("sha256:b"));
    ASSERT_TRUE(c->clear_layer_damaged("sha256:a"));
    EXPECT_TRUE(*c->find_known_layer("sha256:a"));
  }
}

TEST_F(CatalogTest, ImagesLayersAndEnvsRoundTrip) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(c->put_layer({"sha256:l1", 10, 100}));
  ImageRecord img{"sha256:i1", "debian", {"sha256:l1"}, "{}", "test", 5};
  ASSERT_TRUE(c->put_image(img));
  auto found = c->find_image("debian");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->id, "sha256:i1");
  EXPECT_EQ((*found)->layers, std::vector<std::string>{"sha256:l1"});
  EXPECT_TRUE(*c->find_image("sha256:i1"));  // by id too
  ASSERT_TRUE(c->put_env({"00000000000000aa", "dev", "sha256:i1", "overlay", 6}));
  auto env = c->find_env("dev");
  ASSERT_TRUE(env && *env);
  EXPECT_EQ((*env)->rootfs, "overlay");
  EXPECT_TRUE(c->unused_layers()->empty());
}

TEST_F(CatalogTest, ListsEveryLayerAndEveryImagesLayersInOrder) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(c->put_layer({"sha256:b", 20, 200, "sha256:db", ""}));
  ASSERT_TRUE(c->put_layer({"sha256:a", 10, 100, "sha256:da", ""}));
  ASSERT_TRUE(c->put_image({"sha256:i1", "one", {"sha256:b", "sha256:a"}, "{}", "t", 1}));
  ASSERT_TRUE(c->put_image({"sha256:i2", "two", {"sha256:a"}, "{}", "t", 2}));
  ASSERT_TRUE(c->put_image({"sha256:i1", "uno", {"sha256:b", "sha256:a"}, "{}", "t", 3}));
  ASSERT_TRUE(c->put_image({"sha256:i3", "empty", {}, "{}", "t", 4}));
  auto layers = c->layers();
  ASSERT_TRUE(layers) << layers.error().message;
  ASSERT_EQ(layers->size(), 2u);
  EXPECT_EQ((*layers)[0].digest, "sha256:a");
  EXPECT_EQ((*layers)[0].blob_size, 10u);
  EXPECT_EQ((*layers)[0].size, 100u);
  EXPECT_EQ((*layers)[1].diff_id, "sha256:db");
  auto images = c->images();
  ASSERT_TRUE(images) << images.error().message;
  ASSERT_EQ(images->size(), 4u);
  std::map<std::string, std::vector<std::string>> by_name;
  for (auto& im : *images) by_name[im.name] = im.layers;
  EXPECT_EQ(by_name["one"], (std::vector<std::string>{"sha256:b", "sha256:a"}));
  EXPECT_EQ(by_name["uno"], (std::vector<std::string>{"sha256:b", "sha256:a"}));
  EXPECT_EQ(by_name["two"], std::vector<std::string>{"sha256:a"});
  EXPECT_EQ(by_name["empty"], std::vector<std::string>{});
  auto rows = c->image_layers("sha256:i1");
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].digest, "sha256:b") << "bottom first";
  EXPECT_EQ((*rows)[0].size, 200u);
  EXPECT_EQ((*rows)[1].digest, "sha256:a");
  EXPECT_EQ(c->image_layers("sha256:i3")->size(), 0u);
}

TEST_F(CatalogTest, PersistsAcrossOpens) {
  {
    auto c = Catalog::open(db(), true);
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->put_layer({"sha256:l1", 1, 2}));
  }
  auto c = Catalog::open(db(), false);
  ASSERT_TRUE(c);
  EXPECT_TRUE(*c->find_layer("sha256:l1"));
}

TEST_F(CatalogTest, EveryChangeCountsInTheGeneration) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c);
  uint32_t g0 = *c->generation();
  EXPECT_GT(g0, 0u) << "a new catalog starts counted";
  ASSERT_TRUE(c->transaction([&] { return c->put_layer({"sha256:l1", 1, 2}); }));
  EXPECT_EQ(*c->generation(), g0 + 1);
  ASSERT_TRUE(c->put_layer({"sha256:l2", 1, 2})) << "a change outside a transaction";
  EXPECT_EQ(*c->generation(), g0 + 2);
  ASSERT_TRUE(c->read([&]() -> Result<void> {
    TRY(c->find_layer("sha256:l1"));
    return {};
  }));
  EXPECT_EQ(*c->generation(), g0 + 2) << "reading counts nothing";
  auto failed = c->transaction([&]() -> Result<void> {
    TRY(c->put_layer({"sha256:l3", 1, 2}));
    return error(ErrorKind::kFailed, "no");
  });
  EXPECT_FALSE(failed);
  EXPECT_EQ(*c->generation(), g0 + 2) << "a rolled back transaction counts nothing";
}

TEST_F(CatalogTest, AFailedTransactionChangesNothing) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c);
  auto r = c->transaction([&]() -> Result<void> {
    TRY(c->put_layer({"sha256:l1", 1, 2}));
    return error("stop");
  });
  EXPECT_FALSE(r);
  EXPECT_FALSE(*c->find_layer("sha256:l1"));
}

TEST_F(CatalogTest, EnvNamesAreUnique) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->put_image({"sha256:i1", "img", {}, "{}", "", 1}));
  ASSERT_TRUE(c->put_env({"00000000000000aa", "dev", "sha256:i1", "overlay", 1}));
  EXPECT_FALSE(c->put_env({"00000000000000bb", "dev", "sha256:i1", "overlay", 1}));
}

TEST_F(CatalogTest, ANameMovesToTheNewImage) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->put_image({"sha256:i1", "img", {}, "{}", "", 1}));
  ASSERT_TRUE(c->put_image({"sha256:i2", "img", {}, "{}", "", 2}));
  EXPECT_EQ((*c->find_image("img"))->id, "sha256:i2");
  EXPECT_FALSE(*c->find_image("sha256:i1"));
}

TEST_F(CatalogTest, TwoNamesShareOneContent) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->put_layer({"sha256:l1", 1, 1}));
  ASSERT_TRUE(c->put_image({"sha256:i1", "first", {"sha256:l1"}, "{}", "", 1}));
  ASSERT_TRUE(c->put_image({"sha256:i1", "second", {"sha256:l1"}, "{}", "", 2}));
  EXPECT_EQ(c->images()->size(), 2u);
  EXPECT_EQ(*c->image_names("sha256:i1"), (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ((*c->find_image("sha256:i1"))->name, "first");
  ASSERT_TRUE(c->delete_image_name("first"));
  EXPECT_EQ((*c->find_image("second"))->layers, std::vector<std::string>{"sha256:l1"});
  EXPECT_TRUE(c->unused_layers()->empty());
  ASSERT_TRUE(c->delete_image_name("second"));
  EXPECT_EQ(*c->unused_layers(), std::vector<std::string>{"sha256:l1"});
}

TEST_F(CatalogTest, UnusedLayersAreThoseNoImageNames) {
  auto c = Catalog::open(db(), true);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->put_layer({"sha256:l1", 1, 1}));
  ASSERT_TRUE(c->put_layer({"sha256:l2", 1, 1}));
  ASSERT_TRUE(c->put_image({"sha256:i1", "img", {"sha256:l1"}, "{}", "", 1}));
  EXPECT_EQ(*c->unused_layers(), std::vector<std::string>{"sha256:l2"});
  ASSERT_TRUE(c->delete_image_name("img"));
  EXPECT_EQ(c->unused_layers()->size(), 2u);
}

TEST_F(CatalogTest, ANewerSchemaIsRefused) {
  {
    auto c = Catalog::open(db(), true);
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->exec("PRAGMA user_version=99"));
  }
  auto c = Catalog::open(db(), false);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ErrorKind::kConflict);
  EXPECT_NE(c.error().message.find("newer"), std::string::npos);
}

// A reader maps the log's index read-only: it writes none of the catalog's
// files (the first writable connection would truncate and rewrite -shm).
TEST_F(CatalogTest, AReaderChangesNoFileOfTheCatalog) {
  {
    auto c = Catalog::open(db(), true);
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->put_layer({"sha256:l1", 1, 2}));
  }
  auto stat_of = [](const std::string& path) {
    struct stat st = {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return std::make_tuple(st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  };
  auto shm = stat_of(db() + "-shm"), wal = stat_of(db() + "-wal"), main = stat_of(db());
  {
    auto r = Catalog::open(db(), false);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r->find_layer("sha256:l1"));
  }
  EXPECT_EQ(stat_of(db() + "-shm"), shm);
  EXPECT_EQ(stat_of(db() + "-wal"), wal);
  EXPECT_EQ(stat_of(db()), main);
}

// A writer in another process, forked before this one opens the catalog
// (SQLite's state does not cross a fork). Each step() has it run the next
// of its steps, the first on a connection it then keeps open, and returns
// once that is done; finish() lets it close and returns true if every step
// worked.
class OtherWriter {
 public:
  OtherWriter(const std::string& db, std::vector<std::function<Result<void>(Catalog&)>> steps) {
    int to[2], from[2];
    if (::pipe(to) < 0 || ::pipe(from) < 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(to[1]);
      ::close(from[0]);
      std::optional<Catalog> w;
      char go;
      for (auto& step : steps) {
        if (::read(to[0], &go, 1) != 1) ::_exit(1);
        if (!w) {
          auto opened = Catalog::open(db, true);
          if (!opened) ::_exit(1);
          w.emplace(std::move(*opened));
        }
        if (!step(*w) || ::write(from[1], "1", 1) != 1) ::_exit(1);
      }
      ::_exit(::read(to[0], &go, 1) == 0 ? 0 : 1);
    }
    ::close(to[0]);
    ::close(from[1]);
    to_ = to[1];
    from_ = from[0];
  }
  bool step() {
    char done;
    return ::write(to_, "g", 1) == 1 && ::read(from_, &done, 1) == 1;
  }
  bool finish() {
    ::close(to_);
    ::close(from_);
    int status = 0;
    return pid_ > 0 && ::waitpid(pid_, &status, 0) == pid_ && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

// Readers and a writer (another process) at once: a reader sees every
// commit made before each of its queries, whether the writer came before it
// or after.
TEST_F(CatalogTest, AReaderSeesTheCommitsOfAWriterBesideIt) {
  { ASSERT_TRUE(Catalog::open(db(), true)); }
  OtherWriter w(db(), {[](Catalog& c) { return c.put_layer({"sha256:l1", 1, 2}); },
                       [](Catalog& c) { return c.put_layer({"sha256:l2", 1, 2}); }});
  auto early = Catalog::open(db(), false);
  ASSERT_TRUE(early) << early.error().message;
  EXPECT_FALSE(*early->find_layer("sha256:l1"));
  ASSERT_TRUE(w.step());
  EXPECT_TRUE(*early->find_layer("sha256:l1"));
  auto late = Catalog::open(db(), false);
  ASSERT_TRUE(late) << late.error().message;
  EXPECT_TRUE(*late->find_layer("sha256:l1"));
  ASSERT_TRUE(w.step());
  EXPECT_TRUE(*late->find_layer("sha256:l2"));
  EXPECT_TRUE(*early->find_layer("sha256:l2"));
  EXPECT_TRUE(w.finish());
}

// A writer that died while writing the log index's header leaves it half
// written. A reader cannot repair it through its read-only map: one that
// opens the catalog then gets the usual connection, which does.
TEST_F(CatalogTest, AReaderOpeningOnAHalfWrittenIndexReadsIt) {
  { ASSERT_TRUE(Catalog::open(db(), true)); }
  // The writer holds the index open while the reader opens.
  OtherWriter w(db(), {[](Catalog& c) { return c.put_layer({"sha256:l1", 1, 2}); }});
  ASSERT_TRUE(w.step());
  // The header is kept twice (48 bytes each); copies that differ are a
  // write that did not finish.
  int fd = ::open((db() + "-shm").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const char junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(::pwrite(fd, junk, sizeof junk, 8), 8);
  ::close(fd);
  auto r = Catalog::open(db(), false);
  ASSERT_TRUE(r) << r.error().message;
  auto found = r->find_layer("sha256:l1");
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_TRUE(*found);
  EXPECT_TRUE(w.finish());
}

// The catalog in a directory whose name SQLite would read as part of a URI.
TEST_F(CatalogTest, AReaderOpensAPathWithURICharacters) {
  std::string odd = dir_ + "/a?b#c%d";
  ASSERT_EQ(::mkdir(odd.c_str(), 0755), 0);
  {
    auto c = Catalog::open(odd + "/catalog.db", true);
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(c->put_layer({"sha256:l1", 1, 2}));
  }
  auto r = Catalog::open(odd + "/catalog.db", false);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(*r->find_layer("sha256:l1"));
  struct stat st;
  EXPECT_NE(::stat((dir_ + "/a").c_str(), &st), 0) << "a file was made at the URI's path";
}

// A reader of a catalog an older togo wrote brings it up to date, as a
// writer does.
TEST_F(CatalogTest, AReaderOfAnOlderSchemaMigratesIt) {
  ASSERT_NO_FATAL_FAILURE(write_schema_one(db()));
  auto r = Catalog::open(db(), false);
  ASSERT_TRUE(r) << r.error().message;
  auto old = r->find_layer("sha256:old");
  ASSERT_TRUE(old && *old) << (old ? "missing" : old.error().message);
  EXPECT_EQ((*old)->tree, "");
  EXPECT_TRUE(r->damaged()) << "schema 3's table is there";
}

}  // namespace
}  // namespace togo::store
