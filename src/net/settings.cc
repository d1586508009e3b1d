#include "net/settings.h"

#include <arpa/inet.h>

namespace togo::net {

namespace {

constexpr std::string_view kPortForm = "expected [IP:]HOST:ENV[/tcp|/udp], e.g. 8080:80";

std::unexpected<Error> bad_port(std::string_view text, const std::string& why) {
  return error(ErrorKind::kUsage, "--port " + std::string(text) + ": " + why,
               std::string(kPortForm));
}

// A decimal port number 1-65535; no signs, spaces or other characters.
bool parse_number(std::string_view s, uint16_t& out) {
  if (s.empty() || s.size() > 5) return false;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v < 1 || v > 65535) return false;
  out = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

std::string_view to_string(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::kHost:
      return "host";
    case NetworkMode::kNone:
      return "none";
    case NetworkMode::kPrivate:
      return "private";
  }
  return "host";
}

Result<NetworkMode> parse_network(std::string_view text) {
  for (auto m : {NetworkMode::kHost, NetworkMode::kNone, NetworkMode::kPrivate})
    if (text == to_string(m)) return m;
  return error(ErrorKind::kUsage, "--network " + std::string(text) + ": unknown network mode",
               "use host (share the host's network), none (loopback only) or private "
               "(its own network with user-mode networking)");
}

std::string_view to_string(Protocol proto) { return proto == Protocol::kUdp ? "udp" : "tcp"; }

Result<PortForward> parse_port(std::string_view text) {
  PortForward p;
  std::string_view rest = text;
  if (size_t slash = rest.rfind('/'); slash != std::string_view::npos) {
    std::string_view proto = rest.substr(slash + 1);
    if (proto == "udp")
      p.proto = Protocol::kUdp;
    else if (proto != "tcp")
      return bad_port(text, "unknown protocol \"" + std::string(proto) + "\" (tcp or udp)");
    rest = rest.substr(0, slash);
  }
  if (rest.starts_with('['))
    return bad_port(text, "IPv6 host addresses are not supported; use an IPv4 address");

  // From the right: ENV, then HOST, then an optional address.
  size_t last = rest.rfind(':');
  if (last == std::string_view::npos)
    return bad_port(text, "needs both a host port and an env port");
  std::string_view env = rest.substr(last + 1);
  std::string_view front = rest.substr(0, last);
  std::string_view host = front;
  if (size_t colon = front.rfind(':'); colon != std::string_view::npos) {
    std::string_view addr = front.substr(0, colon);
    host = front.substr(colon + 1);
    in_addr parsed;
    std::string a(addr);
    if (addr.empty() || addr.find(':') != std::string_view::npos ||
        ::inet_pton(AF_INET, a.c_str(), &parsed) != 1)
      return bad_port(text, "\"" + a + "\" is not an IPv4 address");
    p.host_address = std::move(a);
  }
  if (!parse_number(host, p.host_port))
    return bad_port(text,
                    "host port \"" + std::string(host) + "\" is not a number from 1 to 65535");
  if (!parse_number(env, p.env_port))
    return bad_port(text, "env port \"" + std::string(env) + "\" is not a number from 1 to 65535");
  return p;
}

std::string format_port(const PortForward& port) {
  std::string s = port.host_address + ":" + std::to_string(port.host_port) + ":" +
                  std::to_string(port.env_port);
  if (port.proto == Protocol::kUdp) s += "/udp";
  return s;
}

Result<void> check_ports(NetworkMode mode, const std::vector<PortForward>& ports) {
  if (ports.empty()) return {};
  if (mode != NetworkMode::kPrivate)
    return error(ErrorKind::kUsage,
                 "--port needs --network private (this env's network is " +
                     std::string(to_string(mode)) + ")",
                 mode == NetworkMode::kHost
                     ? "with --network host the env's ports are already the host's"
                     : "use --network private to forward ports into the env");
  // Two forwards clash on the same port and protocol when their addresses
  // are equal or either is 0.0.0.0 (which covers every address).
  for (size_t i = 0; i < ports.size(); ++i)
    for (size_t j = 0; j < i; ++j) {
      const PortForward &a = ports[i], &b = ports[j];
      if (a.host_port == b.host_port && a.proto == b.proto &&
          (a.host_address == b.host_address || a.host_address == "0.0.0.0" ||
           b.host_address == "0.0.0.0"))
        return error(ErrorKind::kUsage, "--port " + format_port(a) + ": host port " +
                                            std::to_string(a.host_port) + "/" +
                                            std::string(to_string(a.proto)) +
                                            " is already forwarded by " + format_port(b));
    }
  return {};
}

Result<void> check_bindable(const std::vector<PortForward>& ports, int unprivileged_start,
                            bool root) {
  if (root) return {};
  for (const auto& p : ports)
    if (p.host_port < unprivileged_start)
      return error(
          ErrorKind::kUsage,
          "--port " + format_port(p) + ": host ports below " + std::to_string(unprivileged_start) +
              " need root on this host",
          "forward a higher host port, e.g. " +
              std::to_string(p.host_port < 100 ? 8000 + p.host_port : 10000 + p.host_port) + ":" +
              std::to_string(p.env_port) +
              ", or lower the sysctl net.ipv4.ip_unprivileged_port_start");
  return {};
}

}  // namespace togo::net
