#include "image/http.h"

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

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "base/fd.h"

namespace togo::image::http {
namespace {

constexpr size_t kMaxLine = 16 << 10;          // one status, header or chunk-size line
constexpr size_t kMaxHeaderBytes = 256 << 10;  // all header lines of one answer
constexpr size_t kMaxHeaderCount = 500;
constexpr size_t kIoChunk = 64 << 10;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// A peer's bytes made safe for a one-line message, cut at `max`.
std::string printable(std::string_view s, size_t max = 60) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; i++) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

template <typename T>
bool parse_number(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && end == s.data() + s.size();
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// ---------------------------------------------------------------------------
// Sockets with a timeout on every wait, optionally under TLS.

/// "<what>: timed out after N s", with ETIMEDOUT so callers can tell.
std::unexpected<Error> timed_out(const std::string& what, int seconds) {
  auto e = error((what.empty() ? "" : what + ": ") + "timed out after " + std::to_string(seconds) + " s");
  e.error().err = ETIMEDOUT;
  return e;
}

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;

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

class Conn {
 public:
  Conn(Fd fd, std::string endpoint, int idle_s)
      : fd_(std::move(fd)), endpoint_(std::move(endpoint)), idle_s_(idle_s) {}

  static Result<Conn> open(const Url& url, SSL_CTX* ctx, const ClientOptions& o);

  const std::string& endpoint() const { return endpoint_; }

  /// Some bytes into `buf`; 0 at the end of the stream.
  Result<size_t> read(char* buf, size_t n) {
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

  Result<void> write(std::string_view data) {
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

 private:
  Result<void> wait(short events, const char* what, int timeout_s) {
    struct pollfd p = {fd_.get(), events, 0};
    for (;;) {
      int r = ::poll(&p, 1, timeout_s * 1000);
      if (r > 0) return {};
      if (r == 0) return timed_out(what + endpoint_, timeout_s);
      if (errno != EINTR) return sys_error(errno, "poll");
    }
  }

  Result<void> handshake(const Url& url, SSL_CTX* ctx, const ClientOptions& o);

  Fd fd_;
  SslPtr ssl_;
  std::string endpoint_;
  int idle_s_;
};

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

// ---------------------------------------------------------------------------
// Reading an answer.

class Reader {
 public:
  explicit Reader(Conn& c) : conn_(c) {}

  /// Reads more bytes into the buffer; false at the end of the stream.
  Result<bool> fill() {
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    size_t old = buf_.size();
    buf_.resize(old + kIoChunk);
    auto n = conn_.read(buf_.data() + old, kIoChunk);
    buf_.resize(old + (n ? *n : 0));
    if (!n) return std::unexpected(std::move(n.error()));
    received_ += *n;
    return *n > 0;
  }

  /// One line without its CRLF (or bare LF); nullopt if the stream ends
  /// first. A line longer than kMaxLine is kBadInput.
  Result<std::optional<std::string>> line() {
    for (;;) {
      auto nl = std::string_view(buf_).substr(pos_).find('\n');
      if (nl != std::string_view::npos && nl <= kMaxLine) {
        std::string out = buf_.substr(pos_, nl);
        pos_ += nl + 1;
        if (!out.empty() && out.back() == '\r') out.pop_back();
        return out;
      }
      if (nl != std::string_view::npos || buf_.size() - pos_ > kMaxLine)
        return error(ErrorKind::kBadInput, "answer from " + conn_.endpoint() + ": line longer than " +
                                               std::to_string(kMaxLine) + " bytes");
      if (!TRY(fill())) return std::nullopt;
    }
  }

  /// Up to `max` buffered bytes, reading if none are; empty at the end.
  Result<std::string_view> some(size_t max) {
    if (pos_ == buf_.size() && !TRY(fill())) return std::string_view();
    size_t n = std::min(max, buf_.size() - pos_);
    std::string_view out(buf_.data() + pos_, n);
    pos_ += n;
    return out;
  }

  uint64_t received() const { return received_; }
  const std::string& endpoint() const { return conn_.endpoint(); }

 private:
  Conn& conn_;
  std::string buf_;
  size_t pos_ = 0;
  uint64_t received_ = 0;
};

std::unexpected<Error> bad_answer(const std::string& endpoint, const std::string& why) {
  return error(ErrorKind::kBadInput, "answer from " + endpoint + ": " + why);
}

struct StatusLine {
  int minor = 1;
  int status = 0;
  std::string reason;
};

std::optional<StatusLine> parse_status_line(std::string_view l) {
  // HTTP/1.x SSS[ reason]
  if (l.size() < 12 || l.substr(0, 7) != "HTTP/1." || (l[7] != '0' && l[7] != '1') || l[8] != ' ')
    return std::nullopt;
  StatusLine s;
  s.minor = l[7] - '0';
  if (!parse_number(l.substr(9, 3), s.status) || s.status < 100 || s.status > 599) return std::nullopt;
  if (l.size() > 12) {
    if (l[12] != ' ') return std::nullopt;
    s.reason = std::string(l.substr(13));
  }
  for (char c : s.reason)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return std::nullopt;
  return s;
}

/// Reads a status line and header fields, skipping 1xx interim answers.
Result<std::pair<StatusLine, Headers>> read_head(Reader& r) {
  for (;;) {
    auto first = TRY(r.line());
    if (!first) {
      if (r.received() == 0) return error("reading from " + r.endpoint() + ": connection closed before an answer");
      return bad_answer(r.endpoint(), "connection closed in the status line");
    }
    auto status = parse_status_line(*first);
    if (!status) return bad_answer(r.endpoint(), "malformed status line \"" + printable(*first) + "\"");
    Headers h;
    size_t bytes = 0, count = 0;
    for (;;) {
      auto l = TRY(r.line());
      if (!l) return bad_answer(r.endpoint(), "connection closed in the header");
      if (l->empty()) break;
      bytes += l->size();
      if (++count > kMaxHeaderCount || bytes > kMaxHeaderBytes) return bad_answer(r.endpoint(), "header too large");
      auto colon = l->find(':');
      std::string_view name = std::string_view(*l).substr(0, colon == std::string::npos ? 0 : colon);
      if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char))
        return bad_answer(r.endpoint(), "malformed header line \"" + printable(*l) + "\"");
      std::string_view value = trim(std::string_view(*l).substr(colon + 1));
      for (char c : value)
        if (c == '\0' || c == '\r') return bad_answer(r.endpoint(), "control character in header " + std::string(name));
      h.add(std::string(name), std::string(value));
    }
    if (status->status >= 100 && status->status < 200 && status->status != 101) continue;
    return std::pair{std::move(*status), std::move(h)};
  }
}

struct Framing {
  enum Kind { kNone, kLength, kChunked, kClose } kind = kNone;
  uint64_t length = 0;
};

Result<Framing> framing_of(const std::string& method, int status, const Headers& h, const std::string& ep) {
  if (method == "HEAD" || status == 204 || status == 304 || status < 200) return Framing{};
  if (const std::string* te = h.get("Transfer-Encoding")) {
    auto codings = to_lower(*te);
    auto last = codings.rfind(',');
    if (trim(std::string_view(codings).substr(last == std::string::npos ? 0 : last + 1)) == "chunked")
      return Framing{Framing::kChunked};
    return Framing{Framing::kClose};
  }
  auto lengths = h.get_all("Content-Length");
  if (lengths.empty()) return Framing{Framing::kClose};
  Framing f{Framing::kLength};
  for (size_t i = 0; i < lengths.size(); i++) {
    uint64_t n = 0;
    if (!parse_number(std::string_view(lengths[i]), n))
      return bad_answer(ep, "malformed Content-Length \"" + printable(lengths[i]) + "\"");
    if (i > 0 && n != f.length) return bad_answer(ep, "conflicting Content-Length values");
    f.length = n;
  }
  return f;
}

Result<void> read_length(Reader& r, uint64_t length, const Sink& out) {
  uint64_t done = 0;
  while (done < length) {
    auto part = TRY(r.some(static_cast<size_t>(std::min<uint64_t>(length - done, kIoChunk))));
    if (part.empty())
      return error("answer from " + r.endpoint() + ": body truncated after " + std::to_string(done) + " of " +
                   std::to_string(length) + " bytes");
    done += part.size();
    TRY(out(part));
  }
  return {};
}

Result<void> read_chunked(Reader& r, const Sink& out) {
  for (;;) {
    auto l = TRY(r.line());
    if (!l) return error("answer from " + r.endpoint() + ": body truncated in a chunk header");
    std::string_view size_text = trim(std::string_view(*l).substr(0, l->find(';')));
    uint64_t size = 0;
    if (size_text.size() > 15 || !parse_number(size_text, size, 16))
      return bad_answer(r.endpoint(), "malformed chunk size \"" + printable(*l) + "\"");
    if (size == 0) break;
    TRY(read_length(r, size, out));
    auto end = TRY(r.line());
    if (!end) return error("answer from " + r.endpoint() + ": body truncated after a chunk");
    if (!end->empty()) return bad_answer(r.endpoint(), "chunk not followed by a line break");
  }
  for (size_t n = 0;; n++) {  // trailer fields, ignored
    auto l = TRY(r.line());
    if (!l || l->empty()) return {};
    if (n > kMaxHeaderCount) return bad_answer(r.endpoint(), "trailer too large");
  }
}

Result<void> read_to_close(Reader& r, const Sink& out) {
  for (;;) {
    auto part = TRY(r.some(kIoChunk));
    if (part.empty()) return {};
    TRY(out(part));
  }
}

Result<void> check_header_text(std::string_view name, std::string_view value) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char))
    return error(ErrorKind::kBadInput, "invalid header name \"" + printable(name) + "\"");
  for (char c : value)
    if (c == '\r' || c == '\n' || c == '\0')
      return error(ErrorKind::kBadInput, "header " + std::string(name) + ": value contains a line break");
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------
// URLs and headers.

