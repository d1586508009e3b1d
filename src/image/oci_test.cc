#include "image/oci.h"

#include <gtest/gtest.h>

#include <string>

namespace togo::image::oci {
namespace {

// A digest made of one repeated hex digit, so documents stay readable.
std::string dg(char c) { return "sha256:" + std::string(64, c); }

// Replaces every "@X" (X a hex digit) in `doc` with dg(X).
std::string with_digests(std::string doc) {
  for (size_t at = doc.find('@'); at != std::string::npos; at = doc.find('@', at))
    doc.replace(at, 2, dg(doc[at + 1]));
  return doc;
}

void expect_bad(const Error& e, std::string_view want) {
  EXPECT_EQ(e.kind, ErrorKind::kBadInput) << e.message;
  EXPECT_EQ(e.message, want);
}

void expect_bad_part(const Error& e, std::string_view part) {
  EXPECT_EQ(e.kind, ErrorKind::kBadInput) << e.message;
  EXPECT_NE(e.message.find(part), std::string::npos) << e.message;
}

// Shaped like what Docker Hub serves for official images today: an OCI index
// with buildkit attestation manifests for unknown/unknown.
const std::string kHubIndex = with_digests(R"({
  "manifests": [
    {"annotations": {"com.docker.official-images.bashbrew.arch": "amd64",
                     "org.opencontainers.image.base.name": "scratch",
                     "org.opencontainers.image.version": "bookworm"},
     "digest": "@1", "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "platform": {"architecture": "amd64", "os": "linux"}, "size": 1017},
    {"annotations": {"vnd.docker.reference.digest": "@1",
                     "vnd.docker.reference.type": "attestation-manifest"},
     "digest": "@2", "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "platform": {"architecture": "unknown", "os": "unknown"}, "size": 841},
    {"digest": "@3", "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "platform": {"architecture": "arm", "os": "linux", "variant": "v5"}, "size": 1017},
    {"digest": "@4", "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "platform": {"architecture": "unknown", "os": "unknown"}, "size": 841},
    {"digest": "@5", "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}, "size": 1017},
    {"digest": "@6", "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}, "size": 1017},
    {"digest": "@7", "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "platform": {"architecture": "386", "os": "linux"}, "size": 1017},
    {"digest": "@8", "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "platform": {"architecture": "ppc64le", "os": "linux"}, "size": 1017},
    {"digest": "@9", "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "platform": {"architecture": "s390x", "os": "linux"}, "size": 1017}
  ],
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "schemaVersion": 2
})");

// An older Docker manifest list.
const std::string kDockerList = with_digests(R"({
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
   "manifests": [
      {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528,
       "digest": "@a", "platform": {"architecture": "amd64", "os": "linux"}},
      {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528,
       "digest": "@b", "platform": {"architecture": "arm", "os": "linux", "variant": "v6"}},
      {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528,
       "digest": "@c", "platform": {"architecture": "arm64", "os": "linux"}},
      {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 1125,
       "digest": "@d", "platform": {"architecture": "amd64", "os": "windows",
       "os.version": "10.0.17763.5329", "os.features": ["win32k"]}}
   ]
})");

const std::string kDockerManifestDoc = with_digests(R"({
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1472,
              "digest": "@e"},
   "layers": [
      {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 3397879,
       "digest": "@f"}
   ]
})");

const std::string kOciManifest = with_digests(R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "@0",
             "size": 2},
  "layers": [
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "@1", "size": 100},
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": "@2", "size": 0,
     "annotations": {"a": "b"}, "urls": ["https://example.com/x"]}
  ],
  "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
})");

// Shaped like a config written by Docker's classic builder.
const std::string kDockerConfigDoc = with_digests(R"({"architecture":"amd64","config":{
  "Hostname":"","Domainname":"","User":"","AttachStdin":false,"Tty":false,
  "Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
  "Cmd":["/bin/sh"],"Image":"@3","Volumes":null,"WorkingDir":"","Entrypoint":null,
  "OnBuild":null,"Labels":null},
  "container":"4ad3f57821a1","container_config":{"Cmd":["/bin/sh","-c","#(nop) ","CMD [\"/bin/sh\"]"]},
  "created":"2023-08-07T19:20:20.894140623Z","docker_version":"20.10.23",
  "history":[{"created":"2023-08-07T19:20:20.71894984Z",
              "created_by":"/bin/sh -c #(nop) ADD file:32ff5e7a78b890996ee4681cc0a26185d3e9acdb4eb1e2aaccb2411f922fed6b in / "},
             {"created":"2023-08-07T19:20:20.894140623Z",
              "created_by":"/bin/sh -c #(nop)  CMD [\"/bin/sh\"]","empty_layer":true}],
  "os":"linux","rootfs":{"type":"layers","diff_ids":["@4"]}})");

TEST(OciMediaTypes, LayerCompression) {
  EXPECT_EQ(*layer_compression(kMediaTypeLayer), Compression::kNone);
  EXPECT_EQ(*layer_compression(kMediaTypeLayerGzip), Compression::kGzip);
  EXPECT_EQ(*layer_compression(kMediaTypeLayerZstd), Compression::kZstd);
  EXPECT_EQ(*layer_compression(kDockerLayerGzip), Compression::kGzip);
  EXPECT_EQ(*layer_compression(kDockerLayer), Compression::kNone);
  EXPECT_EQ(*layer_compression(kDockerForeignLayerGzip), Compression::kGzip);
  EXPECT_EQ(*layer_compression(kMediaTypeLayerNondistributableZstd), Compression::kZstd);
  EXPECT_TRUE(is_non_distributable_layer(kDockerForeignLayerGzip));
  EXPECT_TRUE(is_non_distributable_layer(kMediaTypeLayerNondistributable));
  EXPECT_FALSE(is_non_distributable_layer(kMediaTypeLayerGzip));
  expect_bad(layer_compression("application/vnd.oci.image.layer.v1.tar+bzip2").error(),
             "unsupported layer media type \"application/vnd.oci.image.layer.v1.tar+bzip2\"");
  EXPECT_FALSE(layer_compression("application/vnd.in-toto+json").has_value());
  EXPECT_FALSE(layer_compression("").has_value());
  EXPECT_EQ(compression_name(Compression::kZstd), "zstd");
  EXPECT_TRUE(is_manifest_media_type(kDockerManifest));
  EXPECT_TRUE(is_index_media_type(kDockerManifestList));
  EXPECT_TRUE(is_config_media_type(kDockerConfig));
  EXPECT_FALSE(is_manifest_media_type(kMediaTypeIndex));
}

TEST(OciDigest, Check) {
  EXPECT_TRUE(check_digest(dg('a')).has_value());
  expect_bad(check_digest("sha256:abc").error(),
             "\"sha256:abc\" is not a digest (\"sha256:\" and 64 lowercase hex digits)");
  EXPECT_FALSE(check_digest("sha256:" + std::string(64, 'A')).has_value());
  EXPECT_FALSE(check_digest("sha256:" + std::string(64, 'g')).has_value());
  EXPECT_FALSE(check_digest(dg('a') + "0").has_value());
  EXPECT_FALSE(check_digest(" " + dg('a')).has_value());
  expect_bad(check_digest("sha512:" + std::string(128, 'a')).error(),
             "unsupported digest algorithm \"sha512\"");
  // Hostile values are cut short and made printable.
  auto e = check_digest(std::string(1000, 'x') + "\n");
  ASSERT_FALSE(e.has_value());
  EXPECT_LT(e.error().message.size(), 200u);
}

TEST(OciManifest, ParsesOci) {
  auto m = parse_manifest(kOciManifest);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(m->schema_version, 2);
  EXPECT_EQ(m->media_type, kMediaTypeManifest);
  EXPECT_EQ(m->config.media_type, kMediaTypeConfig);
  EXPECT_EQ(m->config.digest, dg('0'));
  EXPECT_EQ(m->config.size, 2);
  ASSERT_EQ(m->layers.size(), 2u);
  EXPECT_EQ(m->layers[0].size, 100);
  EXPECT_EQ(m->layers[1].annotations.at("a"), "b");
  EXPECT_EQ(m->layers[1].urls, std::vector<std::string>{"https://example.com/x"});
  EXPECT_EQ(m->annotations.size(), 1u);
}

TEST(OciManifest, ParsesDockerSchema2) {
  auto m = parse_manifest(kDockerManifestDoc, "application/vnd.docker.distribution.manifest.v2+json");
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(m->media_type, kDockerManifest);
  EXPECT_EQ(m->config.media_type, kDockerConfig);
  ASSERT_EQ(m->layers.size(), 1u);
  EXPECT_EQ(m->layers[0].size, 3397879);
  EXPECT_EQ(*layer_compression(m->layers[0].media_type), Compression::kGzip);
}

TEST(OciManifest, MediaTypeFromContentTypeWhenAbsent) {
  std::string doc = with_digests(
      R"({"schemaVersion":2,"config":{"mediaType":"x/y","digest":"@1","size":1},"layers":[]})");
  EXPECT_EQ(parse_manifest(doc)->media_type, kMediaTypeManifest);
  EXPECT_EQ(parse_manifest(doc, std::string(kDockerManifest) + "; charset=utf-8")->media_type,
            kDockerManifest);
  EXPECT_EQ(parse_manifest(doc, "application/json")->media_type, kMediaTypeManifest);
  // The Content-Type says index but the document is a manifest.
  expect_bad(parse_manifest(doc, kMediaTypeIndex).error(),
             "invalid image manifest: this is an image index, not a manifest");
}

TEST(OciManifest, Refusals) {
  auto fail = [](std::string doc, std::string_view ct = {}) {
    auto m = parse_manifest(with_digests(doc), ct);
    EXPECT_FALSE(m.has_value()) << doc;
    return m ? Error{} : m.error();
  };
  std::string cfg = R"("config":{"mediaType":"a/b","digest":"@1","size":1})";
  expect_bad(fail(R"({"schemaVersion":2,)" + cfg + R"(,"layers":[{"mediaType":"a/b","digest":"@1","size":1},{"mediaType":"a/b","digest":"sha256:12","size":1}]})"),
             "invalid image manifest: layers[1]: digest: \"sha256:12\" is not a digest "
             "(\"sha256:\" and 64 lowercase hex digits)");
  expect_bad(fail(R"({"schemaVersion":2,)" + cfg + R"(,"layers":[{"mediaType":"a/b","digest":"@1","size":-5}]})"),
             "invalid image manifest: layers[0]: size: -5 is negative");
  expect_bad(fail(R"({"schemaVersion":2,)" + cfg + R"(,"layers":[{"mediaType":"a/b","digest":"@1","size":1.5}]})"),
             "invalid image manifest: layers[0]: size: expected an integer, got a number");
  expect_bad(fail(R"({"schemaVersion":2,)" + cfg + R"(,"layers":[{"mediaType":"a/b","digest":"@1","size":"1"}]})"),
             "invalid image manifest: layers[0]: size: expected an integer, got a string");
  expect_bad(fail(R"({"schemaVersion":2,)" + cfg + R"(,"layers":[{"digest":"@1","size":1}]})"),
             "invalid image manifest: layers[0]: mediaType: missing");
  expect_bad(fail(R"({"schemaVersion":2,)" + cfg + R"(,"layers":[7]})"),
             "invalid image manifest: layers[0]: descriptor: expected an object, got a number");
  expect_bad(fail(R"({"schemaVersion":2,)" + cfg + R"(})"),
             "invalid image manifest: layers: missing");
  expect_bad(fail(R"({"schemaVersion":2,"layers":[]})"),
             "invalid image manifest: config: missing");
  expect_bad(fail(R"({"schemaVersion":2,"config":{"mediaType":"a/b","digest":"@1"},"layers":[]})"),
             "invalid image manifest: config: size: missing");
  expect_bad(fail(R"({"schemaVersion":3,)" + cfg + R"(,"layers":[]})"),
             "invalid image manifest: schemaVersion: 3 is not 2");
  expect_bad(fail(R"({)" + cfg + R"(,"layers":[]})"),
             "invalid image manifest: schemaVersion: missing");
  expect_bad(fail(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)" +
                  cfg + R"(,"layers":[]})"),
             "invalid image manifest: this is an image index, not a manifest");
  expect_bad(fail(R"({"schemaVersion":2,"mediaType":"text/html",)" + cfg + R"(,"layers":[]})"),
             "invalid image manifest: mediaType: unsupported manifest type \"text/html\"");
  expect_bad(fail(R"({"schemaVersion":2,"mediaType":5,)" + cfg + R"(,"layers":[]})"),
             "invalid image manifest: mediaType: expected a string, got a number");
  expect_bad(fail(R"({"schemaVersion":2,)" + cfg + R"(,"layers":[],"annotations":{"a":1}})"),
             "invalid image manifest: annotations.a: expected a string, got a number");
  expect_bad(fail(R"([])"), "invalid image manifest: document: expected an object, got an array");
  expect_bad_part(fail(R"({"schemaVersion":2,)"), "invalid image manifest: invalid JSON at byte ");
  // Schema 1, by field or by Content-Type.
  auto e = fail(R"({"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[]})");
  expect_bad_part(e, "Docker schema 1 manifests are not supported");
  EXPECT_FALSE(e.hint.empty());
  expect_bad_part(fail(R"({"name":"x"})", "application/vnd.docker.distribution.manifest.v1+prettyjws"),
                  "schema 1");
}

