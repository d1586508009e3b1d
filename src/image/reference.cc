#include "image/reference.h"

#include <arpa/inet.h>

#include "base/sha256.h"
#include "base/text.h"
#include "image/tar_path.h"

namespace togo::image {

namespace {

constexpr std::string_view kDockerHub = "docker.io";
constexpr size_t kMaxNameLength = 255;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
bool is_word(char c) { return is_alnum(c) || c == '_'; }

// alpha-numeric [separator alpha-numeric]*, separator := [_.] | __ | [-]+
bool valid_path_component(std::string_view s) {
  if (s.empty() || !is_lower_alnum(s.front()) || !is_lower_alnum(s.back())) return false;
  for (size_t i = 0; i < s.size();) {
    if (is_lower_alnum(s[i])) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < s.size() && !is_lower_alnum(s[j])) j++;
    std::string_view sep = s.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// alpha-numeric, with '-' inside.
bool valid_domain_component(std::string_view s) {
  if (s.empty() || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '-') return false;
  return true;
}

struct HostPort {
  std::string_view host;  // brackets kept for IPv6
  std::string_view port;  // without ':'; empty if none
  bool has_port = false;
};

HostPort split_host_port(std::string_view s) {
  size_t colon;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return {s, {}, false};
    colon = close + 1 < s.size() && s[close + 1] == ':' ? close + 1 : std::string_view::npos;
    if (colon == std::string_view::npos && close + 1 != s.size()) return {s, {}, false};
  } else {
    colon = s.rfind(':');
  }
  if (colon == std::string_view::npos) return {s, {}, false};
  return {s.substr(0, colon), s.substr(colon + 1), true};
}

bool valid_ipv6_in_brackets(std::string_view host) {
  if (host.size() < 3 || host.front() != '[' || host.back() != ']') return false;
  std::string inner(host.substr(1, host.size() - 2));
  in6_addr addr;
  return inet_pton(AF_INET6, inner.c_str(), &addr) == 1;
}

// domain := host [':' port]; host := domain-name | IPv4 | '[' IPv6 ']'
std::string check_domain(std::string_view domain) {
  HostPort hp = split_host_port(domain);
  if (hp.has_port) {
    if (hp.port.empty() || hp.port.size() > 5 ||
        hp.port.find_first_not_of("0123456789") != std::string_view::npos ||
        std::stoi(std::string(hp.port)) > 65535)
      return "bad port in registry \"" + std::string(domain) + "\"";
  }
  if (!hp.host.empty() && hp.host.front() == '[') {
    if (!valid_ipv6_in_brackets(hp.host))
      return "bad IPv6 address in registry \"" + std::string(domain) + "\"";
    return {};
  }
  if (hp.host.empty()) return "empty registry host";
  for (const std::string& part : text::split(hp.host, '.'))
    if (!valid_domain_component(part)) return "bad registry host \"" + std::string(hp.host) + "\"";
  return {};
}

// A tag: [\w][\w.-]{0,127}.
bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > 128 || !is_word(t.front())) return false;
  for (char c : t)
    if (!is_word(c) && c != '.' && c != '-') return false;
  return true;
}

bool has_upper(std::string_view s) {
  for (char c : s)
    if (c >= 'A' && c <= 'Z') return true;
  return false;
}

// The reason a reference is invalid, or "" with `out` filled.
std::string parse_into(std::string_view ref, Reference& out) {
  if (ref.empty()) return "empty";
  std::string_view name = ref;

  size_t at = name.find('@');
  if (at != std::string_view::npos) {
    std::string_view digest = name.substr(at + 1);
    name = name.substr(0, at);
    size_t colon = digest.find(':');
    if (colon == std::string_view::npos) return "digest \"" + std::string(digest) + "\" has no algorithm";
    if (digest.substr(0, colon) != "sha256")
      return "unsupported digest algorithm \"" + std::string(digest.substr(0, colon)) +
             "\" (only sha256)";
    if (!is_sha256_digest(digest)) return "a sha256 digest is 64 lowercase hex digits";
    out.digest = std::string(digest);
  }

  // A ':' after the last '/' starts the tag ("localhost:5000/x" has none).
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = name.substr(colon + 1);
    name = name.substr(0, colon);
    if (!valid_tag(tag)) return "bad tag \"" + std::string(tag) + "\"";
    out.tag = std::string(tag);
  }
  if (name.empty()) return "no repository name";
  if (name.size() > kMaxNameLength)
    return "name longer than " + std::to_string(kMaxNameLength) + " characters";

  std::string_view path = name;
  size_t first_slash = name.find('/');
  if (first_slash != std::string_view::npos) {
    std::string_view first = name.substr(0, first_slash);
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
        has_upper(first)) {
      if (std::string why = check_domain(first); !why.empty()) return why;
      out.registry = std::string(first);
      path = name.substr(first_slash + 1);
    }
  }
  if (out.registry.empty() || out.registry == "index.docker.io") out.registry = kDockerHub;

  if (path.empty()) return "no repository name";
  for (const std::string& comp : text::split(path, '/'))
    if (!valid_path_component(comp)) {
      if (has_upper(comp)) return "repository name must be lowercase";
      return "bad repository name component \"" + comp + "\"";
    }
  out.repository = std::string(path);
  if (out.registry == kDockerHub && path.find('/') == std::string_view::npos)
    out.repository = "library/" + out.repository;
  if (out.tag.empty() && out.digest.empty()) out.tag = "latest";
  return {};
}

}  // namespace

std::string Reference::api_host() const {
  if (registry == kDockerHub) return "registry-1.docker.io";
  return registry;
}

std::string Reference::str() const {
  std::string out = registry + "/" + repository;
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

std::string Reference::short_name() const {
  std::string out;
  if (registry == kDockerHub) {
    out = repository.starts_with("library/") ? repository.substr(8) : repository;
  } else {
    out = registry + "/" + repository;
  }
  if (!tag.empty())
    out += ":" + tag;
  else if (digest.size() > 7)
    out += ":sha256-" + digest.substr(7, 12);
  return out;
}

std::string Reference::manifest_ref() const { return digest.empty() ? tag : digest; }

Result<Reference> parse_reference(std::string_view ref) {
  Reference out;
  std::string why = parse_into(ref, out);
  if (!why.empty())
    return error(ErrorKind::kBadInput,
                 "invalid image reference \"" + printable_name(ref) + "\": " + printable_name(why));
  return out;
}

bool is_loopback_host(std::string_view host_with_optional_port) {
  std::string_view s = host_with_optional_port;
  if (s.empty()) return false;
  // A bare IPv6 address ("::1") has colons but no brackets and no port.
  bool bare_ipv6 = s.find(':') != s.rfind(':') && s.front() != '[';
  std::string_view host = bare_ipv6 ? s : split_host_port(s).host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "localhost") return true;
  std::string h(host);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

}  // namespace togo::image