std::string Url::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
  return default_port ? h : h + ":" + std::to_string(port);
}

std::string Url::endpoint() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string Url::str() const { return scheme + "://" + authority() + target; }

bool Url::same_origin(const Url& o) const { return scheme == o.scheme && host == o.host && port == o.port; }

Result<Url> parse_url(std::string_view s) {
  auto bad = [&](const std::string& why) {
    return error(ErrorKind::kBadInput, "URL \"" + printable(s) + "\": " + why);
  };
  Url u;
  auto sep = s.find("://");
  if (sep == std::string_view::npos) return bad("not an absolute URL");
  u.scheme = to_lower(s.substr(0, sep));
  if (u.scheme != "http" && u.scheme != "https") return bad("scheme is not http or https");
  std::string_view rest = s.substr(sep + 3);
  rest = rest.substr(0, rest.find('#'));
  auto end = rest.find_first_of("/?");
  std::string_view auth = rest.substr(0, end);
  std::string_view target = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (auth.find('@') != std::string_view::npos) return bad("user info in URLs is not supported");
  std::string_view port_text;
  if (!auth.empty() && auth.front() == '[') {
    auto close = auth.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    u.host = std::string(auth.substr(1, close - 1));
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET6, u.host.c_str(), buf) != 1) return bad("invalid IPv6 address");
    std::string_view after = auth.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    auto colon = auth.find(':');
    u.host = to_lower(auth.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = auth.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
    for (char c : u.host)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
        return bad("invalid host name");
  }
  if (u.host.empty()) return bad("no host");
  u.port = u.tls() ? 443 : 80;
  if (!port_text.empty()) {
    unsigned port = 0;
    if (!parse_number(port_text, port) || port == 0 || port > 65535) return bad("invalid port");
    u.port = static_cast<uint16_t>(port);
  }
  if (target.empty() || target.front() == '?') u.target = "/";
  for (char ch : target) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return bad("control character in the path");
    if (c == ' ' || c >= 0x80) {  // as browsers do with such Locations
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      u.target += hex;
    } else {
      u.target += ch;
    }
  }
  return u;
}

