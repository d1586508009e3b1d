// What the files of the HTTP client share, and nothing outside them uses:
// helpers for the text of a peer's answers (http.cc, http_url.cc) and one
// connection, plain or TLS, with a timeout on every wait (http_conn.cc).
#pragma once

#include <openssl/ssl.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/fd.h"
#include "image/http.h"

namespace togo::image::http {

constexpr size_t kIoChunk = 64 << 10;

inline char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// A peer's bytes made safe for a one-line message, cut at `max`.
inline std::string printable(std::string_view s, size_t max = 60) {
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

inline bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

template <typename T>
bool parse_number(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && end == s.data() + s.size();
}

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;

/// A TLS client context as `opts` says: TLS 1.2 or later, peers verified
/// against opts.ca_file or the host's CA certificates
/// (ca_bundle_candidates()) unless opts.verify_tls is false.
Result<CtxPtr> make_tls_context(const ClientOptions& opts);

/// One connection to a server, plain or TLS, with a timeout on every wait.
class Conn {
 public:
  Conn(Fd fd, std::string endpoint, int idle_s)
      : fd_(std::move(fd)), endpoint_(std::move(endpoint)), idle_s_(idle_s) {}

  static Result<Conn> open(const Url& url, SSL_CTX* ctx, const ClientOptions& o);

  const std::string& endpoint() const { return endpoint_; }

  /// Some bytes into `buf`; 0 at the end of the stream.
  Result<size_t> read(char* buf, size_t n);
  /// All of `data`.
  Result<void> write(std::string_view data);

 private:
  /// Waits for `events`: "<what><endpoint>: timed out after N s" if none come.
  Result<void> wait(short events, const char* what, int timeout_s);
  Result<void> handshake(const Url& url, SSL_CTX* ctx, const ClientOptions& o);

  Fd fd_;
  SslPtr ssl_;
  std::string endpoint_;
  int idle_s_;
};

}  // namespace togo::image::http
