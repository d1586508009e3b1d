#include "store/catalog.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <stdlib.h>

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

}  // namespace
}  // namespace togo::store