Result<Url> resolve_url(const Url& base, std::string_view ref) {
  auto colon = ref.find(':');
  auto delim = ref.find_first_of("/?#");
  if (colon != std::string_view::npos && colon < delim) return parse_url(ref);
  if (ref.substr(0, 2) == "//") return parse_url(base.scheme + ":" + std::string(ref));
  std::string origin = base.scheme + "://" + base.authority();
  if (!ref.empty() && ref.front() == '/') return parse_url(origin + std::string(ref));
  std::string path = base.target.substr(0, base.target.find('?'));
  if (!ref.empty() && ref.front() == '?') return parse_url(origin + path + std::string(ref));
  if (ref.empty()) return parse_url(origin + base.target);
  return parse_url(origin + path.substr(0, path.rfind('/') + 1) + std::string(ref));
}

void Headers::add(std::string name, std::string value) { fields_.emplace_back(std::move(name), std::move(value)); }

void Headers::set(std::string name, std::string value) {
  remove(name);
  add(std::move(name), std::move(value));
}

void Headers::remove(std::string_view name) {
  std::erase_if(fields_, [&](const auto& f) { return iequals(f.first, name); });
}

const std::string* Headers::get(std::string_view name) const {
  for (const auto& [n, v] : fields_)
    if (iequals(n, name)) return &v;
  return nullptr;
}