TEST(OciManifest, RoundTrips) {
  auto m = parse_manifest(kOciManifest);
  ASSERT_TRUE(m.has_value());
  std::string out = to_json(*m);
  auto again = parse_manifest(out);
  ASSERT_TRUE(again.has_value()) << out;
  EXPECT_EQ(again->config, m->config);
  EXPECT_EQ(again->layers, m->layers);
  EXPECT_EQ(again->annotations, m->annotations);
  EXPECT_EQ(to_json(*again), out);
  EXPECT_TRUE(out.starts_with(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":)"))
      << out;

  Manifest fresh;
  fresh.config = {.media_type = std::string(kMediaTypeConfig), .digest = dg('1'), .size = 3};
  fresh.layers.push_back({.media_type = std::string(kMediaTypeLayer), .digest = dg('2'), .size = 4});
  EXPECT_EQ(to_json(fresh),
            with_digests(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
                         R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@1","size":3},)"
                         R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"@2","size":4}]})"));
}

TEST(OciIndex, DetectsKind) {
  EXPECT_EQ(*detect_manifest_kind(kHubIndex), DocumentKind::kIndex);
  EXPECT_EQ(*detect_manifest_kind(kDockerList), DocumentKind::kIndex);
  EXPECT_EQ(*detect_manifest_kind(kDockerManifestDoc), DocumentKind::kManifest);
  EXPECT_EQ(*detect_manifest_kind(kOciManifest), DocumentKind::kManifest);
  // Without mediaType: the Content-Type, then the shape.
  std::string bare_index = with_digests(R"({"schemaVersion":2,"manifests":[]})");
  std::string bare_manifest = with_digests(R"({"schemaVersion":2,"config":{},"layers":[]})");
  EXPECT_EQ(*detect_manifest_kind(bare_index), DocumentKind::kIndex);
  EXPECT_EQ(*detect_manifest_kind(bare_manifest), DocumentKind::kManifest);
  EXPECT_EQ(*detect_manifest_kind("{}", std::string(kMediaTypeIndex) + ";charset=utf-8"),
            DocumentKind::kIndex);
  EXPECT_EQ(*detect_manifest_kind("{}", kDockerManifest), DocumentKind::kManifest);
  expect_bad(detect_manifest_kind("{}", "application/json").error(),
             "invalid image manifest: no mediaType, and neither \"manifests\" nor \"config\": "
             "not an image manifest");
  expect_bad_part(detect_manifest_kind(R"({"schemaVersion":1})").error(), "schema 1");
  expect_bad_part(detect_manifest_kind("{}", kDockerSchema1).error(), "schema 1");
  expect_bad_part(detect_manifest_kind("nope").error(), "invalid JSON");

  auto any = parse_any_manifest(kHubIndex);
  ASSERT_TRUE(any.has_value());
  EXPECT_TRUE(std::holds_alternative<Index>(*any));
  any = parse_any_manifest(kDockerManifestDoc);
  ASSERT_TRUE(any.has_value());
  EXPECT_TRUE(std::holds_alternative<Manifest>(*any));
}

