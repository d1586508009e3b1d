// The env's /etc/hosts, /etc/hostname and /etc/resolv.conf, generated to
// match its network mode. Pure: the caller reads the host's files and writes
// the results where the plan binds them.
#pragma once

#include <string>
#include <string_view>

#include "net/settings.h"

namespace togo::net {

/// /etc/hosts for an env. Loopback names always; the env's hostname on
/// 127.0.1.1 (Debian's convention) with `host` and `none`, on the env's own
/// address (kEnvAddress) with `private`. With `host`, a non-empty
/// `host_hosts` (the host's /etc/hosts) is kept whole so the env resolves
/// the same names as the host, and the hostname line is added unless the
/// host's file already names it.
std::string hosts_file(std::string_view hostname, NetworkMode mode,
                       std::string_view host_hosts = {});

/// /etc/hostname: the name and a newline.
std::string hostname_file(std::string_view hostname);

/// /etc/resolv.conf for an env, from the host's.
/// - host: the host's text unchanged (same network, same resolvers, even
///   loopback ones such as systemd-resolved's 127.0.0.53).
/// - private: `nameserver 10.0.2.3`, the helper's DNS forwarder (slirp4netns
///   has it built in; pasta is started with --dns-forward 10.0.2.3). It
///   relays to the host's first name server from the host's side, so a
///   loopback resolver on the host works too. The host's search, domain and
///   options lines are kept; its nameserver lines are not.
/// - none: only a comment (no name servers: lookups fail at once).
std::string resolv_conf(NetworkMode mode, std::string_view host_resolv);

}  // namespace togo::net
