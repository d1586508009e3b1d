#include "image/registry.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "image/http_test_util.h"
// The local-registry fixture of the integration tests (CMakeLists.txt adds
// registry_fixture.cc to the unit test binary as well).
#include "registry_fixture.h"

namespace togo::image {
namespace {

// ---------------------------------------------------------------------------
// Pure parts.

TEST(ParseCreds, SplitsAtTheFirstColon) {
  auto c = parse_creds("user:pa:ss");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->user, "user");
  EXPECT_EQ(c->password, "pa:ss");
  EXPECT_EQ(parse_creds("user:")->password, "");
  for (const char* bad : {"user", ":pw", ""}) {
    auto r = parse_creds(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
  }
}

TEST(DockerConfig, FindsInlineAuthByHost) {
  // base64("alice:wonder:land") and base64("bob:builder")
  std::string config = R"({"auths":{
      "https://index.docker.io/v1/":{"auth":"YWxpY2U6d29uZGVyOmxhbmQ="},
      "localhost:5000":{"auth":"Ym9iOmJ1aWxkZXI="},
      "https://ghcr.io":{"username":"carol","password":"pw"},
      "quay.io":{}}})";
  auto hub = credentials_from_docker_config(config, "docker.io");
  ASSERT_TRUE(hub) << hub.error().message;
  ASSERT_TRUE(*hub);
  EXPECT_EQ((*hub)->user, "alice");
  EXPECT_EQ((*hub)->password, "wonder:land");
  auto local = credentials_from_docker_config(config, "localhost:5000");
  ASSERT_TRUE(local && *local);
  EXPECT_EQ((*local)->user, "bob");
  auto ghcr = credentials_from_docker_config(config, "ghcr.io");
  ASSERT_TRUE(ghcr && *ghcr);
  EXPECT_EQ((*ghcr)->password, "pw");
  for (const char* none : {"quay.io", "localhost:5001", "example.com"}) {
    auto r = credentials_from_docker_config(config, none);
    ASSERT_TRUE(r) << none;
    EXPECT_FALSE(*r) << none;
  }
}

TEST(DockerConfig, NamesCredentialHelpersItSkips) {
  std::string note;
  auto r = credentials_from_docker_config(R"({"auths":{"ghcr.io":{}},"credsStore":"desktop"})", "ghcr.io", &note);
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
  EXPECT_EQ(note,
            "credential helper docker-credential-desktop is not supported; credentials for ghcr.io can be given "
            "with --creds USER:PASSWORD");
  note.clear();
  r = credentials_from_docker_config(R"({"credHelpers":{"gcr.io":"gcloud"}})", "gcr.io", &note);
  ASSERT_TRUE(r);
  EXPECT_NE(note.find("docker-credential-gcloud"), std::string::npos);
  note.clear();
  r = credentials_from_docker_config(R"({"credHelpers":{"gcr.io":"gcloud"}})", "quay.io", &note);
  EXPECT_EQ(note, "");
}

TEST(DockerConfig, RefusesBrokenConfigs) {
  for (const char* bad : {"{", "[]", R"({"auths":{"h":{"auth":"!!!"}}})", R"({"auths":{"h":{"auth":"bm9jb2xvbg=="}}})"}) {
    auto r = credentials_from_docker_config(bad, "h");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kBadInput) << bad;
  }
}

TEST(DockerConfig, ReadsTheFileFromDockerConfig) {
  char tmpl[] = "/tmp/togo-dockercfg-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  std::string dir = tmpl;
  setenv("DOCKER_CONFIG", dir.c_str(), 1);
  auto none = credentials_for("localhost:5000");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(*none);
  ASSERT_TRUE(test::write_text(dir + "/config.json",
                               R"({"auths":{"localhost:5000":{"auth":"Ym9iOmJ1aWxkZXI="}},"credsStore":"pass"})"));
  auto found = credentials_for("localhost:5000");
  std::vector<std::string> notes;
  auto helper = credentials_for("example.com", [&](const std::string& n) { notes.push_back(n); });
  ASSERT_TRUE(test::write_text(dir + "/config.json", "{oops"));
  auto broken = credentials_for("localhost:5000");
  unsetenv("DOCKER_CONFIG");
  ASSERT_TRUE(fs::remove_tree(AT_FDCWD, dir));
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->user, "bob");
  ASSERT_TRUE(helper && !*helper);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("docker-credential-pass"), std::string::npos);
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().message.rfind("reading " + dir + "/config.json: invalid JSON", 0), 0u)
      << broken.error().message;
}