std::vector<std::string> Headers::get_all(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : fields_)
    if (iequals(n, name)) out.push_back(v);
  return out;
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

// ---------------------------------------------------------------------------
// The client.

struct Client::Impl {
  ClientOptions opts;
  CtxPtr ctx;
  std::optional<Conn> idle;  // kept after a fully read answer
  Url idle_origin;

  Result<SSL_CTX*> tls_context();
  Result<Response> exchange(const Url& url, const std::string& method, const Headers& headers,
                            const Request& req, bool with_body, bool follow, const Sink& sink);
  Result<Response> exchange_on(Conn& c, bool reused, bool* retry, bool* reusable, const Url& url,
                               const std::string& method, const Headers& headers, const Request& req,
                               bool with_body, bool follow, const Sink& sink);
};

Result<SSL_CTX*> Client::Impl::tls_context() {
  if (ctx) return ctx.get();
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
  ctx = std::move(c);
  return ctx.get();
}

Result<Response> Client::Impl::exchange_on(Conn& c, bool reused, bool* retry, bool* reusable, const Url& url,
                                           const std::string& method, const Headers& headers,
                                           const Request& req, bool with_body, bool follow,
                                           const Sink& sink) {
  *retry = false;
  *reusable = false;
  uint64_t body_size = !with_body ? 0 : req.file_body ? req.file_body->size : req.body.size();
  std::string head = method + " " + url.target + " HTTP/1.1\r\nHost: " + url.authority() + "\r\n";
  if (!headers.get("User-Agent"))
    head += "User-Agent: " + (opts.user_agent.empty() ? std::string("togo/" TOGO_VERSION) : opts.user_agent) + "\r\n";
  for (const auto& [n, v] : headers.fields()) {
    if (iequals(n, "Host") || iequals(n, "Content-Length") || iequals(n, "Transfer-Encoding")) continue;
    head += n + ": " + v + "\r\n";
  }
  if (body_size > 0 || method == "POST" || method == "PUT" || method == "PATCH")
    head += "Content-Length: " + std::to_string(body_size) + "\r\n";
  head += "\r\n";

  // A reused connection the server has closed fails on the first write or
  // read; such a request is sent again on a fresh connection.
  if (with_body && !req.file_body) head += req.body;
  if (auto w = c.write(head); !w) {
    *retry = reused;
    return std::unexpected(std::move(w.error()));
  }
  if (with_body && req.file_body) {
    std::string buf(kIoChunk, '\0');
    uint64_t sent = 0;
    while (sent < body_size) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(kIoChunk, body_size - sent));
      ssize_t n = ::pread(req.file_body->fd, buf.data(), want, static_cast<off_t>(req.file_body->offset + sent));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return sys_error(errno, "reading the request body");
      if (n == 0) return error("reading the request body: file ends before " + std::to_string(body_size) + " bytes");
      TRY(c.write(std::string_view(buf.data(), static_cast<size_t>(n))));
      sent += static_cast<uint64_t>(n);
      if (req.upload_progress) req.upload_progress(sent);
    }
  } else if (with_body && req.upload_progress && body_size > 0) {
    req.upload_progress(body_size);
  }

  Reader r(c);
  auto head_or = read_head(r);
  if (!head_or) {
    *retry = reused && r.received() == 0 && head_or.error().kind != ErrorKind::kBadInput &&
             head_or.error().err != ETIMEDOUT;
    return std::unexpected(std::move(head_or.error()));
  }
  auto& [status, hdrs] = *head_or;
  Response resp;
  resp.status = status.status;
  resp.reason = std::move(status.reason);
  resp.headers = std::move(hdrs);
  resp.url = url;
  Framing f = TRY(framing_of(method, resp.status, resp.headers, c.endpoint()));

  bool redirect = follow && resp.headers.get("Location") &&
                  (resp.status == 301 || resp.status == 302 || resp.status == 303 || resp.status == 307 ||
                   resp.status == 308);
  if (redirect && (f.kind == Framing::kClose || (f.kind == Framing::kLength && f.length > (64 << 10))))
    return resp;  // not worth reading; the connection is dropped
  Sink collect = [&](std::string_view part) -> Result<void> {
    if (resp.body.size() + part.size() > opts.max_body)
      return bad_answer(c.endpoint(), "body larger than " + std::to_string(opts.max_body) + " bytes");
    resp.body.append(part);
    return {};
  };
  Sink discard = [](std::string_view) -> Result<void> { return {}; };
  bool to_sink = !redirect && sink && resp.status >= 200 && resp.status < 300;
  if (to_sink && req.before_body) TRY(req.before_body(resp));
  const Sink& out = redirect ? discard : to_sink ? sink : collect;
  switch (f.kind) {
    case Framing::kNone: break;
    case Framing::kLength: TRY(read_length(r, f.length, out)); break;
    case Framing::kChunked: TRY(read_chunked(r, out)); break;
    case Framing::kClose: TRY(read_to_close(r, out)); break;
  }
  const std::string* conn_hdr = resp.headers.get("Connection");
  bool close = conn_hdr ? to_lower(*conn_hdr).find("close") != std::string::npos : status.minor == 0;
  *reusable = f.kind != Framing::kClose && !close;
  return resp;
}