TEST(OciIndex, ParsesHubIndex) {
  auto idx = parse_index(kHubIndex, kMediaTypeIndex);
  ASSERT_TRUE(idx.has_value()) << idx.error().message;
  EXPECT_EQ(idx->media_type, kMediaTypeIndex);
  ASSERT_EQ(idx->manifests.size(), 9u);
  EXPECT_EQ(idx->manifests[0].platform->architecture, "amd64");
  EXPECT_EQ(idx->manifests[1].annotations.at("vnd.docker.reference.type"), "attestation-manifest");
  EXPECT_EQ(idx->manifests[5].platform->variant, "v8");

  auto list = parse_index(kDockerList);
  ASSERT_TRUE(list.has_value()) << list.error().message;
  EXPECT_EQ(list->media_type, kDockerManifestList);
  EXPECT_EQ(list->manifests[3].platform->os_version, "10.0.17763.5329");
  EXPECT_EQ(list->manifests[3].platform->os_features, std::vector<std::string>{"win32k"});
}

TEST(OciIndex, Refusals) {
  expect_bad(parse_index(kDockerManifestDoc).error(),
             "invalid image index: this is an image manifest, not an index");
  expect_bad(parse_index(with_digests(R"({"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"@1","size":1,"platform":{"os":"linux"}}]})"))
                 .error(),
             "invalid image index: manifests[0]: platform: architecture: missing");
  expect_bad(parse_index(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"})")
                 .error(),
             "invalid image index: manifests: missing");
  expect_bad(parse_index(R"({"schemaVersion":2,"manifests":{}})").error(),
             "invalid image index: manifests: expected an array, got an object");
}

