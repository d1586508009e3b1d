#include "store/layout.h"

#include <gtest/gtest.h>

namespace togo::store {
namespace {

TEST(Layout, PathsAreRelativeToTheStoreAndNamedByDigest) {
  std::string d = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(blob_path(d), "blobs/sha256/" + std::string(64, 'a'));
  EXPECT_EQ(layer_root(d), "layers/" + std::string(64, 'a') + "/root");
  EXPECT_EQ(digest_hex(d), std::string(64, 'a'));
  EXPECT_EQ(digest_hex("abc"), "abc");
  EnvPaths p = env_paths("0123456789abcdef");
  EXPECT_EQ(p.dir, "envs/0123456789abcdef");
  EXPECT_EQ(p.upper, "envs/0123456789abcdef/upper");
  EXPECT_EQ(p.lock, "envs/0123456789abcdef/lock");
}

TEST(Layout, MarkerRoundTripsAndRejectsOtherFiles) {
  EXPECT_EQ(parse_marker(marker_text(1)), 1);
  EXPECT_EQ(parse_marker(marker_text(7)), 7);
  EXPECT_EQ(parse_marker("togo-store\nformat x\n"), -1);
  EXPECT_EQ(parse_marker("something else"), -1);
  EXPECT_EQ(parse_marker("togo-store\nformat 0\n"), -1);
}

TEST(Layout, NamesAreChecked) {
  EXPECT_TRUE(valid_name("debian"));
  EXPECT_TRUE(valid_name("debian:bookworm"));
  EXPECT_TRUE(valid_name("ghcr.io/o/r:1.2"));
  EXPECT_FALSE(valid_name(""));
  EXPECT_FALSE(valid_name("-x"));
  EXPECT_FALSE(valid_name("a/../b"));
  EXPECT_FALSE(valid_name("a b"));
  EXPECT_FALSE(valid_name("x:"));
  EXPECT_TRUE(valid_env_name("dev"));
  EXPECT_TRUE(valid_env_name("dev-2.x_y"));
  EXPECT_FALSE(valid_env_name("a/b"));
  EXPECT_FALSE(valid_env_name("a:b"));
  EXPECT_FALSE(valid_env_name(std::string(64, 'a')));
  EXPECT_FALSE(valid_env_name("../x"));
}

}  // namespace
}  // namespace togo::store
