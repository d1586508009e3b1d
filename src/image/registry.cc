#include "image/registry.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>

#include "base/fs.h"
#include "base/json.h"
#include "base/sha256.h"
#include "base/sys.h"
#include "image/oci.h"
#include "image/tar_path.h"

namespace togo::image {
namespace {

constexpr size_t kMaxManifest = 4u << 20;  // as containerd: manifests are small
constexpr size_t kIoChunk = 1u << 20;

/// What get_manifest() accepts: OCI and Docker schema 2 manifests and indexes.
std::string manifest_accept() {
  std::string out;
  for (std::string_view t : {oci::kMediaTypeManifest, oci::kMediaTypeIndex, oci::kDockerManifest,
                             oci::kDockerManifestList})
    out += (out.empty() ? "" : ", ") + std::string(t);
  return out;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

/// A peer's text for a one-line message: escaped and cut short.
std::string shown(std::string_view s, size_t max = 200) {
  std::string out = printable_name(s.substr(0, max));
  if (s.size() > max) out += "...";
  return out;
}

std::string base64_encode(std::string_view s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  std::string s(in);
  std::erase_if(s, [](char c) { return c == '\n' || c == '\r' || c == ' '; });
  while (s.size() % 4 != 0) s += '=';
  if (s.empty()) return std::string();
  size_t pad = s.size() - s.find_last_not_of('=') - 1;
  if (pad > 2) return std::nullopt;
  std::string out(s.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) return std::nullopt;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

/// %-encoding for a query parameter value.
std::string query_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

/// The host a Docker config "auths" key names: "https://index.docker.io/v1/"
/// is "index.docker.io".
std::string config_key_host(std::string_view key) {
  std::string k = lowercase(key);
  for (std::string_view scheme : {"https://", "http://"})
    if (k.starts_with(scheme)) k.erase(0, scheme.size());
  return k.substr(0, k.find('/'));
}

bool names_registry(std::string_view key, std::string_view registry) {
  std::string host = config_key_host(key);
  if (registry == "docker.io")
    return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
  return host == lowercase(registry);
}

/// A tag or a sha256 digest, safe to put in a URL path.
Result<void> check_manifest_ref(std::string_view r) {
  if (is_sha256_digest(r)) return {};
  bool ok = !r.empty() && r.size() <= 128 && r.front() != '.' && r.front() != '-';
  for (char c : r)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                c == '.' || c == '-');
  if (!ok) return error(ErrorKind::kUsage, "\"" + shown(r) + "\" is neither a tag nor a sha256 digest");
  return {};
}

Result<void> check_digest(std::string_view d) {
  if (is_sha256_digest(d)) return {};
  return error(ErrorKind::kBadInput, "unsupported digest \"" + shown(d) + "\" (only sha256 is supported)");
}

/// "<status> <message>": the registry's own words when it sent an error
/// document, else the reason phrase.
Error status_error(const http::Response& r) {
  std::string msg = registry_error_message(r.body);
  if (msg.empty()) msg = shown(lowercase(r.reason));
  if (msg.empty()) msg = "unexpected answer";
  Error e;
  e.kind = r.status == 404 ? ErrorKind::kNotFound : ErrorKind::kFailed;
  e.message = std::to_string(r.status) + " " + msg;
  if (r.status == 401 || r.status == 403)
    e.hint = "this registry wants credentials: pass --creds USER:PASSWORD, or add them to ~/.docker/config.json";
  return e;
}

std::unexpected<Error> fail(Error e, const std::string& what) {
  return std::unexpected(std::move(e).context(what));
}

/// The first challenge we can answer: Bearer before Basic.
std::optional<Challenge> pick_challenge(const http::Response& r) {
  std::optional<Challenge> basic;
  for (const std::string& h : r.headers.get_all("WWW-Authenticate"))
    for (Challenge& c : parse_challenges(h)) {
      if (c.scheme == "bearer" && c.params.contains("realm")) return std::move(c);
      if (c.scheme == "basic" && !basic) basic = std::move(c);
    }
  return basic;
}

Result<void> truncate_fd(int fd) {
  if (::ftruncate(fd, 0) != 0) return sys_error(errno, "truncating the download");
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------
// Credentials and challenges.

Result<Credentials> parse_creds(std::string_view s) {
  auto colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0)
    return error(ErrorKind::kUsage, "credentials must be given as USER:PASSWORD");
  return Credentials{std::string(s.substr(0, colon)), std::string(s.substr(colon + 1))};
}

Result<std::optional<Credentials>> credentials_from_docker_config(std::string_view config_json,
                                                                  std::string_view registry, std::string* note) {
  json::Value doc = TRY(json::parse(config_json));
  TRY(json::expect_object(doc, "config"));
  if (const json::Value* auths = doc.find("auths"); auths && auths->is_object()) {
    for (const auto& [key, entry] : auths->members()) {
      if (!names_registry(key, registry) || !entry.is_object()) continue;
      std::string where = "auths[\"" + shown(key) + "\"]";
      if (const json::Value* auth = entry.find("auth"); auth && auth->is_string() && !auth->as_string().empty()) {
        auto decoded = base64_decode(auth->as_string());
        if (!decoded) return error(ErrorKind::kBadInput, where + ".auth: not base64");
        auto creds = parse_creds(*decoded);
        if (!creds) return error(ErrorKind::kBadInput, where + ".auth: not of the form user:password");
        return std::optional(*creds);
      }
      const json::Value* user = entry.find("username");
      const json::Value* pass = entry.find("password");
      if (user && pass && user->is_string() && pass->is_string() && !user->as_string().empty())
        return std::optional(Credentials{user->as_string(), pass->as_string()});
    }
  }
  std::string helper;
  if (const json::Value* helpers = doc.find("credHelpers"); helpers && helpers->is_object())
    for (const auto& [key, name] : helpers->members())
      if (names_registry(key, registry) && name.is_string()) helper = name.as_string();
  if (const json::Value* store = doc.find("credsStore"); helper.empty() && store && store->is_string())
    helper = store->as_string();
  if (!helper.empty() && note)
    *note = "credential helper docker-credential-" + shown(helper) + " is not supported; credentials for " +
            std::string(registry) + " can be given with --creds USER:PASSWORD";
  return std::nullopt;
}

Result<std::optional<Credentials>> credentials_for(std::string_view registry, const Notice& notice) {
  std::string path;
  if (const char* d = getenv("DOCKER_CONFIG"); d && *d) path = fs::join(d, "config.json");
  else if (const char* h = getenv("HOME"); h && *h) path = fs::join(h, ".docker/config.json");
  else return std::nullopt;
  auto fd = sys::open_at(AT_FDCWD, path, O_RDONLY);
  if (!fd) {
    if (fd.error().err == ENOENT || fd.error().err == ENOTDIR) return std::nullopt;
    return std::unexpected(std::move(fd.error()));
  }
  std::string text = TRY(sys::read_all(fd->get(), path));
  std::string note;
  auto creds = TRY_CTX(credentials_from_docker_config(text, registry, &note), "reading " + path);
  if (!creds && !note.empty() && notice) notice(note);
  return creds;
}

std::vector<Challenge> parse_challenges(std::string_view h) {
  std::vector<Challenge> out;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < h.size() && (h[i] == ' ' || h[i] == '\t')) i++;
  };
  auto token = [&] {
    size_t start = i;
    while (i < h.size() && h[i] != ' ' && h[i] != '\t' && h[i] != ',' && h[i] != '=' && h[i] != '"') i++;
    return h.substr(start, i - start);
  };
  while (i < h.size()) {
    skip_space();
    if (i < h.size() && h[i] == ',') {
      i++;
      continue;
    }
    std::string_view name = token();
    if (name.empty()) {  // a stray '=' or '"': skip it
      i++;
      continue;
    }
    skip_space();
    if (i < h.size() && h[i] == '=' && !out.empty()) {
      i++;
      skip_space();
      std::string value;
      if (i < h.size() && h[i] == '"') {
        for (i++; i < h.size() && h[i] != '"'; i++) {
          if (h[i] == '\\' && i + 1 < h.size()) i++;
          value += h[i];
        }
        i++;  // the closing quote
      } else {
        value = std::string(token());
      }
      out.back().params[lowercase(name)] = std::move(value);
    } else {
      out.push_back(Challenge{lowercase(name), {}});
    }
  }
  return out;
}

std::string registry_error_message(std::string_view body) {
  if (body.empty() || body.size() > (1u << 20)) return "";
  auto doc = json::parse(body);
  if (!doc || !doc->is_object()) return "";
  std::string out;
  if (const json::Value* errors = doc->find("errors"); errors && errors->is_array()) {
    for (const json::Value& e : errors->items()) {
      const json::Value* m = e.find("message");
      const json::Value* c = e.find("code");
      std::string text = m && m->is_string() && !m->as_string().empty() ? m->as_string()
                         : c && c->is_string()                            ? lowercase(c->as_string())
                                                                          : "";
      if (text.empty()) continue;
      if (!out.empty()) out += "; ";
      out += text;
    }
  }
  for (std::string_view key : {"details", "message", "error"}) {
    if (!out.empty()) break;
    if (const json::Value* v = doc->find(key); v && v->is_string()) out = v->as_string();
  }
  return shown(out);
}

// ---------------------------------------------------------------------------
// The registry client.

struct Registry::Impl {
  Reference ref;
  RegistryOptions opts;
  http::Client client;
  std::optional<http::Url> base;       // scheme and host that answered /v2/
  std::optional<Challenge> challenge;  // how it wants to be authenticated
  bool answered_challenge = false;
  std::string authorization;  // the header value for `base`

