#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "image/http_internal.h"

namespace togo::image::http {
namespace {

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

/// "<what>: timed out after N s", with ETIMEDOUT so callers can tell.
std::unexpected<Error> timed_out(const std::string& what, int seconds) {
  auto e = error((what.empty() ? "" : what + ": ") + "timed out after " + std::to_string(seconds) + " s");
  e.error().err = ETIMEDOUT;
  return e;
}

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the
// peer has gone; this one uses send(MSG_NOSIGNAL) so a dead peer is an error.
struct BioState {
  int fd;
  bool eof = false;
};

int bio_write(BIO* b, const char* data, size_t n, size_t* written) {
  auto* st = static_cast<BioState*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  ssize_t r = ::send(st->fd, data, n, MSG_NOSIGNAL);
  if (r >= 0) {
    *written = static_cast<size_t>(r);
    return 1;
  }
  if (errno == EAGAIN || errno == EINTR) BIO_set_retry_write(b);
  return 0;
}

int bio_read(BIO* b, char* data, size_t n, size_t* got) {
  auto* st = static_cast<BioState*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  ssize_t r = ::recv(st->fd, data, n, 0);
  if (r > 0) {
    *got = static_cast<size_t>(r);
    return 1;
  }
  if (r == 0) st->eof = true;
  else if (errno == EAGAIN || errno == EINTR) BIO_set_retry_read(b);
  return 0;
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
  if (cmd == BIO_CTRL_FLUSH) return 1;
  if (cmd == BIO_CTRL_EOF) return static_cast<BioState*>(BIO_get_data(b))->eof ? 1 : 0;
  return 0;
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

int bio_destroy(BIO* b) {
  delete static_cast<BioState*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "togo socket");
    BIO_meth_set_write_ex(m, bio_write);
    BIO_meth_set_read_ex(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    BIO_meth_set_destroy(m, bio_destroy);
    return m;
  }();
  return method;
}

/// The reason for the last TLS failure, from the verification result or
/// OpenSSL's error queue.
std::string tls_reason(SSL* ssl, int ret) {
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
  unsigned long e = ERR_peek_last_error();
  if (e != 0) {
    const char* r = ERR_reason_error_string(e);
    return r ? r : "TLS error";
  }
  if (SSL_get_error(ssl, ret) == SSL_ERROR_SYSCALL && errno != 0) return strerror(errno);
  return "connection closed by peer";
}

/// connect(2) on a non-blocking socket, waiting at most `timeout_s`.
Result<Fd> connect_one(const struct addrinfo* ai, int timeout_s) {
  Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
  if (!fd.valid()) return sys_error(errno, "socket");
  if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) return sys_error(errno, "connect");
    struct pollfd p = {fd.get(), POLLOUT, 0};
    int r;
    do r = ::poll(&p, 1, timeout_s * 1000);
    while (r < 0 && errno == EINTR);
    if (r == 0) return timed_out("", timeout_s);
    if (r < 0) return sys_error(errno, "poll");
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return sys_error(errno, "getsockopt");
    if (err != 0) return sys_error(err, "connect");
  }
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

Result<size_t> Conn::read(char* buf, size_t n) {
  for (;;) {
    if (!ssl_) {
      ssize_t r = ::recv(fd_.get(), buf, n, 0);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return sys_error(errno, "reading from " + endpoint_);
      TRY(wait(POLLIN, "reading from ", idle_s_));
      continue;
    }
    ERR_clear_error();
    int r = SSL_read(ssl_.get(), buf, static_cast<int>(std::min<size_t>(n, 1 << 30)));
    if (r > 0) return static_cast<size_t>(r);
    switch (SSL_get_error(ssl_.get(), r)) {
      case SSL_ERROR_ZERO_RETURN: return 0;
      case SSL_ERROR_WANT_READ: TRY(wait(POLLIN, "reading from ", idle_s_)); break;
      case SSL_ERROR_WANT_WRITE: TRY(wait(POLLOUT, "reading from ", idle_s_)); break;
      default: return error("reading from " + endpoint_ + ": " + tls_reason(ssl_.get(), r));
    }
  }
}

Result<void> Conn::write(std::string_view data) {
  while (!data.empty()) {
    if (!ssl_) {
      ssize_t r = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (r >= 0) {
        data.remove_prefix(static_cast<size_t>(r));
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return sys_error(errno, "sending to " + endpoint_);
      TRY(wait(POLLOUT, "sending to ", idle_s_));
      continue;
    }
    ERR_clear_error();
    size_t written = 0;
    int r = SSL_write_ex(ssl_.get(), data.data(), data.size(), &written);
    if (r > 0) {
      data.remove_prefix(written);
      continue;
    }
    switch (SSL_get_error(ssl_.get(), r)) {
      case SSL_ERROR_WANT_READ: TRY(wait(POLLIN, "sending to ", idle_s_)); break;
      case SSL_ERROR_WANT_WRITE: TRY(wait(POLLOUT, "sending to ", idle_s_)); break;
      default: return error("sending to " + endpoint_ + ": " + tls_reason(ssl_.get(), r));
    }
  }
  return {};
}

Result<void> Conn::wait(short events, const char* what, int timeout_s) {
  struct pollfd p = {fd_.get(), events, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_s * 1000);
    if (r > 0) return {};
    if (r == 0) return timed_out(what + endpoint_, timeout_s);
    if (errno != EINTR) return sys_error(errno, "poll");
  }
}

Result<Conn> Conn::open(const Url& url, SSL_CTX* ctx, const ClientOptions& o) {
  std::string endpoint = url.endpoint();
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  std::string port = std::to_string(url.port);
  int rc = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    std::string why = rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
    return error("resolving " + url.host + ": " + why);
  }
  std::unique_ptr<struct addrinfo, decltype(&::freeaddrinfo)> owned(res, ::freeaddrinfo);
  std::string last = "no address";
  for (auto* ai = res; ai; ai = ai->ai_next) {
    auto fd = connect_one(ai, o.connect_timeout_s);
    if (!fd) {
      last = fd.error().message;
      // "connect: Connection refused" reads better as "Connection refused".
      if (last.rfind("connect: ", 0) == 0) last = last.substr(9);
      continue;
    }
    Conn c(std::move(*fd), endpoint, o.idle_timeout_s);
    if (url.tls()) TRY(c.handshake(url, ctx, o));
    return c;
  }
  return error("connecting to " + endpoint + ": " + last);
}

