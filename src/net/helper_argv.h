// Command lines for the user-mode networking helpers from Debian, pasta
// (package passt) and slirp4netns, and slirp4netns's API messages. Pure
// (Lima's idea: the command line is data, table-tested).
//
// Both helpers get the same network (settings.h): the env is 10.0.2.100/24
// on eth0, the gateway 10.0.2.2, a DNS forwarder on 10.0.2.3, MTU 65520, and
// the env cannot reach the host's loopback through the gateway.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "net/settings.h"

namespace togo::net {

enum class HelperKind { kPasta, kSlirp4netns };

/// The program's name: "pasta" or "slirp4netns".
std::string_view helper_name(HelperKind kind);
/// The Debian package that has it: "passt" or "slirp4netns".
std::string_view helper_package(HelperKind kind);

/// Where a helper attaches.
struct HelperTarget {
  /// The env's first process: its network namespace, and its user namespace
  /// when that differs from the helper's. 0 to use netns_path instead.
  pid_t pid = 0;
  std::string netns_path;   // a network namespace file
  std::string userns_path;  // with netns_path: a user namespace to join, or ""
};

struct HelperArgs {
  HelperTarget target;
  int mtu = kDefaultMtu;
  /// pasta takes them on its command line; slirp4netns through its API
  /// socket after it is ready (slirp_add_hostfwd).
  std::vector<PortForward> ports;
  /// Lets the env reach the host's 127.0.0.1 through the gateway. Off:
  /// services that listen only on the host's loopback stay private.
  bool host_loopback = false;

  // slirp4netns only.
  int ready_fd = -1;       // it writes "1" here once configured (and its API is up)
  int exit_fd = -1;        // it exits when this fd has an event: its writer closed
  std::string api_socket;  // the API socket it creates ("" for none)
  bool sandbox = true;     // --enable-sandbox --enable-seccomp

  // pasta only.
  std::string pid_file;  // pasta writes its pid here once ready ("" for none)
  std::string runas;     // --runas UID:GID ("" = pasta's default: root becomes nobody)
};

/// pasta in the foreground (so it stays togo's child), quiet, configuring
/// the namespace itself (--config-net), forwarding only the given ports:
/// "-t ADDR/HOST:ENV" for TCP and "-u ..." for UDP ("none" when there are
/// none), never from the env to the host (-T none -U none), with
/// --no-map-gw unless host_loopback.
std::vector<std::string> pasta_argv(const std::string& exe, const HelperArgs& args);

/// slirp4netns configuring the namespace (--configure) on the 10.0.2.0/24
/// network, with ready and exit fds, the API socket, and sandboxing.
std::vector<std::string> slirp4netns_argv(const std::string& exe, const HelperArgs& args);

/// pasta's spec for one forward: "127.0.0.1/8080:80".
std::string pasta_port_spec(const PortForward& port);

/// The slirp4netns API request that adds one forward to the env's address.
std::string slirp_add_hostfwd(const PortForward& port);

/// Reads a slirp4netns API reply: success for {"return": ...}; for
/// {"error": {"desc": "..."}} an error with the description. A reply that is
/// neither is an error too (it comes from another process: never trusted).
Result<void> parse_slirp_reply(std::string_view reply);

}  // namespace togo::net
