#include "image/http.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"

namespace togo::image::http {
namespace {

// ---------------------------------------------------------------------------
// A tiny in-process server: one thread, one connection at a time, requests
// read as far as their Content-Length, answers written raw by a handler.

/// A self-signed certificate for "localhost" and its key, made once.
struct TestCert {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  std::string pem_path;
};

const TestCert& test_cert() {
  static TestCert tc = [] {
    TestCert t;
    t.key = EVP_EC_gen("P-256");
    t.cert = X509_new();
    X509_set_version(t.cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(t.cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(t.cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(t.cert), 3600 * 24);
    X509_set_pubkey(t.cert, t.key);
    X509_NAME* name = X509_get_subject_name(t.cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1,
                               -1, 0);
    X509_set_issuer_name(t.cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, t.cert, t.cert, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost"},
                              std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(t.cert, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(t.cert, t.key, EVP_sha256());
    char path[] = "/tmp/togo-http-test-ca-XXXXXX";
    int fd = mkstemp(path);
    FILE* f = fdopen(fd, "w");
    PEM_write_X509(f, t.cert);
    fclose(f);
    t.pem_path = path;
    return t;
  }();
  return tc;
}

struct ServerConn {
  int fd;
  SSL* ssl = nullptr;

  /// Writes all of `s`; false if the client has gone.
  bool write(std::string_view s) const {
    while (!s.empty()) {
      ssize_t n = ssl ? SSL_write(ssl, s.data(), static_cast<int>(s.size()))
                      : ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  ssize_t read(char* buf, size_t n) const {
    return ssl ? SSL_read(ssl, buf, static_cast<int>(n)) : ::recv(fd, buf, n, 0);
  }
};

class TestServer {
 public:
  /// Answers one request; returns false to close the connection after it.
  using Handler = std::function<bool(const ServerConn&, const std::string& request)>;

  explicit TestServer(Handler h, bool tls = false) : handler_(std::move(h)) {
    listen_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(listen_.get(), 8);
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    stop_r_.reset(p[0]);
    stop_w_.reset(p[1]);
    if (tls) {
      ctx_ = SSL_CTX_new(TLS_server_method());
      SSL_CTX_use_certificate(ctx_, test_cert().cert);
      SSL_CTX_use_PrivateKey(ctx_, test_cert().key);
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~TestServer() {
    ssize_t ignored = ::write(stop_w_.get(), "x", 1);
    (void)ignored;
    thread_.join();
    if (ctx_) SSL_CTX_free(ctx_);
  }

  uint16_t port() const { return port_; }
  std::string url(const std::string& path, const std::string& host = "127.0.0.1") const {
    return std::string(ctx_ ? "https" : "http") + "://" + host + ":" + std::to_string(port_) + path;
  }
  std::vector<std::string> requests() {
    std::lock_guard l(mu_);
    return requests_;
  }
  int connections() const { return connections_; }

 private:
  void serve() {
    for (;;) {
      struct pollfd p[2] = {{listen_.get(), POLLIN, 0}, {stop_r_.get(), POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 || p[1].revents) return;
      Fd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c.valid()) continue;
      connections_++;
      struct timeval tv = {5, 0};  // never hang the test on a client bug
      ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ServerConn sc{c.get()};
      if (ctx_) {
        sc.ssl = SSL_new(ctx_);
        SSL_set_fd(sc.ssl, c.get());
        if (SSL_accept(sc.ssl) != 1) {
          SSL_free(sc.ssl);
          continue;
        }
      }
      std::string buf;
      for (;;) {
        auto req = read_request(sc, buf);
        if (!req) break;
        {
          std::lock_guard l(mu_);
          requests_.push_back(*req);
        }
        if (!handler_(sc, *req)) break;
      }
      if (sc.ssl) {
        SSL_shutdown(sc.ssl);
        SSL_free(sc.ssl);
      }
    }
  }

  static std::optional<std::string> read_request(const ServerConn& c, std::string& buf) {
    char tmp[4096];
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = c.read(tmp, sizeof tmp);
      if (n <= 0) return std::nullopt;
      buf.append(tmp, static_cast<size_t>(n));
    }
    size_t want = end + 4;
    auto cl = buf.substr(0, end).find("Content-Length: ");
    if (cl != std::string::npos) want += std::stoul(buf.substr(cl + 16));
    while (buf.size() < want) {
      ssize_t n = c.read(tmp, sizeof tmp);
      if (n <= 0) return std::nullopt;
      buf.append(tmp, static_cast<size_t>(n));
    }
    std::string req = buf.substr(0, want);
    buf.erase(0, want);
    return req;
  }

  Handler handler_;
  Fd listen_, stop_r_, stop_w_;
  uint16_t port_ = 0;
  SSL_CTX* ctx_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::atomic<int> connections_ = 0;
};

/// A handler that always writes `answer` and keeps the connection.
TestServer::Handler answer(std::string text, bool keep = true) {
  return [text, keep](const ServerConn& c, const std::string&) {
    c.write(text);
    return keep;
  };
}

Request get(const std::string& url) {
  Request r;
  r.url = *parse_url(url);
  return r;
}

ClientOptions quick() {
  ClientOptions o;
  o.connect_timeout_s = 2;
  o.idle_timeout_s = 2;
  return o;
}

// ---------------------------------------------------------------------------

TEST(ParseUrl, SplitsTheParts) {
  auto u = parse_url("https://Registry-1.Docker.io/v2/library/debian/manifests/bookworm?x=1#frag");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "registry-1.docker.io");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/v2/library/debian/manifests/bookworm?x=1");
  EXPECT_EQ(u->authority(), "registry-1.docker.io");
  EXPECT_EQ(u->endpoint(), "registry-1.docker.io:443");

  u = parse_url("http://127.0.0.1:5000");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 5000);
  EXPECT_EQ(u->target, "/");
  EXPECT_EQ(u->authority(), "127.0.0.1:5000");
  EXPECT_EQ(u->str(), "http://127.0.0.1:5000/");

  u = parse_url("http://[::1]:8080/v2/?q");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->authority(), "[::1]:8080");
  EXPECT_EQ(u->target, "/v2/?q");

  u = parse_url("http://[fe80::1]");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->authority(), "[fe80::1]");

  u = parse_url("http://h?a=b");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->target, "/?a=b");

  u = parse_url("http://h/a b\xc3\xa9");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->target, "/a%20b%C3%A9");
}

TEST(ParseUrl, RefusesWhatItCannotUse) {
  for (const char* bad : {"ftp://h/", "h/x", "https://", "https://:443/", "https://user:pw@h/", "http://h:0/",
                          "http://h:65536/", "http://h:x/", "http://h:/", "http://[::1/", "http://[zz]/",
                          "http://[::1]x/", "http://h\r\nX: y/", "http://h/\x01", "http://ho st/"}) {
    auto u = parse_url(bad);
    EXPECT_FALSE(u) << bad;
    if (!u) {
      EXPECT_EQ(u.error().kind, ErrorKind::kBadInput) << bad;
    }
  }
}

TEST(ResolveUrl, HandlesEveryLocationForm) {
  Url base = *parse_url("https://reg.example:5000/v2/repo/blobs/uploads/?x=1");
  EXPECT_EQ(resolve_url(base, "https://cdn.example/blob?sig=1")->str(), "https://cdn.example/blob?sig=1");
  EXPECT_EQ(resolve_url(base, "//other:99/p")->str(), "https://other:99/p");
  EXPECT_EQ(resolve_url(base, "/v2/repo/blobs/uploads/abc?_state=s")->str(),
            "https://reg.example:5000/v2/repo/blobs/uploads/abc?_state=s");
  EXPECT_EQ(resolve_url(base, "abc")->str(), "https://reg.example:5000/v2/repo/blobs/uploads/abc");
  EXPECT_EQ(resolve_url(base, "?y=2")->str(), "https://reg.example:5000/v2/repo/blobs/uploads/?y=2");
  EXPECT_FALSE(resolve_url(base, "gopher://x/"));
}

TEST(Headers, LookUpIgnoringCase) {
  Headers h;
  h.add("Content-Type", "a");
  h.add("WWW-Authenticate", "Bearer x");
  h.add("www-authenticate", "Basic y");
  EXPECT_EQ(*h.get("content-type"), "a");
  EXPECT_EQ(h.get("Content-Length"), nullptr);
  EXPECT_EQ(h.get_all("Www-Authenticate"), (std::vector<std::string>{"Bearer x", "Basic y"}));
  h.set("CONTENT-TYPE", "b");
  EXPECT_EQ(*h.get("Content-Type"), "b");
  EXPECT_EQ(h.fields().size(), 3u);
  h.remove("www-AUTHENTICATE");
  EXPECT_EQ(h.fields().size(), 1u);
}

TEST(CaBundles, EnvironmentComesFirst) {
  setenv("SSL_CERT_FILE", "/x/cert.pem", 1);
  auto c = ca_bundle_candidates();
  unsetenv("SSL_CERT_FILE");
  ASSERT_FALSE(c.empty());
  EXPECT_EQ(c.front(), "/x/cert.pem");
  EXPECT_NE(std::find(c.begin(), c.end(), "/etc/ssl/certs/ca-certificates.crt"), c.end());
  EXPECT_EQ(c.back(), "/etc/ssl/certs");
}

TEST(Client, ReadsAContentLengthBody) {
  TestServer s(answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"));
  Client c(quick());
  auto r = c.send(get(s.url("/v2/")));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->reason, "OK");
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(*r->headers.get("content-type"), "text/plain");
  auto reqs = s.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].substr(0, reqs[0].find("\r\n")), "GET /v2/ HTTP/1.1");
  EXPECT_NE(reqs[0].find("\r\nHost: 127.0.0.1:" + std::to_string(s.port()) + "\r\n"), std::string::npos);
  EXPECT_NE(reqs[0].find("\r\nUser-Agent: togo/"), std::string::npos);
}

TEST(Client, ReadsAChunkedBodyWithExtensionsAndTrailers) {
  TestServer s(answer(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n"));
  Client c(quick());
  auto r = c.send(get(s.url("/")));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "hello 0123456789");
  // The connection stays usable: the next request reuses it.
  auto again = c.send(get(s.url("/")));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->body, "hello 0123456789");
  EXPECT_EQ(s.connections(), 1);
}

TEST(Client, ReadsUntilCloseWithoutFraming) {
  TestServer s(answer("HTTP/1.0 200 OK\r\n\r\nall of it", false));
  Client c(quick());
  auto r = c.send(get(s.url("/")));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "all of it");
}

