#include "image/commit.h"

#include <gtest/gtest.h>

#include <string>

#include "image/image_export.h"

namespace togo::image {
namespace {

std::string dg(char c) { return "sha256:" + std::string(64, c); }

oci::ImageConfig changed(const std::vector<std::string>& changes) {
  oci::ImageConfig c;
  for (auto& ch : changes) {
    auto r = apply_change(c, ch);
    EXPECT_TRUE(r.has_value()) << ch << ": " << (r ? "" : r.error().message);
  }
  return c;
}

TEST(ApplyChange, TakesBothDockerfileForms) {
  auto c =
      changed({"CMD=[\"/bin/echo\", \"a b\"]", "ENTRYPOINT /init --quiet", "ENV=A=1", "ENV B 2",
               "env A=3", "LABEL=org.x=y", "WORKDIR=/srv", "USER app:app", "EXPOSE=80",
               "EXPOSE 53/udp", "EXPOSE 80", "VOLUME=/data", "STOPSIGNAL=SIGINT"});
  EXPECT_EQ(c.cmd, (std::vector<std::string>{"/bin/echo", "a b"}));
  EXPECT_EQ(c.entrypoint, (std::vector<std::string>{"/bin/sh", "-c", "/init --quiet"}));
  EXPECT_EQ(c.env, (std::vector<std::string>{"B=2", "A=3"}));
  EXPECT_EQ(c.labels.at("org.x"), "y");
  EXPECT_EQ(c.working_dir, "/srv");
  EXPECT_EQ(c.user, "app:app");
  EXPECT_EQ(c.exposed_ports, (std::vector<std::string>{"53/udp", "80/tcp"}));
  EXPECT_EQ(c.volumes, (std::vector<std::string>{"/data"}));
  EXPECT_EQ(c.stop_signal, "SIGINT");
  EXPECT_TRUE(changed({"CMD="}).cmd.empty()) << "an empty CMD resets it";
}

TEST(ApplyChange, RefusesWhatItCannotDo) {
  for (const char* bad : {"FROM=scratch", "CMD", "=x", "CMD=[1, 2]", "CMD=[\"a\"", "ENV=novalue",
                          "ENV==x", "WORKDIR=rel", "EXPOSE=0", "EXPOSE=70000", "EXPOSE=80/icmp",
                          "EXPOSE=http", "VOLUME=data", "USER=", "STOPSIGNAL="}) {
    oci::ImageConfig c;
    auto r = apply_change(c, bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
    EXPECT_TRUE(r.error().message.starts_with("--change " + std::string(bad) + ": "))
        << r.error().message;
  }
}

const std::string kBase =
    R"({"architecture":"arm64","os":"linux","variant":"v8","config":{"Env":["PATH=/bin"]},)"
    R"("rootfs":{"type":"layers","diff_ids":[")" +
    dg('1') + R"(",")" + dg('2') +
    R"("]},)"
    R"("x-kept":true})";

TEST(CommitConfig, AppendsTheLayerAndItsHistory) {
  CommitOptions opts;
  opts.message = "first";
  opts.changes = {"ENV=A=1"};
  auto json =
      commit_config(kBase, {dg('1'), dg('2')}, false, dg('3'), "2024-05-01T00:00:00Z", opts);
  ASSERT_TRUE(json.has_value()) << json.error().message;
  auto c = oci::parse_config(*json);
  ASSERT_TRUE(c.has_value()) << *json;
  EXPECT_EQ(c->diff_ids, (std::vector<std::string>{dg('1'), dg('2'), dg('3')}));
  EXPECT_EQ(c->architecture, "arm64");
  EXPECT_EQ(c->created, "2024-05-01T00:00:00Z");
  EXPECT_EQ(c->env, (std::vector<std::string>{"PATH=/bin", "A=1"}));
  // Two empty entries stand for the layers imported without history.
  ASSERT_EQ(c->history.size(), 3u);
  EXPECT_EQ(c->history[0].created_by, "");
  EXPECT_EQ(c->history[2].created_by, "togo commit");
  EXPECT_EQ(c->history[2].comment, "first");
  EXPECT_EQ(c->history[2].created, "2024-05-01T00:00:00Z");
  EXPECT_NE(json->find("\"x-kept\":true"), std::string::npos) << "unknown fields survive";
}

TEST(CommitConfig, ACopyIsOneLayer) {
  auto json = commit_config(kBase, {}, true, dg('9'), "2024-05-01T00:00:00Z", {});
  ASSERT_TRUE(json.has_value());
  auto c = oci::parse_config(*json);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->diff_ids, (std::vector<std::string>{dg('9')}));
  ASSERT_EQ(c->history.size(), 1u);
  EXPECT_EQ(c->env, (std::vector<std::string>{"PATH=/bin"})) << "the runtime config stays";
}

TEST(CommitConfig, AnImageWithoutAConfigGetsOne) {
  auto json = commit_config("{}", {dg('1')}, false, dg('2'), "2024-05-01T00:00:00Z", {});
  ASSERT_TRUE(json.has_value());
  auto c = oci::parse_config(*json);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->diff_ids, (std::vector<std::string>{dg('1'), dg('2')}));
  EXPECT_EQ(c->os, "linux");
  auto no_ids = commit_config("{}", {""}, false, dg('2'), "2024-05-01T00:00:00Z", {});
  EXPECT_FALSE(no_ids.has_value());
  auto mismatch = commit_config(kBase, {dg('1')}, false, dg('2'), "2024-05-01T00:00:00Z", {});
  EXPECT_FALSE(mismatch.has_value()) << "the config lists two layers, the image one";
}

TEST(ArchiveTag, NamesAsPodmanDoes) {
  EXPECT_EQ(archive_tag("dev"), "localhost/dev:latest");
  EXPECT_EQ(archive_tag("dev:v1"), "localhost/dev:v1");
  EXPECT_EQ(archive_tag("Team/Tool:V1"), "localhost/team/tool:V1");
  EXPECT_EQ(archive_tag("debian:bookworm"), "localhost/debian:bookworm");
  EXPECT_EQ(archive_tag("ghcr.io/o/r"), "ghcr.io/o/r:latest");
  EXPECT_EQ(archive_tag("localhost:5000/x:2"), "localhost:5000/x:2");
  EXPECT_EQ(archive_tag("localhost/x"), "localhost/x:latest");
}

TEST(ExportFormat, Parses) {
  EXPECT_EQ(parse_export_format("oci").value(), ExportFormat::kOci);
  EXPECT_EQ(parse_export_format("docker").value(), ExportFormat::kDocker);
  EXPECT_EQ(parse_export_format("tar").error().kind, ErrorKind::kUsage);
  EXPECT_EQ(parse_layer_compression("gzip").value(), LayerCompression::kGzip);
  EXPECT_EQ(parse_layer_compression("xz").error().kind, ErrorKind::kUsage);
}

}  // namespace
}  // namespace togo::image