TEST(ParseChallenges, ReadsBearerAndBasic) {
  auto cs = parse_challenges(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push")");
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].scheme, "bearer");
  EXPECT_EQ(cs[0].params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(cs[0].params["service"], "registry.docker.io");
  EXPECT_EQ(cs[0].params["scope"], "repository:library/debian:pull,push");

  cs = parse_challenges(R"(Basic realm="a \"quoted\" realm", charset=UTF-8, BEARER Realm=http://x/t , error=invalid_token)");
  ASSERT_EQ(cs.size(), 2u);
  EXPECT_EQ(cs[0].scheme, "basic");
  EXPECT_EQ(cs[0].params["realm"], "a \"quoted\" realm");
  EXPECT_EQ(cs[0].params["charset"], "UTF-8");
  EXPECT_EQ(cs[1].scheme, "bearer");
  EXPECT_EQ(cs[1].params["realm"], "http://x/t");
  EXPECT_EQ(cs[1].params["error"], "invalid_token");

  EXPECT_TRUE(parse_challenges("").empty());
  EXPECT_TRUE(parse_challenges("=, =").empty());
  EXPECT_EQ(parse_challenges("Negotiate").size(), 1u);
  EXPECT_EQ(parse_challenges(R"(Bearer realm="unterminated)")[0].params["realm"], "unterminated");
}

TEST(RegistryErrorMessage, ReadsTheErrorsDocument) {
  EXPECT_EQ(registry_error_message(R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]})"),
            "manifest unknown");
  EXPECT_EQ(registry_error_message(R"({"errors":[{"code":"DENIED"},{"code":"X","message":"second"}]})"),
            "denied; second");
  EXPECT_EQ(registry_error_message(R"({"details":"incorrect username or password"})"),
            "incorrect username or password");
  EXPECT_EQ(registry_error_message("<html>502</html>"), "");
  EXPECT_EQ(registry_error_message(R"({"errors":[{"message":"two\nlines"}]})"), "two\\x0alines");
}

// ---------------------------------------------------------------------------
// A scripted registry on the HTTP client's test server: the handler gets
// each request (head and body) and returns the raw answer, after which the
// connection is closed if the answer says "Connection: close".

class FakeRegistry {
 public:
  using Handler = std::function<std::string(const std::string& request)>;

  explicit FakeRegistry(Handler h)
      : server_([h = std::move(h)](const http::ServerConn& c, const std::string& req) {
          std::string answer = h(req);
          c.write(answer);
          return answer.find("\r\nConnection: close\r\n") == std::string::npos;
        }) {}

  std::string host() const { return "127.0.0.1:" + std::to_string(server_.port()); }
  Reference ref(const std::string& tag = "v1") const { return *parse_reference(host() + "/test/img:" + tag); }
  std::vector<std::string> requests() { return server_.requests(); }

 private:
  http::TestServer server_;
};

std::string answer(int status, const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra + "\r\n" + body;
}

bool starts(const std::string& req, const std::string& line) { return req.rfind(line, 0) == 0; }