TEST(Client, StreamsSuccessToTheSinkAndCollectsErrors) {
  TestServer s([](const ServerConn& c, const std::string& req) {
    if (req.find("GET /ok ") == 0) c.write("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstream");
    else c.write("HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nmissing");
    return true;
  });
  Client c(quick());
  std::string got;
  Sink sink = [&](std::string_view part) -> Result<void> {
    got.append(part);
    return {};
  };
  auto r = c.send(get(s.url("/ok")), sink);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(got, "stream");
  EXPECT_EQ(r->body, "");
  got.clear();
  r = c.send(get(s.url("/nope")), sink);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(got, "");
  EXPECT_EQ(r->body, "missing");
}

TEST(Client, SinkErrorStopsTheTransfer) {
  TestServer s(answer("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstream"));
  Client c(quick());
  auto r = c.send(get(s.url("/")), [](std::string_view) -> Result<void> { return error("disk full"); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "disk full");
}

TEST(Client, CapsCollectedBodies) {
  TestServer s(answer("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x')));
  ClientOptions o = quick();
  o.max_body = 10;
  Client c(o);
  auto r = c.send(get(s.url("/")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
  EXPECT_NE(r.error().message.find("body larger than 10 bytes"), std::string::npos) << r.error().message;
}

TEST(Client, FollowsRedirectsAndDropsAuthorizationAcrossOrigins) {
  TestServer other(answer("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nblob"));
  std::string target = other.url("/blob?sig=abc");
  TestServer s([&](const ServerConn& c, const std::string& req) {
    if (req.find("GET /a ") == 0) c.write("HTTP/1.1 302 Found\r\nLocation: b\r\nContent-Length: 3\r\n\r\nxyz");
    else c.write("HTTP/1.1 307 Temporary Redirect\r\nLocation: " + target + "\r\nContent-Length: 0\r\n\r\n");
    return true;
  });
  Client c(quick());
  Request req = get(s.url("/a"));
  req.headers.add("Authorization", "Bearer secret");
  auto r = c.send(req);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "blob");
  EXPECT_EQ(r->url.str(), target);
  auto first = s.requests();
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[1].substr(0, 7), "GET /b ");
  EXPECT_NE(first[1].find("Authorization: Bearer secret"), std::string::npos);
  auto second = other.requests();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].substr(0, 19), "GET /blob?sig=abc H");
  EXPECT_EQ(second[0].find("Authorization"), std::string::npos);
}

TEST(Client, SeeOtherTurnsAPostIntoAGet) {
  TestServer s([](const ServerConn& c, const std::string& req) {
    if (req.find("POST") == 0) c.write("HTTP/1.1 303 See Other\r\nLocation: /done\r\nContent-Length: 0\r\n\r\n");
    else c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    return true;
  });
  Client c(quick());
  Request req = get(s.url("/upload"));
  req.method = "POST";
  req.body = "payload";
  auto r = c.send(req);
  ASSERT_TRUE(r) << r.error().message;
  auto reqs = s.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_NE(reqs[0].find("Content-Length: 7\r\n\r\npayload"), std::string::npos);
  EXPECT_EQ(reqs[1].substr(0, 10), "GET /done ");
  EXPECT_EQ(reqs[1].find("payload"), std::string::npos);
}

TEST(Client, GivesUpOnRedirectLoops) {
  TestServer s(answer("HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n"));
  ClientOptions o = quick();
  o.max_redirects = 3;
  Client c(o);
  auto r = c.send(get(s.url("/")));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("more than 3 redirects"), std::string::npos) << r.error().message;
  EXPECT_EQ(s.requests().size(), 4u);
  c = Client(o);  // the test server serves one connection at a time

  o.max_redirects = 0;
  Client plain(o);
  r = plain.send(get(s.url("/")));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 302);
}

