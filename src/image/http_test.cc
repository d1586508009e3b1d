#include "image/http.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "base/fd.h"
#include "image/http_test_util.h"

namespace togo::image::http {
namespace {

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
                              "HTTP/1.1 200 OK\r\nX: " + std::string(20000, 'a') + "\r\n\r\n",
                              [] {  // interim answers without end
                                std::string s;
                                for (int i = 0; i < 50; i++) s += "HTTP/1.1 100 Continue\r\n\r\n";
                                return s + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                              }(),
                              "HTTP/1.1 302 Found\r\nLocation: /x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "20000\r\n" + std::string(0x20000, 'a') + "\r\n0\r\n\r\n"}) {
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

TEST(Client, ShowsTheBodyAsItGoesOutAgainAfterARedirect) {
  char path[] = "/tmp/togo-http-body-XXXXXX";
  Fd fd(mkstemp(path));
  ::unlink(path);
  std::string data(150000, 'r');
  data.replace(0, 5, "BEGIN");
  ASSERT_EQ(::write(fd.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  TestServer s([](const ServerConn& c, const std::string& req) {
    if (req.find("PUT /first ") == 0)
      c.write("HTTP/1.1 307 Temporary Redirect\r\nLocation: /second\r\nContent-Length: 0\r\n\r\n");
    else
      c.write("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    return true;
  });
  Client c(quick());
  Request req = get(s.url("/first"));
  req.method = "PUT";
  req.file_body = FileBody{fd.get(), 0, data.size()};
  std::string seen;
  int starts = 0;
  req.on_body_sent = [&](uint64_t offset, std::string_view part) {
    if (offset == 0) {
      starts++;
      seen.clear();
    }
    EXPECT_EQ(offset, seen.size());
    seen.append(part);
  };
  auto r = c.send(req);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(starts, 2) << "sent twice: once to each URL";
  EXPECT_TRUE(seen == data);
  ASSERT_EQ(s.requests().size(), 2u);
  EXPECT_EQ(s.requests()[1].substr(0, 13), "PUT /second H");

  Request small = get(s.url("/second"));
  small.method = "PUT";
  small.body = "in memory";
  seen.clear();
  small.on_body_sent = req.on_body_sent;
  ASSERT_TRUE(c.send(small));
  EXPECT_EQ(seen, "in memory");
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