  Impl(Reference r, RegistryOptions o)
      : ref(std::move(r)), opts(std::move(o)), client([&] {
          http::ClientOptions h = opts.http;
          if (opts.insecure) h.verify_tls = false;
          return h;
        }()) {}

  std::string context() const {
    return std::string(opts.push ? "pushing " : "pulling ") + ref.registry + "/" + ref.repository;
  }
  std::string repo_path(std::string_view rest) const { return "/v2/" + ref.repository + "/" + std::string(rest); }

  Result<void> ping();
  Result<void> authenticate(const Challenge& c);
  Result<http::Request> request(std::string method, const std::string& path);
  Result<http::Response> call(http::Request req, const http::Sink& sink = {});

  Result<FetchedManifest> get_manifest(std::string_view r);
  Result<std::optional<uint64_t>> head_blob(std::string_view digest);
  Result<void> fetch_blob(std::string_view digest, std::optional<uint64_t> size, int fd, const Progress& progress);
  Result<bool> push_blob(std::string_view digest, int fd, uint64_t size, const Progress& progress,
                         std::string* sent_digest);
  Result<std::string> put_manifest(std::string_view r, std::string_view bytes, std::string_view media_type);
};

Result<void> Registry::Impl::ping() {
  if (base) return {};
  std::string host = ref.api_host();
  std::vector<std::string> schemes;
  if (is_loopback_host(ref.registry)) schemes = {"http"};
  else if (opts.insecure) schemes = {"https", "http"};
  else schemes = {"https"};
  std::optional<Error> first;
  for (const std::string& scheme : schemes) {
    http::Request req;
    req.url = TRY(http::parse_url(scheme + "://" + host + "/v2/"));
    auto resp = client.send(req);
    if (!resp) {
      if (!first) first = std::move(resp.error());
      continue;
    }
    if (resp->status == 200 || resp->status == 401) {
      base = req.url;
      base->target = "/";
      if (resp->status == 401) challenge = pick_challenge(*resp);
      return {};
    }
    Error e = status_error(*resp);
    if (resp->status == 404) e.hint = host + " does not serve the registry API (/v2/)";
    return fail(std::move(e), "/v2/");
  }
  return std::unexpected(std::move(*first));
}

Result<void> Registry::Impl::authenticate(const Challenge& c) {
  answered_challenge = true;
  if (c.scheme == "basic") {
    authorization = opts.creds ? "Basic " + base64_encode(opts.creds->user + ":" + opts.creds->password) : "";
    return {};
  }
  auto realm_it = c.params.find("realm");
  if (c.scheme != "bearer" || realm_it == c.params.end()) return {};
  http::Url realm = TRY_CTX(http::parse_url(realm_it->second), "token service");
  std::string query;
  if (auto s = c.params.find("service"); s != c.params.end()) query += "service=" + query_escape(s->second);
  std::string scope = "repository:" + ref.repository + (opts.push ? ":pull,push" : ":pull");
  if (auto s = c.params.find("scope"); s != c.params.end() && !s->second.empty()) scope = s->second;
  query += std::string(query.empty() ? "" : "&") + "scope=" + query_escape(scope);
  realm.target += std::string(realm.target.find('?') == std::string::npos ? "?" : "&") + query;

  std::string what = "getting a token from " + realm.authority();
  // SECURITY: a password goes in clear text only to this machine, or where
  // the user said the registry is insecure.
  if (opts.creds && !realm.tls() && !opts.insecure && !is_loopback_host(realm.host))
    return error(what + ": refusing to send credentials over plain HTTP");
  http::Request req;
  req.url = realm;
  if (opts.creds)
    req.headers.add("Authorization", "Basic " + base64_encode(opts.creds->user + ":" + opts.creds->password));
  auto resp = TRY_CTX(client.send(req), what);
  if (resp.status != 200) {
    Error e = status_error(resp);
    if (resp.status == 401 && opts.creds) e.hint = "check the user name and password given for " + ref.registry;
    return fail(std::move(e), what);
  }
  auto doc = json::parse(resp.body);
  std::string token;
  if (doc && doc->is_object())
    for (std::string_view key : {"token", "access_token"})
      if (const json::Value* t = doc->find(key); t && t->is_string() && !t->as_string().empty()) {
        token = t->as_string();
        break;
      }
  if (token.empty()) return error(ErrorKind::kBadInput, what + ": the answer holds no token");
  authorization = "Bearer " + token;
  return {};
}

Result<http::Request> Registry::Impl::request(std::string method, const std::string& path) {
  TRY(ping());
  http::Request req;
  req.method = std::move(method);
  req.url = *base;
  req.url.target = path;
  return req;
}

Result<http::Response> Registry::Impl::call(http::Request req, const http::Sink& sink) {
  TRY(ping());
  if (challenge && !answered_challenge) TRY(authenticate(*challenge));
  for (int attempt = 0;; attempt++) {
    // SECURITY: the registry's credentials go to the registry only, not to
    // an upload or download URL elsewhere that it names.
    if (!authorization.empty() && req.url.same_origin(*base)) req.headers.set("Authorization", authorization);
    else req.headers.remove("Authorization");
    http::Response resp = TRY(client.send(req, sink));
    if (resp.status != 401 || attempt > 0) return resp;
    // An expired token, a scope we lack, or a registry that only asks now.
    auto c = pick_challenge(resp);
    if (!c || (c->scheme == "basic" && (!opts.creds || !authorization.empty()))) return resp;
    challenge = c;
    TRY(authenticate(*c));
  }
}

Result<FetchedManifest> Registry::Impl::get_manifest(std::string_view r) {
  std::string what = "manifest " + shown(r);
  TRY_CTX(check_manifest_ref(r), what);
  http::Request req = TRY_CTX(request("GET", repo_path("manifests/" + std::string(r))), what);
  req.headers.add("Accept", manifest_accept());
  FetchedManifest out;
  auto collect = [&](std::string_view part) -> Result<void> {
    if (out.bytes.size() + part.size() > kMaxManifest)
      return error(ErrorKind::kBadInput, "larger than " + std::to_string(kMaxManifest >> 20) + " MiB");
    out.bytes.append(part);
    return {};
  };
  http::Response resp = TRY_CTX(call(std::move(req), collect), what);
  if (resp.status != 200) return fail(status_error(resp), what);
  out.digest = Sha256::digest_of(out.bytes);
  if (is_sha256_digest(r) && out.digest != r)
    return error(ErrorKind::kBadInput, what + ": digest mismatch (the registry sent " + out.digest + ")");
  // Asked by tag, the registry's word on which document that is must hold
  // too. Other algorithms than sha256 cannot be checked here.
  const std::string* named = resp.headers.get("Docker-Content-Digest");
  if (named && named->starts_with("sha256:") && *named != out.digest)
    return error(ErrorKind::kBadInput, what + ": digest mismatch (the registry names it " +
                                           shown(*named) + ", its bytes hash to " + out.digest + ")");
  if (const std::string* ct = resp.headers.get("Content-Type")) {
    std::string_view t = *ct;
    t = t.substr(0, t.find(';'));
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    out.media_type = std::string(t);
  }
  if (out.media_type.empty() || out.media_type == "application/json" || out.media_type == "text/plain") {
    auto doc = json::parse(out.bytes);
    if (doc && doc->is_object())
      if (const json::Value* mt = doc->find("mediaType"); mt && mt->is_string()) out.media_type = mt->as_string();
  }
  return out;
}

Result<std::optional<uint64_t>> Registry::Impl::head_blob(std::string_view digest) {
  std::string what = "blob " + shown(digest);
  TRY_CTX(check_digest(digest), what);
  http::Request req = TRY_CTX(request("HEAD", repo_path("blobs/" + std::string(digest))), what);
  http::Response resp = TRY_CTX(call(std::move(req)), what);
  if (resp.status == 404) return std::nullopt;
  if (resp.status != 200) return fail(status_error(resp), what);
  const std::string* cl = resp.headers.get("Content-Length");
  uint64_t size = 0;
  auto [end, ec] = cl ? std::from_chars(cl->data(), cl->data() + cl->size(), size) : std::from_chars_result{};
  if (!cl || ec != std::errc() || end != cl->data() + cl->size())
    return error(ErrorKind::kBadInput, what + ": the registry gave no valid size (Content-Length)");
  return size;
}

Result<void> Registry::Impl::fetch_blob(std::string_view digest, std::optional<uint64_t> size, int fd,
                                        const Progress& progress) {
  std::string what = "blob " + shown(digest);
  TRY_CTX(check_digest(digest), what);
  struct stat st;
  if (::fstat(fd, &st) != 0) return sys_error(errno, what + ": fstat");
  if (!S_ISREG(st.st_mode)) return error(what + ": the download target is not a regular file");
  uint64_t offset = static_cast<uint64_t>(st.st_size);
  if (size && offset > *size) {
    TRY_CTX(truncate_fd(fd), what);
    offset = 0;
  }
  // Hash what is already there; the rest is hashed as it arrives.
  auto hasher = std::make_unique<Sha256>();
  {
    std::string buf(kIoChunk, '\0');
    for (uint64_t done = 0; done < offset;) {
      ssize_t n = ::pread(fd, buf.data(), static_cast<size_t>(std::min<uint64_t>(kIoChunk, offset - done)),
                          static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return sys_error(n < 0 ? errno : EIO, what + ": reading the partial download");
      hasher->update(buf.data(), static_cast<size_t>(n));
      done += static_cast<uint64_t>(n);
    }
  }
  auto restart = [&]() -> Result<void> {
    TRY(truncate_fd(fd));
    hasher = std::make_unique<Sha256>();
    offset = 0;
    return {};
  };

  bool restarted = false;
  for (int attempt = 0; !(size && offset == *size); attempt++) {
    http::Request req = TRY_CTX(request("GET", repo_path("blobs/" + std::string(digest))), what);
    if (offset > 0) req.headers.add("Range", "bytes=" + std::to_string(offset) + "-");
    uint64_t start = offset;
    bool sink_failed = false;
    req.before_body = [&](const http::Response& head) -> Result<void> {
      if (head.status == 206) {
        const std::string* range = head.headers.get("Content-Range");
        if (!range || !range->starts_with("bytes " + std::to_string(offset) + "-"))
          return error(ErrorKind::kBadInput, "the registry answered a range request with the wrong range");
        return {};
      }
      if (offset > 0) return restart();  // the whole blob comes again
      return {};
    };
    http::Sink sink = [&](std::string_view part) -> Result<void> {
      if (size && offset + part.size() > *size) {
        sink_failed = true;
        return error(ErrorKind::kBadInput, "the registry sent more than the blob's " + std::to_string(*size) + " bytes");
      }
      for (size_t done = 0; done < part.size();) {
        ssize_t n = ::pwrite(fd, part.data() + done, part.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          sink_failed = true;
          return sys_error(errno, "writing the download");
        }
        done += static_cast<size_t>(n);
      }
      hasher->update(part);
      offset += part.size();
      if (progress) progress(offset);
      return {};
    };
    auto resp = call(std::move(req), sink);
    if (!resp) {
      bool transient = !sink_failed && resp.error().kind == ErrorKind::kFailed && offset > start &&
                       attempt < opts.blob_retries;
      if (transient) continue;
      return fail(std::move(resp.error()), what);
    }
    if (resp->status == 416 && start > 0 && !restarted) {
      restarted = true;
      TRY_CTX(restart(), what);
      continue;
    }
    if (resp->status < 200 || resp->status > 299) return fail(status_error(*resp), what);
    break;
  }
  if (size && offset != *size) {
    TRY_CTX(truncate_fd(fd), what);
    return error(ErrorKind::kBadInput, what + ": size mismatch (got " + std::to_string(offset) + " bytes, expected " +
                                           std::to_string(*size) + ")");
  }
  std::string got = "sha256:" + hasher->hex();
  if (got != digest) {
    TRY_CTX(truncate_fd(fd), what);
    return error(ErrorKind::kBadInput, what + ": digest mismatch (the data hashes to " + got + ")");
  }
  if (progress) progress(offset);
  return {};
}

Result<bool> Registry::Impl::push_blob(std::string_view digest, int fd, uint64_t size, const Progress& progress,
                                       std::string* sent_digest) {
  std::string what = "blob " + shown(digest);
  if (TRY(head_blob(digest))) return false;
  http::Request start = TRY_CTX(request("POST", repo_path("blobs/uploads/")), what);
  http::Response started = TRY_CTX(call(std::move(start)), what);
  if (started.status != 202) return fail(status_error(started), what + ": starting the upload");
  const std::string* location = started.headers.get("Location");
  if (!location) return error(ErrorKind::kBadInput, what + ": the registry started an upload without a Location");
  http::Url url = TRY_CTX(http::resolve_url(started.url, *location), what);
  url.target += std::string(url.target.find('?') == std::string::npos ? "?" : "&") +
                "digest=" + query_escape(digest);
  http::Request put;
  put.method = "PUT";
  put.url = url;
  put.headers.add("Content-Type", "application/octet-stream");
  put.file_body = http::FileBody{fd, 0, size};
  put.upload_progress = progress;
  // The bytes are hashed as they are read to be sent, so the file is read once.
  auto hasher = std::make_unique<Sha256>();
  uint64_t hashed = 0;
  put.on_body_sent = [&](uint64_t offset, std::string_view part) {
    if (offset == 0) {
      hasher = std::make_unique<Sha256>();
      hashed = 0;
    }
    hasher->update(part);
    hashed += part.size();
  };
  auto done = call(std::move(put));
  std::string sent = hashed == size ? "sha256:" + hasher->hex() : "";  // all of it went out
  if (sent_digest) *sent_digest = sent;
  if (!done) return fail(std::move(done.error()), what);
  if (done->status != 201 && done->status != 204 && done->status != 200) return fail(status_error(*done), what);
  if (!sent.empty() && sent != digest)  // and the registry did not check
    return error(ErrorKind::kBadInput, what + ": the data sent hashes to " + sent);
  if (const std::string* d = done->headers.get("Docker-Content-Digest"); d && *d != digest)
    return error(ErrorKind::kBadInput, what + ": the registry stored it as " + shown(*d));
  return true;
}

Result<std::string> Registry::Impl::put_manifest(std::string_view r, std::string_view bytes,
                                                 std::string_view media_type) {
  std::string what = "manifest " + shown(r);
  TRY_CTX(check_manifest_ref(r), what);
  std::string digest = Sha256::digest_of(bytes);
  if (is_sha256_digest(r) && digest != r)
    return error(ErrorKind::kUsage, what + ": the manifest hashes to " + digest);
  http::Request req = TRY_CTX(request("PUT", repo_path("manifests/" + std::string(r))), what);
  req.headers.add("Content-Type", std::string(media_type));
  req.body = std::string(bytes);
  http::Response resp = TRY_CTX(call(std::move(req)), what);
  if (resp.status != 201 && resp.status != 200 && resp.status != 202) return fail(status_error(resp), what);
  if (const std::string* d = resp.headers.get("Docker-Content-Digest"); d && *d != digest)
    return error(ErrorKind::kBadInput, what + ": the registry stored it as " + shown(*d));
  return digest;
}

// ---------------------------------------------------------------------------

namespace {
template <typename T>
Result<T> in_context(Result<T> r, const std::string& what) {
  if (!r) return std::unexpected(std::move(r.error()).context(what));
  return r;
}
}  // namespace

Registry::Registry(Reference ref, RegistryOptions opts)
    : impl_(std::make_unique<Impl>(std::move(ref), std::move(opts))) {}
Registry::~Registry() = default;
Registry::Registry(Registry&&) noexcept = default;
Registry& Registry::operator=(Registry&&) noexcept = default;

std::string Registry::name() const { return impl_->ref.registry + "/" + impl_->ref.repository; }

Result<void> Registry::ping() { return in_context(impl_->ping(), impl_->context()); }

Result<FetchedManifest> Registry::get_manifest(std::string_view tag_or_digest) {
  return in_context(impl_->get_manifest(tag_or_digest), impl_->context());
}

Result<std::optional<uint64_t>> Registry::head_blob(std::string_view digest) {
  return in_context(impl_->head_blob(digest), impl_->context());
}

Result<void> Registry::fetch_blob(std::string_view digest, std::optional<uint64_t> size, int fd,
                                  const Progress& progress) {
  return in_context(impl_->fetch_blob(digest, size, fd, progress), impl_->context());
}

Result<bool> Registry::push_blob(std::string_view digest, int fd, uint64_t size, const Progress& progress,
                                 std::string* sent_digest) {
  return in_context(impl_->push_blob(digest, fd, size, progress, sent_digest), impl_->context());
}

Result<std::string> Registry::put_manifest(std::string_view tag_or_digest, std::string_view bytes,
                                           std::string_view media_type) {
  return in_context(impl_->put_manifest(tag_or_digest, bytes, media_type), impl_->context());
}

}  // namespace togo::image