TEST(Client, AStalledServerTimesOut) {
  TestServer s([](const ServerConn& c, const std::string&) {
    c.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");  // then nothing
    return true;
  });
  ClientOptions o = quick();
  o.idle_timeout_s = 1;
  Client c(o);
  auto start = std::chrono::steady_clock::now();
  auto r = c.send(get(s.url("/")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "reading from 127.0.0.1:" + std::to_string(s.port()) + ": timed out after 1 s");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(Client, SilenceBeforeTheAnswerTimesOut) {
  TestServer s([](const ServerConn&, const std::string&) { return true; });
  ClientOptions o = quick();
  o.idle_timeout_s = 1;
  Client c(o);
  auto r = c.send(get(s.url("/")));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("timed out after 1 s"), std::string::npos) << r.error().message;
}

TEST(Client, GarbageAnswersAreBadInput) {
  for (std::string garbage : std::vector<std::string>{"SSH-2.0-OpenSSH_9.2\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/2 200\r\n\r\n",
                              "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                              "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
                              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n0\r\n\r\n",
                              "HTTP/1.1 200 OK\r\nX: " + std::string(20000, 'a') + "\r\n\r\n"}) {
    TestServer s(answer(garbage, false));
    Client c(quick());
    auto r = c.send(get(s.url("/")));
    std::string what = garbage.substr(0, 80);
    ASSERT_FALSE(r) << what;
    EXPECT_EQ(r.error().kind, ErrorKind::kBadInput) << what << " -> " << r.error().message;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.rfind("answer from 127.0.0.1:", 0), 0u) << r.error().message;
  }
}