/// A temporary file for downloads, removed on destruction.
struct TempFile {
  TempFile() {
    char tmpl[] = "/tmp/togo-blob-XXXXXX";
    fd.reset(mkstemp(tmpl));
    path = tmpl;
  }
  ~TempFile() { ::unlink(path.c_str()); }
  std::string content() const { return *fs::read_file(AT_FDCWD, path); }
  void write(const std::string& s) const {
    EXPECT_EQ(::ftruncate(fd.get(), 0), 0);
    EXPECT_EQ(::pwrite(fd.get(), s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
  }
  off_t size() const {
    struct stat st;
    ::fstat(fd.get(), &st);
    return st.st_size;
  }
  Fd fd;
  std::string path;
};

TEST(RegistryAuth, GetsABearerTokenWithBasicCredentialsAndRenewsIt) {
  int tokens = 0, manifests = 0;
  std::string manifest = R"({"schemaVersion":2})";
  std::unique_ptr<FakeRegistry> fake;
  fake = std::make_unique<FakeRegistry>([&](const std::string& req) {
    std::string challenge = "WWW-Authenticate: Bearer realm=\"http://" + fake->host() +
                            "/token\",service=\"fake\"\r\n";
    if (starts(req, "GET /v2/ ")) return answer(401, "", challenge);
    if (starts(req, "GET /token?")) return answer(200, R"({"access_token":"tok)" + std::to_string(++tokens) + "\"}");
    if (starts(req, "GET /v2/test/img/manifests/v1 ")) {
      manifests++;
      // The first token "expires" after one use.
      if (req.find("Authorization: Bearer tok2\r\n") != std::string::npos ||
          (manifests == 1 && req.find("Authorization: Bearer tok1\r\n") != std::string::npos))
        return answer(200, manifest, "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n");
      return answer(401, R"({"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]})", challenge);
    }
    return answer(404, "");
  });
  RegistryOptions o;
  o.creds = Credentials{"user", "pw"};
  Registry reg(fake->ref(), o);
  auto m = reg.get_manifest("v1");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->bytes, manifest);
  EXPECT_EQ(m->media_type, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(m->digest, Sha256::digest_of(manifest));
  m = reg.get_manifest("v1");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(tokens, 2);
  auto reqs = fake->requests();
  ASSERT_EQ(reqs.size(), 6u);  // ping, token, manifest, manifest (401), token, manifest
  EXPECT_TRUE(starts(reqs[1], "GET /token?service=fake&scope=repository%3Atest%2Fimg%3Apull HTTP/1.1")) << reqs[1];
  EXPECT_NE(reqs[1].find("Authorization: Basic dXNlcjpwdw==\r\n"), std::string::npos);
  EXPECT_NE(reqs[2].find("Accept: application/vnd.oci.image.manifest.v1+json, "), std::string::npos);
}

TEST(RegistryAuth, ATokenRefusalIsReported) {
  std::unique_ptr<FakeRegistry> fake;
  fake = std::make_unique<FakeRegistry>([&](const std::string& req) {
    if (starts(req, "GET /token"))
      return answer(401, R"({"details":"incorrect username or password"})");
    return answer(401, "", "WWW-Authenticate: Bearer realm=\"http://" + fake->host() + "/token\"\r\n");
  });
  RegistryOptions o;
  o.creds = Credentials{"user", "wrong"};
  Registry reg(fake->ref(), o);
  auto m = reg.get_manifest("v1");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message, "pulling " + fake->host() + "/test/img: manifest v1: getting a token from " +
                                   fake->host() + ": 401 incorrect username or password");
  EXPECT_NE(m.error().hint, "");
}

TEST(RegistryAuth, NoPasswordInClearTextToAnotherHost) {
  FakeRegistry fake([](const std::string&) {
    return answer(401, "", "WWW-Authenticate: Bearer realm=\"http://auth.example.invalid/token\"\r\n");
  });
  RegistryOptions o;
  o.creds = Credentials{"user", "pw"};
  Registry reg(fake.ref(), o);
  auto m = reg.get_manifest("v1");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message, "pulling " + fake.host() +
                                   "/test/img: manifest v1: getting a token from auth.example.invalid: refusing to "
                                   "send credentials over plain HTTP");
  EXPECT_EQ(fake.requests().size(), 1u);
}

