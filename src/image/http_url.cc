#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>

#include "image/http_internal.h"

namespace togo::image::http {
namespace {

/// The host as a URL writes it: an IPv6 address in brackets.
std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

std::string Url::authority() const {
  bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
  return default_port ? bracketed(host) : endpoint();
}

std::string Url::endpoint() const { return bracketed(host) + ":" + std::to_string(port); }

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

}  // namespace togo::image::http