TEST(Client, ATruncatedBodyIsAnError) {
  TestServer s(answer("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", false));
  Client c(quick());
  auto r = c.send(get(s.url("/")));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("body truncated after 9 of 100 bytes"), std::string::npos)
      << r.error().message;

  TestServer chunked(answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", false));
  r = c.send(get(chunked.url("/")));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("truncated"), std::string::npos) << r.error().message;
}

TEST(Client, RetriesOnceWhenAnIdleConnectionWasClosed) {
  // Keep-alive promised, then closed: the second request must go out again
  // on a new connection.
  TestServer s(answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false));
  Client c(quick());
  ASSERT_TRUE(c.send(get(s.url("/"))));
  auto r = c.send(get(s.url("/")));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "ok");
  EXPECT_EQ(s.connections(), 2);
}

TEST(Client, SendsAFileBodyWithProgress) {
  char path[] = "/tmp/togo-http-body-XXXXXX";
  Fd fd(mkstemp(path));
  ::unlink(path);
  std::string data(200000, 'q');
  data.replace(0, 5, "START");
  ASSERT_EQ(::write(fd.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  TestServer s(answer("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"));
  Client c(quick());
  Request req = get(s.url("/put?digest=sha256:x"));
  req.method = "PUT";
  req.file_body = FileBody{fd.get(), 5, data.size() - 5};
  uint64_t last = 0;
  req.upload_progress = [&](uint64_t n) { last = n; };
  auto r = c.send(req);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(last, data.size() - 5);
  auto reqs = s.requests();
  ASSERT_EQ(reqs.size(), 1u);
  std::string sent = reqs[0].substr(reqs[0].find("\r\n\r\n") + 4);
  EXPECT_EQ(sent, data.substr(5));
  EXPECT_NE(reqs[0].find("Content-Length: " + std::to_string(data.size() - 5) + "\r\n"), std::string::npos);
}

TEST(Client, RefusesLineBreaksInHeaders) {
  Client c(quick());
  Request req = get("http://127.0.0.1:1/");
  req.headers.add("Authorization", "Bearer x\r\nEvil: 1");
  auto r = c.send(req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kBadInput);
}

TEST(Client, ConnectionRefusedNamesTheEndpoint) {
  uint16_t port;
  {
    TestServer s(answer(""));
    port = s.port();
  }
  Client c(quick());
  auto r = c.send(get("http://127.0.0.1:" + std::to_string(port) + "/"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "connecting to 127.0.0.1:" + std::to_string(port) + ": Connection refused");
}

TEST(Tls, VerifiesThePeerAgainstTheGivenCa) {
  TestServer s(answer("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure"), true);
  ClientOptions o = quick();
  o.ca_file = test_cert().pem_path;
  Client c(o);
  auto r = c.send(get(s.url("/", "localhost")));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "secure");
  r = c.send(get(s.url("/", "localhost")));  // reuses the TLS connection
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(s.connections(), 1);
}

TEST(Tls, SslCertFileIsHonoured) {
  TestServer s(answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), true);
  setenv("SSL_CERT_FILE", test_cert().pem_path.c_str(), 1);
  Client c(quick());
  auto r = c.send(get(s.url("/", "localhost")));
  unsetenv("SSL_CERT_FILE");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "ok");
}

