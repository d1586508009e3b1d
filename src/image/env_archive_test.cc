#include "image/env_archive.h"

#include <gtest/gtest.h>

namespace togo::image {
namespace {

const char* kId = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

ExportHeader sample() {
  ExportHeader h;
  h.name = "dev";
  h.rootfs = "overlay";
  h.settings = {"env=A=1", "network=private", "port=8080:80"};
  h.image_name = "debian:bookworm";
  h.image_id = kId;
  h.image_included = false;
  h.created = 1700000000;
  h.writer = "togo 0.1.0";
  return h;
}

TEST(EnvArchiveHeader, RoundTrips) {
  ExportHeader h = sample();
  auto back = parse_header(header_json(h));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->name, h.name);
  EXPECT_EQ(back->rootfs, h.rootfs);
  EXPECT_EQ(back->settings, h.settings);
  EXPECT_EQ(back->image_name, h.image_name);
  EXPECT_EQ(back->image_id, h.image_id);
  EXPECT_FALSE(back->image_included);
  EXPECT_EQ(back->created, h.created);
  EXPECT_EQ(back->writer, h.writer);
}

TEST(EnvArchiveHeader, AnImageKnownOnlyByItsId) {
  ExportHeader h = sample();
  h.image_name.clear();
  auto back = parse_header(header_json(h));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->image_name, "");
}

struct Bad {
  const char* text;
  const char* needle;
};

TEST(EnvArchiveHeader, RefusesWhatItCannotUse) {
  const std::string id = kId;
  const std::string image = ",\"image\":{\"name\":\"x\",\"id\":\"" + id + "\"}";
  const std::string ok =
      "{\"format\":\"togo-env-export\",\"version\":1,\"name\":\"dev\","
      "\"rootfs\":\"overlay\",\"settings\":[]" +
      image + "}";
  ASSERT_TRUE(parse_header(ok)) << parse_header(ok).error().message;
  std::vector<std::pair<std::string, std::string>> bad = {
      {"[]", "expected an object"},
      {"{\"format\":\"oci\",\"version\":1}", "not a togo environment export"},
      {"{\"format\":\"togo-env-export\",\"version\":2,\"name\":\"dev\"}", "version 2"},
      {"{\"format\":\"togo-env-export\",\"version\":0,\"name\":\"dev\"}", "version 0"},
      {"{\"format\":\"togo-env-export\",\"version\":1,\"name\":\"../x\",\"rootfs\":\"overlay\","
       "\"settings\":[]" +
           image + "}",
       "name"},
      {"{\"format\":\"togo-env-export\",\"version\":1,\"name\":\"dev\",\"rootfs\":\"vm\","
       "\"settings\":[]" +
           image + "}",
       "rootfs"},
      {"{\"format\":\"togo-env-export\",\"version\":1,\"name\":\"dev\",\"rootfs\":\"copy\","
       "\"settings\":[\"a=1\\nb=2\"]" +
           image + "}",
       "line break"},
      {"{\"format\":\"togo-env-export\",\"version\":1,\"name\":\"dev\",\"rootfs\":\"copy\","
       "\"settings\":[],\"image\":{\"id\":\"sha256:../../x\"}}",
       "sha256"},
      {"{\"format\":\"togo-env-export\",\"version\":1,\"name\":\"dev\",\"rootfs\":\"copy\","
       "\"settings\":[],\"image\":{\"name\":\"a/../b\",\"id\":\"" +
           id + "\"}}",
       "image name"},
      {ok.substr(0, ok.size() - 1), "invalid JSON"},
  };
  for (auto& [text, needle] : bad) {
    auto r = parse_header(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().kind, ErrorKind::kBadInput) << text;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  }
  auto newer = parse_header("{\"format\":\"togo-env-export\",\"version\":2}");
  ASSERT_FALSE(newer);
  EXPECT_NE(newer.error().hint.find("newer togo"), std::string::npos);
}

TEST(EnvArchiveHeader, SettingsLines) {
  EXPECT_EQ(settings_lines("a=1\nb=2\n"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_EQ(settings_lines("a=1\n\nb=2"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_EQ(settings_lines(""), std::vector<std::string>{});
  EXPECT_EQ(settings_text({"a=1", "b=2"}), "a=1\nb=2\n");
  EXPECT_EQ(settings_text({}), "");
}

TEST(EnvArchiveHeader, Compression) {
  EXPECT_EQ(*parse_export_compression("zstd"), ExportCompression::kZstd);
  EXPECT_EQ(*parse_export_compression("gzip"), ExportCompression::kGzip);
  EXPECT_EQ(*parse_export_compression("none"), ExportCompression::kNone);
  auto bad = parse_export_compression("xz");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ErrorKind::kUsage);
}

}  // namespace
}  // namespace togo::image