TEST(RegistryErrors, NameTheRegistryAndTheObject) {
  FakeRegistry fake([](const std::string& req) {
    if (starts(req, "GET /v2/ ")) return answer(200, "{}");
    return answer(404, R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]})");
  });
  Registry reg(fake.ref());
  auto m = reg.get_manifest("bookworm");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(m.error().message, "pulling " + fake.host() + "/test/img: manifest bookworm: 404 manifest unknown");
  auto bad = reg.get_manifest("../../etc");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ErrorKind::kUsage);
  EXPECT_EQ(fake.requests().size(), 2u);  // the ping and one manifest
}

TEST(RegistryErrors, ANonRegistryIsNamedAsSuch) {
  FakeRegistry fake([](const std::string&) { return answer(404, "<html>nothing here</html>"); });
  Registry reg(fake.ref());
  auto p = reg.ping();
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, "pulling " + fake.host() + "/test/img: /v2/: 404 x");
  EXPECT_NE(p.error().hint.find("does not serve the registry API"), std::string::npos);
}

TEST(RegistryVerify, AManifestMustMatchTheDigestAskedFor) {
  std::string digest = Sha256::digest_of("the real one");
  FakeRegistry fake([](const std::string& req) {
    if (starts(req, "GET /v2/ ")) return answer(200, "{}");
    return answer(200, R"({"mediaType":"application/vnd.oci.image.index.v1+json"})");
  });
  Registry reg(fake.ref());
  auto m = reg.get_manifest(digest);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind, ErrorKind::kBadInput);
  EXPECT_NE(m.error().message.find("manifest " + digest + ": digest mismatch (the registry sent sha256:"),
            std::string::npos)
      << m.error().message;
  // Asked by tag, the digest is computed and the media type read from the
  // document when the Content-Type says nothing useful.
  m = reg.get_manifest("latest");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->media_type, "application/vnd.oci.image.index.v1+json");
}

TEST(RegistryVerify, AManifestByTagMustMatchTheDigestTheRegistryNames) {
  std::string doc = R"({"mediaType":"application/vnd.oci.image.manifest.v1+json"})";
  std::string named = Sha256::digest_of(doc);
  FakeRegistry fake([&](const std::string& req) {
    if (starts(req, "GET /v2/ ")) return answer(200, "{}");
    return answer(200, doc, "Docker-Content-Digest: " + named + "\r\n");
  });
  Registry reg(fake.ref());
  auto m = reg.get_manifest("v1");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->digest, named);

  named = Sha256::digest_of("the document the tag should name");
  m = reg.get_manifest("v1");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind, ErrorKind::kBadInput);
  EXPECT_EQ(m.error().message, "pulling " + fake.host() +
                                   "/test/img: manifest v1: digest mismatch (the registry names it " +
                                   named + ", its bytes hash to " + Sha256::digest_of(doc) + ")");

  named = "sha512:0123";  // an algorithm togo does not check
  m = reg.get_manifest("v1");
  ASSERT_TRUE(m) << m.error().message;
}

TEST(RegistryVerify, ABlobSizeMustBeANumber) {
  std::string length = "12";
  FakeRegistry fake([&](const std::string& req) {
    if (starts(req, "GET /v2/ ")) return answer(200, "{}");
    return "HTTP/1.1 200 OK\r\nContent-Length: " + length + "\r\n\r\n";
  });
  Registry reg(fake.ref());
  std::string digest = Sha256::digest_of("twelve bytes");
  auto h = reg.head_blob(digest);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(*h, std::optional<uint64_t>(12));
  length = "12abc";
  h = reg.head_blob(digest);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().kind, ErrorKind::kBadInput);
  EXPECT_NE(h.error().message.find("blob " + digest + ": the registry gave no valid size"), std::string::npos)
      << h.error().message;
}

