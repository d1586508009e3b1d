// A small HTTP/1.1 client on sockets and OpenSSL, enough for OCI registries:
// TLS that verifies the peer against the host's CA certificates, bodies
// framed by Content-Length, chunked or the end of the connection, redirects,
// and a timeout on every wait so a stalled peer becomes an error, not a hang.
// URLs and headers are in http_url.cc, sockets and TLS in http_conn.cc,
// reading answers and the client in http.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace togo::image::http {

/// An absolute http or https URL, split into what a request needs.
struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // a name, an IPv4 address, or an IPv6 address without brackets
  uint16_t port = 0;   // always set: 80 or 443 unless the URL names one
  std::string target;  // path and query, starting with '/'

  bool tls() const { return scheme == "https"; }
  /// host[:port] as in a Host header: IPv6 in brackets, the port only when
  /// it is not the scheme's default.
  std::string authority() const;
  /// host:port, always with the port, for error messages.
  std::string endpoint() const;
  /// scheme://authority/target
  std::string str() const;
  /// Same scheme, host and port: a request to `o` may carry our credentials.
  bool same_origin(const Url& o) const;
};

/// Parses an absolute http(s) URL. Refuses (kBadInput) other schemes, user
/// info ("user@host"), bad ports, and spaces or control characters; drops a
/// "#fragment".
Result<Url> parse_url(std::string_view s);

/// Resolves a Location header value against the URL that answered: an
/// absolute URL, "//host/path", "/path", or a path relative to base's
/// directory ("?query" replaces the query).
Result<Url> resolve_url(const Url& base, std::string_view ref);

/// Header fields in the order given; names compare case-insensitively.
class Headers {
 public:
  void add(std::string name, std::string value);
  /// Replaces every field called `name` with one.
  void set(std::string name, std::string value);
  void remove(std::string_view name);
  /// The first value of `name`, or nullptr.
  const std::string* get(std::string_view name) const;
  /// Every value of `name`, in order.
  std::vector<std::string> get_all(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

/// A request body read from a file: `size` bytes at `offset`, with pread so
/// the same bytes can be sent again after a redirect or a stale connection.
struct FileBody {
  int fd = -1;
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct Response;

struct Request {
  std::string method = "GET";
  Url url;
  /// Host, User-Agent and Content-Length are added. Values must not hold
  /// line breaks (refused with kBadInput: they often come from peers).
  Headers headers;
  std::string body;
  /// Sent instead of `body` when set.
  std::optional<FileBody> file_body;
  /// Called with the number of body bytes sent so far.
  std::function<void(uint64_t)> upload_progress;
  /// Called with each piece of the body as it goes out, and the piece's
  /// offset in the body: lets a caller hash what it sends without reading
  /// it twice. A body sent again (after a redirect or on a fresh
  /// connection) starts again at offset 0.
  std::function<void(uint64_t offset, std::string_view data)> on_body_sent;
  /// Called with the status and headers of an answer whose body is about to
  /// go to the sink (a 2xx), before its first byte; an error stops there.
  std::function<Result<void>(const Response&)> before_body;
};

struct Response {
  int status = 0;
  std::string reason;
  Headers headers;
  /// The body, unless it went to a sink.
  std::string body;
  /// The URL that gave this answer, after redirects.
  Url url;
};

/// Receives body bytes as they arrive; an error stops the transfer and is
/// returned by Client::send unchanged.
using Sink = std::function<Result<void>(std::string_view)>;

struct ClientOptions {
  int connect_timeout_s = 30;
  /// The longest wait for any progress while sending or receiving.
  int idle_timeout_s = 60;
  /// Redirects followed per request; 0 returns the 3xx answer itself.
  int max_redirects = 10;
  /// The largest body collected into Response::body (kBadInput beyond).
  size_t max_body = 16u << 20;
  /// Verify TLS peers: the certificate chain and the host name.
  bool verify_tls = true;
  /// A PEM file of CA certificates to trust instead of the host's.
  std::string ca_file;
  /// Empty means "togo/<version>".
  std::string user_agent;
};

/// Where the CA certificates are looked for, in order, when
/// ClientOptions::ca_file is empty: $SSL_CERT_FILE, $SSL_CERT_DIR, then the
/// bundles of common distributions, then /etc/ssl/certs. The binary is
/// static and carried between hosts, so OpenSSL's compiled-in default
/// directory is not relied on.
std::vector<std::string> ca_bundle_candidates();

/// Sends requests; keeps one idle connection for reuse with the next
/// request to the same scheme, host and port. Not thread-safe.
class Client {
 public:
  explicit Client(ClientOptions opts = {});
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  /// Sends `req` and reads the answer, following redirects (301, 302 and
  /// 303 turn a POST into a GET without body; 307 and 308 resend it; the
  /// Authorization header is dropped when the origin changes). A 2xx body
  /// goes to `sink` when one is given, any other body into Response::body.
  /// Any status is a success here: the caller judges it. Errors: transport
  /// (kFailed: "reading from host:port: timed out after 60 s"), and
  /// malformed answers (kBadInput: "answer from host:port: ...").
  Result<Response> send(const Request& req, const Sink& sink = {});

  const ClientOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace togo::image::http