TEST(OciIndex, RoundTrips) {
  auto idx = parse_index(kHubIndex);
  ASSERT_TRUE(idx.has_value());
  std::string out = to_json(*idx);
  auto again = parse_index(out);
  ASSERT_TRUE(again.has_value()) << out;
  EXPECT_EQ(again->manifests, idx->manifests);
  EXPECT_EQ(to_json(*again), out);
  EXPECT_TRUE(out.starts_with(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"));
  auto list = parse_index(kDockerList);
  EXPECT_EQ(to_json(*parse_index(to_json(*list))), to_json(*list));
  EXPECT_EQ(to_json(Index{}), R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})");
}

TEST(OciPlatform, PicksFromHubIndex) {
  auto idx = *parse_index(kHubIndex);
  auto pick = [&](std::string_view want) -> std::string {
    auto d = pick_platform(idx, *parse_platform(want));
    return d ? d->digest : d.error().message;
  };
  EXPECT_EQ(pick("linux/amd64"), dg('1'));
  EXPECT_EQ(pick("linux/arm64"), dg('6'));
  EXPECT_EQ(pick("linux/arm64/v8"), dg('6'));
  EXPECT_EQ(pick("linux/arm/v7"), dg('5'));
  EXPECT_EQ(pick("linux/arm"), dg('5'));    // arm means v7
  EXPECT_EQ(pick("linux/arm/v6"), dg('3'));  // v6 runs v5, not v7
  EXPECT_EQ(pick("linux/arm/v5"), dg('3'));
  EXPECT_EQ(pick("linux/386"), dg('7'));
  EXPECT_EQ(pick("linux/ppc64le"), dg('8'));
  EXPECT_EQ(pick("s390x"), dg('9'));
  EXPECT_EQ(pick("linux/riscv64"),
            "no linux/riscv64 image in the index (it has linux/amd64, linux/arm/v5, linux/arm/v7, "
            "linux/arm64/v8, linux/386, linux/ppc64le, linux/s390x)");
  auto e = pick_platform(idx, *parse_platform("windows/amd64"));
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().kind, ErrorKind::kBadInput);
  // The unknown/unknown attestations are never picked, even when asked for.
  EXPECT_FALSE(pick_platform(idx, Platform{.os = "unknown", .architecture = "unknown"}).has_value());
}

