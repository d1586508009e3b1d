// Test helper, header-only (its name does not end in _test.cc, so neither the
// test glob nor the library glob picks it up): a tiny in-process HTTP server
// for the tests of the HTTP client and of the registry client. One thread,
// one connection at a time; requests are read as far as their
// Content-Length and recorded; a handler writes each answer raw.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/fd.h"

namespace togo::image::http {

/// A self-signed certificate for "localhost" and its key, made once.
struct TestCert {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  std::string pem_path;
};

inline const TestCert& test_cert() {
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

/// Serves on 127.0.0.1 at a free port until destroyed; with `tls`, HTTPS
/// with test_cert().
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

}  // namespace togo::image::http