TEST(RegistryVerify, ABlobMustMatchItsDigest) {
  std::string good = "good content";
  FakeRegistry fake([](const std::string& req) {
    if (starts(req, "GET /v2/ ")) return answer(200, "{}");
    return answer(200, "evil content");
  });
  Registry reg(fake.ref());
  TempFile f;
  std::string digest = Sha256::digest_of(good);
  auto r = reg.fetch_blob(digest, good.size(), f.fd.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
  EXPECT_EQ(r.error().message, "pulling " + fake.host() + "/test/img: blob " + digest +
                                   ": digest mismatch (the data hashes to " + Sha256::digest_of("evil content") + ")");
  EXPECT_EQ(f.size(), 0);

  r = reg.fetch_blob(digest, 4, f.fd.get());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("more than the blob's 4 bytes"), std::string::npos) << r.error().message;
  r = reg.fetch_blob("md5:abc", std::nullopt, f.fd.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
}

TEST(RegistryVerify, APushedBlobIsHashedAsItIsSent) {
  bool registry_checks = false;
  FakeRegistry fake([&](const std::string& req) {
    if (starts(req, "GET /v2/ ")) return answer(200, "{}");
    if (starts(req, "HEAD ")) return answer(404, "");
    if (starts(req, "POST ")) return answer(202, "", "Location: /upload/1\r\n");
    if (registry_checks) return answer(400, R"({"errors":[{"code":"DIGEST_INVALID","message":"digest invalid"}]})");
    return answer(201, "");
  });
  RegistryOptions o;
  o.push = true;
  Registry reg(fake.ref(), o);
  TempFile f;
  f.write("the bytes on disk");
  std::string right = Sha256::digest_of("the bytes on disk");
  std::string sent;
  auto r = reg.push_blob(right, f.fd.get(), 17, {}, &sent);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(*r);
  EXPECT_EQ(sent, right);

  // A registry that does not check accepts anything: push_blob does not.
  std::string wrong = Sha256::digest_of("the bytes the catalog names");
  sent.clear();
  r = reg.push_blob(wrong, f.fd.get(), 17, {}, &sent);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
  EXPECT_EQ(r.error().message,
            "pushing " + fake.host() + "/test/img: blob " + wrong + ": the data sent hashes to " + right);
  EXPECT_EQ(sent, right);

  // One that checks says so, and the caller still learns what was sent.
  registry_checks = true;
  sent.clear();
  r = reg.push_blob(wrong, f.fd.get(), 17, {}, &sent);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(": 400 digest invalid"), std::string::npos) << r.error().message;
  EXPECT_EQ(sent, right);
  auto reqs = fake.requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_TRUE(starts(reqs.back(), "PUT /upload/1?digest=sha256%3A" + wrong.substr(7) + " ")) << reqs.back();
  EXPECT_EQ(reqs.back().substr(reqs.back().size() - 17), "the bytes on disk");
}

TEST(RegistryResume, ContinuesWithARangeAndRestartsWhenItIsIgnored) {
  std::string blob(300000, 'b');
  for (size_t i = 0; i < blob.size(); i++) blob[i] = static_cast<char>('a' + i % 26);
  std::string digest = Sha256::digest_of(blob);
  bool honour_range = true;
  FakeRegistry fake([&](const std::string& req) {
    if (starts(req, "GET /v2/ ")) return answer(200, "{}");
    auto r = req.find("Range: bytes=");
    if (r == std::string::npos || !honour_range) return answer(200, blob);
    size_t from = std::stoul(req.substr(r + 13));
    return answer(206, blob.substr(from),
                  "Content-Range: bytes " + std::to_string(from) + "-" + std::to_string(blob.size() - 1) + "/" +
                      std::to_string(blob.size()) + "\r\n");
  });
  Registry reg(fake.ref());
  TempFile f;
  f.write(blob.substr(0, 100000));
  std::vector<uint64_t> progress;
  auto r = reg.fetch_blob(digest, blob.size(), f.fd.get(), [&](uint64_t n) { progress.push_back(n); });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(f.content() == blob);
  ASSERT_FALSE(progress.empty());
  EXPECT_GT(progress.front(), 100000u);
  EXPECT_EQ(progress.back(), blob.size());
  EXPECT_NE(fake.requests().back().find("Range: bytes=100000-\r\n"), std::string::npos);

  // A server that ignores Range sends everything again: start over.
  honour_range = false;
  f.write(blob.substr(0, 5000));
  r = reg.fetch_blob(digest, std::nullopt, f.fd.get());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(f.content() == blob);

  // Complete already: no request at all.
  size_t before = fake.requests().size();
  r = reg.fetch_blob(digest, blob.size(), f.fd.get());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(fake.requests().size(), before);
}