TEST(OciPlatform, PicksFromDockerList) {
  auto list = *parse_index(kDockerList);
  auto pick = [&](Platform want) -> std::string {
    auto d = pick_platform(list, want);
    return d ? d->digest : d.error().message;
  };
  EXPECT_EQ(pick({.os = "linux", .architecture = "amd64"}), dg('a'));
  EXPECT_EQ(pick({.os = "linux", .architecture = "arm64", .variant = "v8"}), dg('c'));
  EXPECT_EQ(pick({.os = "linux", .architecture = "arm", .variant = "v7"}), dg('b'));
  EXPECT_EQ(pick({.os = "windows", .architecture = "amd64"}), dg('d'));
  EXPECT_EQ(pick({.os = "linux", .architecture = "arm", .variant = "v5"}),
            "no linux/arm/v5 image in the index (it has linux/amd64, linux/arm/v6, linux/arm64, "
            "windows/amd64)");
  EXPECT_EQ(pick({.os = "linux", .architecture = "amd64", .variant = "v3"}), dg('a'));

  Index none;
  EXPECT_EQ(pick_platform(none, {.os = "linux", .architecture = "amd64"}).error().message,
            "no linux/amd64 image in the index (no platforms listed)");
}

TEST(OciPlatform, PrefersExactVariant) {
  Index idx;
  auto add = [&](char c, std::string arch, std::string variant) {
    idx.manifests.push_back({.media_type = std::string(kMediaTypeManifest), .digest = dg(c),
                             .size = 1,
                             .platform = Platform{.os = "linux", .architecture = arch,
                                                  .variant = variant}});
  };
  add('1', "amd64", "v3");
  add('2', "amd64", "");
  add('3', "arm", "v6");
  add('4', "arm", "v7");
  add('5', "arm64", "");
  EXPECT_EQ(pick_platform(idx, {.os = "linux", .architecture = "amd64"})->digest, dg('2'));
  EXPECT_EQ(pick_platform(idx, {.os = "linux", .architecture = "amd64", .variant = "v3"})->digest,
            dg('1'));
  EXPECT_EQ(pick_platform(idx, {.os = "linux", .architecture = "amd64", .variant = "v2"})->digest,
            dg('2'));
  EXPECT_EQ(pick_platform(idx, {.os = "linux", .architecture = "arm", .variant = "v7"})->digest,
            dg('4'));
  EXPECT_EQ(pick_platform(idx, {.os = "linux", .architecture = "arm", .variant = "v8"})->digest,
            dg('4'));
  EXPECT_EQ(pick_platform(idx, {.os = "linux", .architecture = "arm64", .variant = "v8"})->digest,
            dg('5'));
  // Nested indexes and entries without a platform are not candidates.
  Index odd;
  odd.manifests.push_back({.media_type = std::string(kMediaTypeIndex), .digest = dg('6'), .size = 1,
                           .platform = Platform{.os = "linux", .architecture = "amd64"}});
  odd.manifests.push_back({.media_type = std::string(kMediaTypeManifest), .digest = dg('7'), .size = 1});
  EXPECT_FALSE(pick_platform(odd, {.os = "linux", .architecture = "amd64"}).has_value());
}

