#include "image/http.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "image/http_internal.h"

namespace togo::image::http {
namespace {

constexpr size_t kMaxLine = 16 << 10;          // one status, header or chunk-size line
constexpr size_t kMaxHeaderBytes = 256 << 10;  // all header lines of one answer
constexpr size_t kMaxHeaderCount = 500;

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

/// Reads a status line and header fields, skipping 1xx interim answers (a
/// few: a peer that sends them forever is answering garbage).
Result<std::pair<StatusLine, Headers>> read_head(Reader& r) {
  constexpr int kMaxInterim = 8;
  size_t bytes = 0, count = 0;  // over every head, interim ones included
  for (int interim = 0;; interim++) {
    if (interim > kMaxInterim) return bad_answer(r.endpoint(), "too many interim (1xx) answers");
    auto first = TRY(r.line());
    if (!first) {
      if (r.received() == 0) return error("reading from " + r.endpoint() + ": connection closed before an answer");
      return bad_answer(r.endpoint(), "connection closed in the status line");
    }
    auto status = parse_status_line(*first);
    if (!status) return bad_answer(r.endpoint(), "malformed status line \"" + printable(*first) + "\"");
    Headers h;
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

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

// ---------------------------------------------------------------------------
// The client.

struct Client::Impl {
  ClientOptions opts;
  CtxPtr ctx;
  std::optional<Conn> idle;  // kept after a fully read answer
  Url idle_origin;

  Result<Response> exchange(const Url& url, const std::string& method, const Headers& headers,
                            const Request& req, bool with_body, bool follow, const Sink& sink);
  Result<Response> exchange_on(Conn& c, bool reused, bool* retry, bool* reusable, const Url& url,
                               const std::string& method, const Headers& headers, const Request& req,
                               bool with_body, bool follow, const Sink& sink);
};

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
  if (with_body && !req.file_body && req.on_body_sent) req.on_body_sent(0, req.body);
  if (with_body && req.file_body) {
    std::string buf(kIoChunk, '\0');
    uint64_t sent = 0;
    while (sent < body_size) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(kIoChunk, body_size - sent));
      ssize_t n = ::pread(req.file_body->fd, buf.data(), want, static_cast<off_t>(req.file_body->offset + sent));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return sys_error(errno, "reading the request body");
      if (n == 0) return error("reading the request body: file ends before " + std::to_string(body_size) + " bytes");
      std::string_view part(buf.data(), static_cast<size_t>(n));
      TRY(c.write(part));
      if (req.on_body_sent) req.on_body_sent(sent, part);
      sent += part.size();
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

  bool redirect = follow && resp.headers.get("Location") && is_redirect(resp.status);
  if (redirect && (f.kind == Framing::kClose || (f.kind == Framing::kLength && f.length > (64 << 10))))
    return resp;  // not worth reading; the connection is dropped
  Sink collect = [&](std::string_view part) -> Result<void> {
    if (resp.body.size() + part.size() > opts.max_body)
      return bad_answer(c.endpoint(), "body larger than " + std::to_string(opts.max_body) + " bytes");
    resp.body.append(part);
    return {};
  };
  // A redirect's body is read only to reuse the connection, and only so much.
  uint64_t discarded = 0;
  Sink discard = [&](std::string_view part) -> Result<void> {
    if ((discarded += part.size()) > (64 << 10))
      return bad_answer(c.endpoint(), "redirect body larger than 64 KiB");
    return {};
  };
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
      if (url.tls() && !ctx) ctx = TRY(make_tls_context(opts));
      SSL_CTX* tls = url.tls() ? ctx.get() : nullptr;
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
    if (!location || !is_redirect(s)) return resp;
    if (!follow) {
      if (impl_->opts.max_redirects == 0) return resp;  // the caller wants the 3xx itself
      return error(ErrorKind::kBadInput, "answer from " + url.endpoint() + ": more than " +
                                             std::to_string(impl_->opts.max_redirects) + " redirects");
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