TEST(RegistryResume, RetriesATransferCutShort) {
  std::string blob(200000, 'z');
  std::string digest = Sha256::digest_of(blob);
  int gets = 0;
  FakeRegistry fake([&](const std::string& req) {
    if (starts(req, "GET /v2/ ")) return answer(200, "{}");
    if (++gets == 1)  // promise everything, send half, then the server "closes"
      return "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n" + blob.substr(0, 100000);
    size_t from = std::stoul(req.substr(req.find("Range: bytes=") + 13));
    return answer(206, blob.substr(from), "Content-Range: bytes " + std::to_string(from) + "-199999/200000\r\n");
  });
  Registry reg(fake.ref());
  TempFile f;
  auto r = reg.fetch_blob(digest, blob.size(), f.fd.get());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(f.content() == blob);
  EXPECT_EQ(gets, 2);
  EXPECT_NE(fake.requests().back().find("\r\nRange: bytes=100000-\r\n"), std::string::npos)
      << "the retry asks for the rest only";
}

// ---------------------------------------------------------------------------
// Against Debian's distribution registry, with images put there by skopeo.

/// (digest, size) of each layer a manifest names.
std::vector<std::pair<std::string, uint64_t>> layers_in(const std::string& manifest) {
  std::vector<std::pair<std::string, uint64_t>> out;
  auto doc = json::parse(manifest);
  if (!doc) return out;
  if (const json::Value* layers = doc->find("layers"))
    for (const json::Value& l : layers->items()) {
      const json::Value* d = l.find("digest");
      const json::Value* n = l.find("size");
      if (d && n) out.emplace_back(d->as_string(), static_cast<uint64_t>(n->as_int()));
    }
  return out;
}

#define REQUIRE_REGISTRY()                                        \
  do {                                                            \
    std::string why_ = ::togo::test::registry_missing_reason();   \
    if (!why_.empty()) GTEST_SKIP() << why_;                      \
  } while (0)

class RealRegistry : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::registry_missing_reason().empty()) return;
    registry_ = new test::LocalRegistry();
    char tmpl[] = "/tmp/togo-oci-XXXXXX";
    work_ = new std::string(mkdtemp(tmpl));
    std::string big(3u << 20, '\0');
    for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>((i * 2654435761u) >> 13);
    image_ = new test::TestImage(test::make_oci_layout(*work_ + "/layout", "v1",
                                                       {{{"etc/hello", "hello\n"}}, {{"big.bin", big}}}));
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    if (work_) (void)fs::remove_tree(AT_FDCWD, *work_);
    delete work_;
    work_ = nullptr;
    delete image_;
    image_ = nullptr;
  }
  void SetUp() override {
    REQUIRE_REGISTRY();
    ASSERT_TRUE(registry_->ok()) << registry_->why();
    ASSERT_FALSE(image_->layout.empty());
    if (!copied_) {
      auto r = test::skopeo_copy("oci:" + image_->layout + ":v1", "docker://" + registry_->host() + "/test/img:v1");
      ASSERT_EQ(r.status, 0) << r.out << r.err;
      copied_ = true;
    }
  }
  Reference ref(const std::string& repo = "test/img", const std::string& tag = "v1") const {
    return *parse_reference(registry_->host() + "/" + repo + ":" + tag);
  }
  static test::LocalRegistry* registry_;
  static std::string* work_;
  static test::TestImage* image_;
  static bool copied_;
};
test::LocalRegistry* RealRegistry::registry_ = nullptr;
std::string* RealRegistry::work_ = nullptr;
test::TestImage* RealRegistry::image_ = nullptr;
bool RealRegistry::copied_ = false;

TEST_F(RealRegistry, PingsOverPlainHttpOnLoopback) {
  Registry reg(ref());
  auto p = reg.ping();
  ASSERT_TRUE(p) << p.error().message;

  uint16_t closed = test::free_port();
  Registry nobody(*parse_reference("127.0.0.1:" + std::to_string(closed) + "/x/y:z"));
  p = nobody.ping();
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, "pulling 127.0.0.1:" + std::to_string(closed) + "/x/y: connecting to 127.0.0.1:" +
                                   std::to_string(closed) + ": Connection refused");
}