TEST(OciPlatform, ForMachine) {
  auto p = platform_for_machine("x86_64");
  EXPECT_EQ(p, (Platform{.os = "linux", .architecture = "amd64"}));
  EXPECT_EQ(platform_for_machine("aarch64").str(), "linux/arm64/v8");
  EXPECT_EQ(platform_for_machine("armv7l").str(), "linux/arm/v7");
  EXPECT_EQ(platform_for_machine("armv6l").str(), "linux/arm/v6");
  EXPECT_EQ(platform_for_machine("armv8l").str(), "linux/arm/v7");
  EXPECT_EQ(platform_for_machine("i686").str(), "linux/386");
  EXPECT_EQ(platform_for_machine("riscv64").str(), "linux/riscv64");
  EXPECT_EQ(platform_for_machine("ppc64le").str(), "linux/ppc64le");
  EXPECT_EQ(platform_for_machine("s390x").str(), "linux/s390x");
  Platform host = host_platform();
  EXPECT_EQ(host.os, "linux");
  EXPECT_FALSE(host.architecture.empty());
}

TEST(OciPlatform, Parse) {
  EXPECT_EQ(*parse_platform("linux/arm64/v8"),
            (Platform{.os = "linux", .architecture = "arm64", .variant = "v8"}));
  EXPECT_EQ(*parse_platform("linux/amd64"), (Platform{.os = "linux", .architecture = "amd64"}));
  EXPECT_EQ(parse_platform("Linux/x86_64")->str(), "linux/amd64");
  EXPECT_EQ(parse_platform("linux/aarch64")->str(), "linux/arm64");
  EXPECT_EQ(parse_platform("linux/armhf")->str(), "linux/arm/v7");
  EXPECT_EQ(parse_platform("arm64")->str(), "linux/arm64");
  EXPECT_EQ(parse_platform("linux/i686")->str(), "linux/386");
  for (std::string bad : {"", "/", "linux/", "/amd64", "linux/amd64/v8/x", "linux//amd64",
                          "linux/amd 64", "linux/amd64\n"})
    EXPECT_FALSE(parse_platform(bad).has_value()) << bad;
  expect_bad(parse_platform("a/b/c/d").error(),
             "invalid platform \"a/b/c/d\": expected os/architecture[/variant]");
}

TEST(OciConfig, ParsesDockerConfig) {
  auto c = parse_config(kDockerConfigDoc);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->architecture, "amd64");
  EXPECT_EQ(c->os, "linux");
  EXPECT_EQ(c->created, "2023-08-07T19:20:20.894140623Z");
  EXPECT_EQ(c->env.size(), 1u);
  EXPECT_EQ(c->cmd, std::vector<std::string>{"/bin/sh"});
  EXPECT_TRUE(c->entrypoint.empty());  // null
  EXPECT_TRUE(c->labels.empty());      // null
  EXPECT_TRUE(c->volumes.empty());     // null
  EXPECT_EQ(c->diff_ids, std::vector<std::string>{dg('4')});
  ASSERT_EQ(c->history.size(), 2u);
  EXPECT_FALSE(c->history[0].empty_layer);
  EXPECT_TRUE(c->history[1].empty_layer);
  EXPECT_EQ(c->history[1].created_by, "/bin/sh -c #(nop)  CMD [\"/bin/sh\"]");
}

TEST(OciConfig, ParsesOciConfigFields) {
  std::string doc = with_digests(R"({"architecture":"arm64","variant":"v8","os":"linux",
    "author":"me","config":{"User":"1000:1000","Env":["A=1","B=2"],"Entrypoint":["/init"],
    "Cmd":["serve","--port","80"],"WorkingDir":"/srv","ExposedPorts":{"443/tcp":{},"80/tcp":{}},
    "Volumes":{"/data":{}},"Labels":{"org.opencontainers.image.title":"x"},"StopSignal":"SIGINT"},
    "rootfs":{"type":"layers","diff_ids":["@1","@2"]}})");
  auto c = parse_config(doc);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->variant, "v8");
  EXPECT_EQ(c->author, "me");
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_EQ(c->entrypoint, std::vector<std::string>{"/init"});
  EXPECT_EQ(c->cmd.size(), 3u);
  EXPECT_EQ(c->working_dir, "/srv");
  EXPECT_EQ(c->exposed_ports, (std::vector<std::string>{"443/tcp", "80/tcp"}));
  EXPECT_EQ(c->volumes, std::vector<std::string>{"/data"});
  EXPECT_EQ(c->labels.at("org.opencontainers.image.title"), "x");
  EXPECT_EQ(c->stop_signal, "SIGINT");
  EXPECT_EQ(c->diff_ids.size(), 2u);
}

