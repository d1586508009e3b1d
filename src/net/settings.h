// An env's network settings as people write them: `--network host|none|private`
// and `--port [IP:]HOST:ENV[/tcp|/udp]`. Pure: parsing, checking, formatting.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace togo::net {

/// How an env reaches the network.
enum class NetworkMode {
  kHost,     // the host's network namespace, shared (the default, like WSL)
  kNone,     // its own network namespace with only loopback
  kPrivate,  // its own network namespace, user-mode networking to the outside
};

/// "host", "none" or "private": the words parse_network accepts.
std::string_view to_string(NetworkMode mode);

/// Parses a --network value.
Result<NetworkMode> parse_network(std::string_view text);

/// The private network's layout. Both helpers are configured with it, so the
/// env's files and addresses do not depend on which helper runs.
inline constexpr std::string_view kInterface = "eth0";  // inside the env
inline constexpr std::string_view kEnvAddress = "10.0.2.100";
inline constexpr int kPrefixLength = 24;  // 10.0.2.0/24
inline constexpr std::string_view kGateway = "10.0.2.2";
inline constexpr std::string_view kDnsAddress = "10.0.2.3";  // forwards to the host's resolver
inline constexpr int kDefaultMtu = 65520;

enum class Protocol { kTcp, kUdp };
std::string_view to_string(Protocol proto);

/// The host address a forward listens on when none is given: only this
/// machine can connect, as with WSL's localhost forwarding. Write
/// 0.0.0.0:HOST:ENV to accept connections from other machines.
inline constexpr std::string_view kDefaultHostAddress = "127.0.0.1";

/// One forward: connections to host_address:host_port on the host reach
/// env_port inside the env.
struct PortForward {
  std::string host_address = std::string(kDefaultHostAddress);  // IPv4, dotted
  uint16_t host_port = 0;
  uint16_t env_port = 0;
  Protocol proto = Protocol::kTcp;

  bool operator==(const PortForward&) const = default;
};

/// Parses a --port value: "8080:80", "127.0.0.1:8080:80", "8080:80/udp".
/// Ports are 1-65535; the address is IPv4. Errors are kUsage.
Result<PortForward> parse_port(std::string_view text);

/// The canonical text of a forward, which parse_port reads back unchanged:
/// "127.0.0.1:8080:80", with "/udp" for UDP.
std::string format_port(const PortForward& port);

/// Checks a set of forwards against the mode: forwards need `private` (with
/// `host` the env's ports are the host's already, with `none` nothing can
/// reach it), and no host address, port and protocol may be used twice.
Result<void> check_ports(NetworkMode mode, const std::vector<PortForward>& ports);

/// Checks that an unprivileged helper can bind every host port: ports below
/// `unprivileged_start` (the sysctl net.ipv4.ip_unprivileged_port_start)
/// need root. `root` is whether togo runs as root on the host.
Result<void> check_bindable(const std::vector<PortForward>& ports, int unprivileged_start,
                            bool root);

}  // namespace togo::net