Result<Response> Client::Impl::exchange(const Url& url, const std::string& method, const Headers& headers,
                                        const Request& req, bool with_body, bool follow, const Sink& sink) {
  for (int attempt = 0;; attempt++) {
    std::optional<Conn> c;
    bool reused = false;
    if (idle && idle_origin.same_origin(url)) {
      c = std::move(idle);
      reused = true;
    }
    idle.reset();
    if (!c) {
      SSL_CTX* tls = url.tls() ? TRY(tls_context()) : nullptr;
      c = TRY(Conn::open(url, tls, opts));
    }
    bool retry = false, reusable = false;
    auto resp = exchange_on(*c, reused, &retry, &reusable, url, method, headers, req, with_body, follow, sink);
    if (!resp && retry && attempt == 0) continue;
    if (resp && reusable) {
      idle = std::move(c);
      idle_origin = url;
    }
    return resp;
  }
}

Client::Client(ClientOptions opts) : impl_(std::make_unique<Impl>()) { impl_->opts = std::move(opts); }
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

const ClientOptions& Client::options() const { return impl_->opts; }

Result<Response> Client::send(const Request& req, const Sink& sink) {
  for (const auto& [n, v] : req.headers.fields()) TRY(check_header_text(n, v));
  for (char c : req.method)
    if (!is_token_char(c)) return error(ErrorKind::kBadInput, "invalid method \"" + printable(req.method) + "\"");
  Url url = req.url;
  std::string method = req.method;
  Headers headers = req.headers;
  bool with_body = true;
  for (int hops = 0;; hops++) {
    bool follow = hops < impl_->opts.max_redirects;
    Response resp = TRY(impl_->exchange(url, method, headers, req, with_body, follow, sink));
    const std::string* location = resp.headers.get("Location");
    int s = resp.status;
    if (!follow || !location || !(s == 301 || s == 302 || s == 303 || s == 307 || s == 308)) {
      if (location && hops >= impl_->opts.max_redirects && impl_->opts.max_redirects > 0 &&
          (s == 301 || s == 302 || s == 303 || s == 307 || s == 308))
        return error(ErrorKind::kBadInput, "answer from " + url.endpoint() + ": more than " +
                                               std::to_string(impl_->opts.max_redirects) + " redirects");
      return resp;
    }
    Url next = TRY_CTX(resolve_url(url, *location), "redirect from " + url.endpoint());
    if ((s == 303 && method != "HEAD") || ((s == 301 || s == 302) && method == "POST")) {
      method = "GET";
      with_body = false;
    }
    // SECURITY: credentials for one origin are never sent to another.
    if (!next.same_origin(url)) headers.remove("Authorization");
    url = std::move(next);
  }
}

}  // namespace togo::image::http