TEST(OciConfig, Refusals) {
  auto fail = [](std::string doc) {
    auto c = parse_config(with_digests(doc));
    EXPECT_FALSE(c.has_value()) << doc;
    return c ? Error{} : c.error();
  };
  std::string rootfs = R"("rootfs":{"type":"layers","diff_ids":["@1"]})";
  expect_bad(fail(R"({"os":"linux",)" + rootfs + "}"),
             "invalid image config: architecture: missing");
  expect_bad(fail(R"({"architecture":"amd64","os":"linux"})"),
             "invalid image config: rootfs: missing");
  expect_bad(fail(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"tar","diff_ids":[]}})"),
             "invalid image config: rootfs: type: \"tar\" is not \"layers\"");
  expect_bad(fail(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}})"),
             "invalid image config: rootfs: diff_ids: missing");
  expect_bad(fail(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["@1","md5:x"]}})"),
             "invalid image config: rootfs: diff_ids[1]: unsupported digest algorithm \"md5\"");
  expect_bad(fail(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:x"]}})"),
             "invalid image config: rootfs: diff_ids[0]: \"sha256:x\" is not a digest (\"sha256:\" "
             "and 64 lowercase hex digits)");
  expect_bad(fail(R"({"architecture":"amd64","os":"linux","config":{"Env":["A",1]},)" + rootfs + "}"),
             "invalid image config: config: Env[1]: expected a string, got a number");
  expect_bad(fail(R"({"architecture":"amd64","os":"linux","config":{"Cmd":"sh"},)" + rootfs + "}"),
             "invalid image config: config: Cmd: expected an array, got a string");
  expect_bad(fail(R"({"architecture":"amd64","os":"linux","config":[],)" + rootfs + "}"),
             "invalid image config: config: expected an object, got an array");
  expect_bad(fail(R"({"architecture":"amd64","os":"linux","history":[{"empty_layer":"yes"}],)" +
                  rootfs + "}"),
             "invalid image config: history[0]: empty_layer: expected a boolean, got a string");
  expect_bad_part(fail("{\"architecture\":\"amd64\""), "invalid image config: invalid JSON");
}

TEST(OciConfig, UnknownFieldsSurvive) {
  auto c = parse_config(kDockerConfigDoc);
  ASSERT_TRUE(c.has_value());
  c->env.push_back("LANG=C.UTF-8");
  c->labels["x"] = "y";
  c->cmd = {"/bin/bash"};
  std::string out = to_json(*c);
  auto again = parse_config(out);
  ASSERT_TRUE(again.has_value()) << out;
  EXPECT_EQ(again->env.size(), 2u);
  EXPECT_EQ(again->labels.at("x"), "y");
  EXPECT_EQ(again->cmd, std::vector<std::string>{"/bin/bash"});
  EXPECT_EQ(again->history.size(), 2u);
  EXPECT_TRUE(again->history[1].empty_layer);
  // Fields not modelled here are kept, in place.
  EXPECT_EQ(again->raw.find("docker_version")->as_string(), "20.10.23");
  EXPECT_EQ(again->raw.find("container_config")->find("Cmd")->size(), 4u);
  EXPECT_FALSE(again->raw.find("config")->find("Tty")->as_bool());
  EXPECT_EQ(again->raw.find("config")->find("Image")->as_string(), dg('3'));
  EXPECT_EQ(again->raw.members()[0].first, "architecture");
  // Unchanged configs write back the same modelled values.
  auto same = parse_config(to_json(*parse_config(kDockerConfigDoc)));
  EXPECT_EQ(same->diff_ids, c->diff_ids);
  EXPECT_EQ(to_json(*same), to_json(*parse_config(to_json(*same))));
}

TEST(OciConfig, FreshConfig) {
  ImageConfig c;
  c.os = "linux";
  c.architecture = "arm64";
  c.variant = "v8";
  c.diff_ids = {dg('1')};
  EXPECT_EQ(to_json(c), with_digests(R"({"architecture":"arm64","os":"linux","variant":"v8",)"
                                     R"("rootfs":{"type":"layers","diff_ids":["@1"]}})"));
  c.env = {"PATH=/bin"};
  c.exposed_ports = {"80/tcp"};
  c.created = "2024-01-01T00:00:00Z";
  c.history.push_back({.created_by = "togo import"});
  auto back = parse_config(to_json(c));
  ASSERT_TRUE(back.has_value()) << to_json(c);
  EXPECT_EQ(back->env, c.env);
  EXPECT_EQ(back->exposed_ports, c.exposed_ports);
  EXPECT_EQ(back->history[0].created_by, "togo import");
  EXPECT_EQ(back->raw.find("config")->find("ExposedPorts")->find("80/tcp")->type(),
            json::Value::Type::kObject);
}