TEST_F(RealRegistry, PullsWhatSkopeoPushed) {
  Registry reg(ref());
  auto m = reg.get_manifest("v1");
  ASSERT_TRUE(m) << m.error().message;
  auto raw = test::run_tool({"skopeo", "inspect", "--raw", "--tls-verify=false",
                             "docker://" + registry_->host() + "/test/img:v1"});
  ASSERT_EQ(raw.status, 0) << raw.err;
  EXPECT_EQ(m->bytes, raw.out);
  EXPECT_EQ(m->digest, Sha256::digest_of(raw.out));
  EXPECT_EQ(m->media_type, "application/vnd.oci.image.manifest.v1+json");

  auto by_digest = reg.get_manifest(m->digest);
  ASSERT_TRUE(by_digest) << by_digest.error().message;
  EXPECT_EQ(by_digest->bytes, m->bytes);

  auto layers = layers_in(m->bytes);
  ASSERT_EQ(layers.size(), 2u);
  for (size_t i = 0; i < layers.size(); i++) {
    auto size = reg.head_blob(layers[i].first);
    ASSERT_TRUE(size) << size.error().message;
    ASSERT_TRUE(*size);
    EXPECT_EQ(**size, layers[i].second);
    TempFile f;
    uint64_t last = 0;
    auto r = reg.fetch_blob(layers[i].first, layers[i].second, f.fd.get(), [&](uint64_t n) { last = n; });
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(last, layers[i].second);
    EXPECT_EQ(Sha256::digest_of(f.content()), layers[i].first);  // skopeo compressed them on the way
    EXPECT_EQ(f.size(), static_cast<off_t>(layers[i].second));
  }
}

TEST_F(RealRegistry, ResumesAPartialBlob) {
  Registry reg(ref());
  auto m = reg.get_manifest("v1");
  ASSERT_TRUE(m) << m.error().message;
  auto layers = layers_in(m->bytes);
  ASSERT_EQ(layers.size(), 2u);
  std::string digest = layers[1].first;
  std::string blob;
  {
    TempFile whole;
    ASSERT_TRUE(reg.fetch_blob(digest, layers[1].second, whole.fd.get()));
    blob = whole.content();
  }
  ASSERT_GT(blob.size(), 100000u);
  TempFile f;
  f.write(blob.substr(0, blob.size() / 3));
  uint64_t first = 0;
  auto r = reg.fetch_blob(digest, blob.size(), f.fd.get(), [&](uint64_t n) {
    if (!first) first = n;
  });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(f.content() == blob);
  EXPECT_GT(first, blob.size() / 3);

  // A partial download that is wrong is caught, dropped, and the next try
  // starts clean.
  std::string wrong = blob.substr(0, 1000);
  wrong[10] ^= 1;
  f.write(wrong);
  r = reg.fetch_blob(digest, blob.size(), f.fd.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
  EXPECT_NE(r.error().message.find("blob " + digest + ": digest mismatch"), std::string::npos);
  EXPECT_EQ(f.size(), 0);
  r = reg.fetch_blob(digest, blob.size(), f.fd.get());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(f.content() == blob);
}

TEST_F(RealRegistry, UnknownObjectsAreNotFound) {
  Registry reg(ref());
  std::string missing = Sha256::digest_of("not in the registry");
  auto m = reg.get_manifest("nope");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(m.error().message, "pulling " + registry_->host() + "/test/img: manifest nope: 404 manifest unknown");
  m = reg.get_manifest(missing);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind, ErrorKind::kNotFound);
  auto h = reg.head_blob(missing);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_FALSE(*h);
  TempFile f;
  auto b = reg.fetch_blob(missing, std::nullopt, f.fd.get());
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(b.error().message.rfind("pulling " + registry_->host() + "/test/img: blob " + missing + ": 404 ", 0), 0u)
      << b.error().message;
}