Result<void> Conn::handshake(const Url& url, SSL_CTX* ctx, const ClientOptions& o) {
  std::string what = "TLS handshake with " + endpoint_;
  ssl_.reset(SSL_new(ctx));
  if (!ssl_) return error(what + ": SSL_new failed");
  BIO* bio = BIO_new(socket_bio_method());
  if (!bio) return error(what + ": BIO_new failed");
  BIO_set_data(bio, new BioState{fd_.get()});
  SSL_set_bio(ssl_.get(), bio, bio);
  bool ip = is_ip_literal(url.host);
  // SNI carries names only, never addresses (RFC 6066).
  if (!ip) SSL_set_tlsext_host_name(ssl_.get(), url.host.c_str());
  if (o.verify_tls) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str())
                : X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
    if (ok != 1) return error(what + ": cannot check the certificate against " + url.host);
    SSL_set_verify(ssl_.get(), SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_set_verify(ssl_.get(), SSL_VERIFY_NONE, nullptr);
  }
  for (;;) {
    ERR_clear_error();
    int r = SSL_connect(ssl_.get());
    if (r == 1) return {};
    switch (SSL_get_error(ssl_.get(), r)) {
      case SSL_ERROR_WANT_READ: TRY(wait(POLLIN, "TLS handshake with ", o.connect_timeout_s)); break;
      case SSL_ERROR_WANT_WRITE: TRY(wait(POLLOUT, "TLS handshake with ", o.connect_timeout_s)); break;
      default: {
        std::string why = tls_reason(ssl_.get(), r);
        if (SSL_get_verify_result(ssl_.get()) != X509_V_OK)
          return error(ErrorKind::kFailed, what + ": " + why,
                       "if the server uses a private CA, set SSL_CERT_FILE to a PEM file that holds it");
        return error(what + ": " + why);
      }
    }
  }
}

std::vector<std::string> ca_bundle_candidates() {
  std::vector<std::string> out;
  if (const char* f = getenv("SSL_CERT_FILE"); f && *f) out.push_back(f);
  if (const char* d = getenv("SSL_CERT_DIR"); d && *d) out.push_back(d);
  for (const char* p : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/ca-bundle.pem",
                        "/etc/pki/tls/cacert.pem", "/etc/ssl/cert.pem", "/etc/ssl/certs"})
    out.push_back(p);
  return out;
}

Result<CtxPtr> make_tls_context(const ClientOptions& opts) {
  CtxPtr c(SSL_CTX_new(TLS_client_method()));
  if (!c) return error("creating a TLS context failed");
  SSL_CTX_set_min_proto_version(c.get(), TLS1_2_VERSION);
  // Peers that close without close_notify are common; framing catches
  // truncation of Content-Length and chunked bodies.
  SSL_CTX_set_options(c.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (opts.verify_tls) {
    if (!opts.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(c.get(), opts.ca_file.c_str(), nullptr) != 1)
        return error("loading CA certificates from " + opts.ca_file + ": not a readable PEM file");
    } else {
      bool loaded = false;
      for (const std::string& p : ca_bundle_candidates()) {
        struct stat st;
        if (::stat(p.c_str(), &st) != 0) continue;
        bool dir = S_ISDIR(st.st_mode);
        ERR_clear_error();
        if (SSL_CTX_load_verify_locations(c.get(), dir ? nullptr : p.c_str(), dir ? p.c_str() : nullptr) == 1) {
          loaded = true;
          break;
        }
      }
      ERR_clear_error();
      if (!loaded)
        return error(ErrorKind::kFailed, "no CA certificates found on this host",
                     "set SSL_CERT_FILE to a PEM bundle of trusted CA certificates");
    }
  }
  return c;
}

}  // namespace togo::image::http