TEST(OciDockerArchive, ParsesManifestJson) {
  std::string doc = R"([{"Config":"9b1f2e.json","RepoTags":["debian:bookworm","localhost/x:1"],
    "Layers":["a1/layer.tar","./b2/layer.tar"]},
    {"Config":"blobs/sha256/abc","RepoTags":null,"Layers":[]}])";
  auto m = parse_docker_manifest(doc);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0].config, "9b1f2e.json");
  EXPECT_EQ((*m)[0].repo_tags, (std::vector<std::string>{"debian:bookworm", "localhost/x:1"}));
  EXPECT_EQ((*m)[0].layers, (std::vector<std::string>{"a1/layer.tar", "b2/layer.tar"}));
  EXPECT_TRUE((*m)[1].repo_tags.empty());
  auto again = parse_docker_manifest(docker_manifest_json(*m));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ((*again)[0].layers, (*m)[0].layers);
  EXPECT_EQ(docker_manifest_json({{.config = "c.json", .repo_tags = {"a:b"}, .layers = {"l/layer.tar"}}}),
            R"([{"Config":"c.json","RepoTags":["a:b"],"Layers":["l/layer.tar"]}])");
}

TEST(OciDockerArchive, RefusesHostilePaths) {
  auto fail = [](std::string doc) {
    auto m = parse_docker_manifest(doc);
    EXPECT_FALSE(m.has_value()) << doc;
    return m ? Error{} : m.error();
  };
  expect_bad(fail(R"([{"Config":"../c.json","Layers":[]}])"),
             "invalid manifest.json: [0]: Config: path leaves the image root");
  expect_bad(fail(R"([{"Config":"c.json","Layers":["a/layer.tar","/etc/passwd"]}])"),
             "invalid manifest.json: [0]: Layers[1]: absolute path");
  expect_bad(fail(R"([{"Config":"c.json","Layers":["a/../../x"]}])"),
             "invalid manifest.json: [0]: Layers[0]: path leaves the image root");
  expect_bad(fail(R"([{"Config":"c.json","Layers":["a\u0000b"]}])"),
             "invalid manifest.json: [0]: Layers[0]: name contains a NUL byte");
  expect_bad(fail(R"([{"Config":"./","Layers":[]}])"),
             "invalid manifest.json: [0]: Config: names the archive root");
  expect_bad(fail(R"([{"Config":"","Layers":[]}])"), "invalid manifest.json: [0]: Config: empty name");
  expect_bad(fail(R"([{"Config":3,"Layers":[]}])"),
             "invalid manifest.json: [0]: Config: expected a string, got a number");
  expect_bad(fail(R"([{"Layers":[]}])"), "invalid manifest.json: [0]: Config: missing");
  expect_bad(fail(R"([{"Config":"c.json"}])"), "invalid manifest.json: [0]: Layers: missing");
  expect_bad(fail(R"([])"), "invalid manifest.json: no images");
  expect_bad(fail(R"({})"), "invalid manifest.json: expected an array, got an object");
}

TEST(OciLayout, LayoutFileAndBlobs) {
  EXPECT_EQ(layout_json(), R"({"imageLayoutVersion":"1.0.0"})");
  EXPECT_TRUE(parse_layout(layout_json()).has_value());
  EXPECT_TRUE(parse_layout(" {\"imageLayoutVersion\": \"1.0.0\"}\n").has_value());
  expect_bad(parse_layout(R"({"imageLayoutVersion":"2.0.0"})").error(),
             "invalid oci-layout: unsupported imageLayoutVersion \"2.0.0\"");
  expect_bad(parse_layout("{}").error(), "invalid oci-layout: imageLayoutVersion: missing");
  EXPECT_FALSE(parse_layout("").has_value());
  EXPECT_EQ(blob_path(dg('a')), "blobs/sha256/" + std::string(64, 'a'));
  EXPECT_EQ(blob_path("sha256:../../etc/passwd"), "");
  EXPECT_EQ(blob_path("sha256:" + std::string(63, 'a') + "/"), "");
  EXPECT_EQ(kAnnotationRefName, "org.opencontainers.image.ref.name");
}

}  // namespace
}  // namespace togo::image::oci
