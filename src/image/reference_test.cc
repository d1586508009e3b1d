#include "image/reference.h"

#include <gtest/gtest.h>

#include <string>

namespace togo::image {
namespace {

const std::string kHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kDigest = "sha256:" + kHex;

Reference must_parse(std::string_view ref) {
  auto r = parse_reference(ref);
  EXPECT_TRUE(r.has_value()) << ref << ": " << (r ? "" : r.error().message);
  return r ? *r : Reference{};
}

void expect_refused(std::string_view ref, std::string_view why_part) {
  auto r = parse_reference(ref);
  ASSERT_FALSE(r.has_value()) << "accepted " << ref << " as " << r->str();
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
  EXPECT_TRUE(r.error().message.starts_with("invalid image reference \"")) << r.error().message;
  EXPECT_NE(r.error().message.find(why_part), std::string::npos)
      << ref << " -> " << r.error().message;
}

TEST(Reference, DockerHubShortNames) {
  auto r = must_parse("debian");
  EXPECT_EQ(r.registry, "docker.io");
  EXPECT_EQ(r.repository, "library/debian");
  EXPECT_EQ(r.tag, "latest");
  EXPECT_EQ(r.digest, "");
  EXPECT_EQ(r.str(), "docker.io/library/debian:latest");
  EXPECT_EQ(r.short_name(), "debian:latest");
  EXPECT_EQ(r.api_host(), "registry-1.docker.io");
  EXPECT_EQ(r.manifest_ref(), "latest");

  r = must_parse("debian:bookworm");
  EXPECT_EQ(r.repository, "library/debian");
  EXPECT_EQ(r.tag, "bookworm");
  EXPECT_EQ(r.short_name(), "debian:bookworm");

  r = must_parse("user/repo");
  EXPECT_EQ(r.registry, "docker.io");
  EXPECT_EQ(r.repository, "user/repo");
  EXPECT_EQ(r.short_name(), "user/repo:latest");

  EXPECT_EQ(must_parse("docker.io/debian"), must_parse("debian"));
  EXPECT_EQ(must_parse("index.docker.io/library/debian:latest"), must_parse("debian"));
  EXPECT_EQ(must_parse("docker.io/library/debian:bookworm").short_name(), "debian:bookworm");
}

TEST(Reference, OtherRegistries) {
  auto r = must_parse("ghcr.io/o/r@" + kDigest);
  EXPECT_EQ(r.registry, "ghcr.io");
  EXPECT_EQ(r.repository, "o/r");
  EXPECT_EQ(r.tag, "");
  EXPECT_EQ(r.digest, kDigest);
  EXPECT_EQ(r.api_host(), "ghcr.io");
  EXPECT_EQ(r.manifest_ref(), kDigest);
  EXPECT_EQ(r.str(), "ghcr.io/o/r@" + kDigest);
  EXPECT_EQ(r.short_name(), "ghcr.io/o/r:sha256-0123456789ab");

  r = must_parse("localhost:5000/x:tag");
  EXPECT_EQ(r.registry, "localhost:5000");
  EXPECT_EQ(r.repository, "x");
  EXPECT_EQ(r.tag, "tag");
  EXPECT_EQ(r.short_name(), "localhost:5000/x:tag");

  r = must_parse("localhost/x");
  EXPECT_EQ(r.registry, "localhost");
  EXPECT_EQ(r.repository, "x");

  r = must_parse("127.0.0.1:5000/a/b");
  EXPECT_EQ(r.registry, "127.0.0.1:5000");
  EXPECT_EQ(r.repository, "a/b");
  EXPECT_EQ(r.tag, "latest");

  r = must_parse("[::1]:5000/x");
  EXPECT_EQ(r.registry, "[::1]:5000");
  EXPECT_EQ(r.repository, "x");
  EXPECT_EQ(r.str(), "[::1]:5000/x:latest");

  r = must_parse("[fe80::1]/x/y:v1");
  EXPECT_EQ(r.registry, "[fe80::1]");
  EXPECT_EQ(r.repository, "x/y");

  r = must_parse("quay.io/a/b/c/d:v1.2-rc_3");
  EXPECT_EQ(r.repository, "a/b/c/d");
  EXPECT_EQ(r.tag, "v1.2-rc_3");

  // An uppercase first component is a registry, as Docker reads it.
  r = must_parse("MyHost/x");
  EXPECT_EQ(r.registry, "MyHost");
}

TEST(Reference, TagAndDigestTogether) {
  auto r = must_parse("debian:bookworm@" + kDigest);
  EXPECT_EQ(r.tag, "bookworm");
  EXPECT_EQ(r.digest, kDigest);
  EXPECT_EQ(r.manifest_ref(), kDigest);
  EXPECT_EQ(r.str(), "docker.io/library/debian:bookworm@" + kDigest);
  EXPECT_EQ(r.short_name(), "debian:bookworm");
  r = must_parse("localhost:5000/x:1@" + kDigest);
  EXPECT_EQ(r.registry, "localhost:5000");
  EXPECT_EQ(r.tag, "1");
}

TEST(Reference, PathComponentSeparators) {
  for (std::string ok : {"a.b", "a_b", "a__b", "a-b", "a---b", "a.b-c_d__e", "0a", "a/b.c/d-e"})
    EXPECT_TRUE(parse_reference(ok).has_value()) << ok;
  for (std::string bad : {"a..b", "a___b", "a._b", "-a", "a-", ".a", "a.", "_a", "a/", "/a",
                          "a//b", "a/.b"})
    expect_refused(bad, "");
}

TEST(Reference, Refusals) {
  expect_refused("", "empty");
  expect_refused("Debian", "must be lowercase");
  expect_refused("docker.io/Library/debian", "must be lowercase");
  expect_refused("debian:", "bad tag");
  expect_refused("debian:-x", "bad tag");
  expect_refused("debian:" + std::string(129, 'a'), "bad tag");
  EXPECT_TRUE(parse_reference("debian:" + std::string(128, 'a')).has_value());
  expect_refused("debian:a/b", "");
  expect_refused("debian@sha256:abc", "64 lowercase hex");
  expect_refused("debian@sha256:" + std::string(64, 'A'), "64 lowercase hex");
  expect_refused("debian@sha512:" + kHex + kHex, "unsupported digest algorithm \"sha512\"");
  expect_refused("debian@" + kHex, "no algorithm");
  expect_refused("debian@", "no algorithm");
  expect_refused(":tag", "no repository name");
  expect_refused("@" + kDigest, "no repository name");
  expect_refused("ghcr.io/", "no repository name");
  expect_refused("localhost:99999/x", "bad port");
  expect_refused("localhost:/x", "bad port");
  expect_refused("localhost:5x/x", "bad port");
  expect_refused("[::1/x", "");
  expect_refused("[zz::1]:5000/x", "bad IPv6");
  expect_refused("bad_host.io/x", "bad registry host");
  expect_refused("-a.io/x", "bad registry host");
  expect_refused("a..io/x", "bad registry host");
  expect_refused("debian bookworm", "");
  expect_refused(std::string(256, 'a'), "longer than 255");
  auto r = parse_reference("a\nb");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos);  // the name is printable
}

TEST(Reference, LoopbackHosts) {
  for (std::string h : {"localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:5000",
                        "127.1.2.3:80", "[::1]", "[::1]:5000", "::1"})
    EXPECT_TRUE(is_loopback_host(h)) << h;
  for (std::string h : {"", "docker.io", "10.0.0.1:5000", "128.0.0.1", "[::2]:5000", "::2",
                        "localhost.example.com", "127.0.0.1.nip.io", "[fe80::1]"})
    EXPECT_FALSE(is_loopback_host(h)) << h;
}

}  // namespace
}  // namespace togo::image