TEST_F(RealRegistry, PushesBlobsAndAManifestThatSkopeoReads) {
  RegistryOptions o;
  o.push = true;
  Registry reg(ref("test/pushed", "v2"), o);
  auto push_file = [&](const std::string& data) -> Result<bool> {
    TempFile f;
    f.write(data);
    return reg.push_blob(Sha256::digest_of(data), f.fd.get(), data.size());
  };
  std::string config = *fs::read_file(AT_FDCWD, image_->layout + "/blobs/sha256/" + image_->config_digest.substr(7));
  for (const std::string& data : {image_->layers[0], image_->layers[1], config}) {
    auto r = push_file(data);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(*r);
  }
  auto again = push_file(image_->layers[0]);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(*again);  // already there

  auto d = reg.put_manifest("v2", image_->manifest, "application/vnd.oci.image.manifest.v1+json");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(*d, image_->manifest_digest);
  auto raw = test::run_tool({"skopeo", "inspect", "--raw", "--tls-verify=false",
                             "docker://" + registry_->host() + "/test/pushed:v2"});
  ASSERT_EQ(raw.status, 0) << raw.err;
  EXPECT_EQ(raw.out, image_->manifest);
  auto cfg = test::run_tool({"skopeo", "inspect", "--config", "--raw", "--tls-verify=false",
                             "docker://" + registry_->host() + "/test/pushed:v2"});
  ASSERT_EQ(cfg.status, 0) << cfg.err;
  EXPECT_EQ(cfg.out, config);

  // A blob whose bytes do not match the digest is refused by the registry.
  TempFile f;
  f.write("some bytes");
  auto wrong = reg.push_blob(Sha256::digest_of("other bytes"), f.fd.get(), 10);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().message.rfind("pushing " + registry_->host() + "/test/pushed: blob sha256:", 0), 0u)
      << wrong.error().message;
  EXPECT_NE(wrong.error().message.find(": 400 "), std::string::npos) << wrong.error().message;
}

TEST(RealRegistryAuth, BasicAuthWithAndWithoutCredentials) {
  REQUIRE_REGISTRY();
  test::LocalRegistry registry(test::LocalRegistry::Options{.basic_auth = true});
  ASSERT_TRUE(registry.ok()) << registry.why();
  char tmpl[] = "/tmp/togo-oci-XXXXXX";
  std::string work = mkdtemp(tmpl);
  auto image = test::make_oci_layout(work + "/layout", "v1", {{{"a", "b"}}});
  ASSERT_FALSE(image.layout.empty());
  std::string creds = std::string(test::kRegistryUser) + ":" + test::kRegistryPassword;
  auto copied = test::skopeo_copy("oci:" + image.layout + ":v1", "docker://" + registry.host() + "/auth/img:v1", creds);
  (void)fs::remove_tree(AT_FDCWD, work);
  ASSERT_EQ(copied.status, 0) << copied.out << copied.err << registry.log();
  Reference ref = *parse_reference(registry.host() + "/auth/img:v1");

  RegistryOptions o;
  o.creds = *parse_creds(creds);
  Registry with(ref, o);
  auto m = with.get_manifest("v1");
  ASSERT_TRUE(m) << m.error().message;
  auto layers = layers_in(m->bytes);
  ASSERT_EQ(layers.size(), 1u);
  TempFile f;
  auto b = with.fetch_blob(layers[0].first, layers[0].second, f.fd.get());
  ASSERT_TRUE(b) << b.error().message;

  Registry without(ref);
  m = without.get_manifest("v1");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message.rfind("pulling " + registry.host() + "/auth/img: manifest v1: 401 ", 0), 0u)
      << m.error().message;
  EXPECT_NE(m.error().hint.find("--creds"), std::string::npos);

  o.creds = Credentials{test::kRegistryUser, "wrong"};
  Registry wrong(ref, o);
  m = wrong.get_manifest("v1");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find(": 401 "), std::string::npos) << m.error().message;
}

}  // namespace
}  // namespace togo::image
