#include "image/whiteout.h"

#include <gtest/gtest.h>

#include <string>

namespace togo::image {
namespace {

TEST(Whiteout, OrdinaryNames) {
  for (std::string path : {".", "a", "a/b", ".wh", "a/.wh", "x.wh.y", "a/..wh.b", ".w.h.x",
                           "wh.x", "a/.whx"}) {
    auto w = parse_whiteout(path);
    ASSERT_TRUE(w.has_value()) << path << ": " << w.error().message;
    EXPECT_EQ(w->kind, WhiteoutKind::kNone) << path;
  }
}

TEST(Whiteout, RemoveNamesTheSibling) {
  auto w = parse_whiteout("etc/.wh.passwd");
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->kind, WhiteoutKind::kRemove);
  EXPECT_EQ(w->dir, "etc");
  EXPECT_EQ(w->name, "passwd");

  w = parse_whiteout(".wh.top");
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->kind, WhiteoutKind::kRemove);
  EXPECT_EQ(w->dir, ".");
  EXPECT_EQ(w->name, "top");

  // Names that only look special after the prefix are ordinary targets.
  for (auto [path, name] : {std::pair{"a/b/.wh....", "..."}, {"a/.wh..hidden", ".hidden"},
                            {"a/.wh.x.wh.y", "x.wh.y"}, {"a/.wh. ", " "}}) {
    w = parse_whiteout(path);
    ASSERT_TRUE(w.has_value()) << path << ": " << w.error().message;
    EXPECT_EQ(w->kind, WhiteoutKind::kRemove) << path;
    EXPECT_EQ(w->name, name) << path;
  }
}

TEST(Whiteout, OpaqueMarker) {
  auto w = parse_whiteout("usr/share/.wh..wh..opq");
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->kind, WhiteoutKind::kOpaque);
  EXPECT_EQ(w->dir, "usr/share");
  EXPECT_EQ(w->name, "");

  w = parse_whiteout(".wh..wh..opq");
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->kind, WhiteoutKind::kOpaque);
  EXPECT_EQ(w->dir, ".");
}

void expect_refused(const std::string& path, const std::string& why) {
  auto w = parse_whiteout(path);
  ASSERT_FALSE(w.has_value()) << "accepted " << path;
  EXPECT_EQ(w.error().kind, ErrorKind::kBadInput) << path;
  EXPECT_EQ(w.error().message, why) << path;
}

TEST(Whiteout, RefusesNamesThatDeleteTheirDirectory) {
  expect_refused(".wh.", "whiteout names nothing");
  expect_refused("a/b/.wh.", "whiteout names nothing");
  expect_refused(".wh..", "whiteout of . or ..");
  expect_refused("a/.wh..", "whiteout of . or ..");
  expect_refused(".wh...", "whiteout of . or ..");
  expect_refused("a/b/.wh...", "whiteout of . or ..");
}

TEST(Whiteout, RefusesReservedNames) {
  for (std::string path : {".wh..wh.", "a/.wh..wh.", "a/.wh..wh..opq2", "a/.wh..wh.opq",
                           ".wh..wh..plnk", "a/.wh..wh.x", "a/.wh..wh..opq.", "a/.wh..wh..op"})
    expect_refused(path, "reserved whiteout name");
}

TEST(Whiteout, RefusesWhiteoutNamesAsDirectories) {
  for (std::string path : {".wh.a/b", "x/.wh.a/b", ".wh..wh..opq/x", "a/.wh./b", "x/.wh.a/y/z",
                           ".wh.a/.wh.b"})
    expect_refused(path, "whiteout name used as a directory");
}

TEST(Whiteout, NameOfAWhiteout) {
  EXPECT_EQ(whiteout_name("passwd"), ".wh.passwd");
  auto w = parse_whiteout("d/" + whiteout_name(".profile"));
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->name, ".profile");
}

}  // namespace
}  // namespace togo::image