TEST(Tls, RefusesAnUnknownCertificate) {
  TestServer s(answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), true);
  Client c(quick());  // the host's CAs do not include the test certificate
  auto r = c.send(get(s.url("/", "localhost")));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("TLS handshake with localhost:" + std::to_string(s.port()) +
                                   ": certificate verify failed"),
            std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().hint.find("SSL_CERT_FILE"), std::string::npos);
}

TEST(Tls, RefusesAHostNameMismatch) {
  TestServer s(answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), true);
  ClientOptions o = quick();
  o.ca_file = test_cert().pem_path;
  Client c(o);
  auto r = c.send(get(s.url("/", "127.0.0.1")));  // the certificate names only "localhost"
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("certificate verify failed: "), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("mismatch"), std::string::npos) << r.error().message;

  o.verify_tls = false;
  Client insecure(o);
  auto ok = insecure.send(get(s.url("/", "127.0.0.1")));
  ASSERT_TRUE(ok) << ok.error().message;
}

TEST(Tls, PlainHttpServerGivesAClearError) {
  TestServer s(answer("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", false));
  ClientOptions o = quick();
  o.connect_timeout_s = 1;
  Client c(o);
  auto r = c.send(get("https://127.0.0.1:" + std::to_string(s.port()) + "/"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.rfind("TLS handshake with 127.0.0.1:", 0), 0u) << r.error().message;
}

}  // namespace
}  // namespace togo::image::http
