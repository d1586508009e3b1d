// Networking: the user-mode helper behind --network private, the name
// servers envs will use, and the proxy settings they will not inherit.
#include <unistd.h>

#include <cerrno>

#include "base/text.h"
#include "doctor/probes.h"

namespace togo::doctor {
namespace {

bool loopback(std::string_view addr) {
  return addr.starts_with("127.") || addr == "::1" || addr == "localhost" ||
         addr.starts_with("[::1]");
}

/// The host part of a proxy URL: "http://u:p@proxy:3128/" -> "proxy".
std::string url_host(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find('/'));
  if (size_t at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
  if (url.starts_with("[")) return std::string(url.substr(0, url.find(']') + 1));
  return std::string(url.substr(0, url.find(':')));
}

/// A proxy URL with any password hidden.
std::string masked(std::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  size_t at = url.find('@', start);
  size_t slash = url.find('/', start);
  if (at == std::string_view::npos || (slash != std::string_view::npos && slash < at))
    return std::string(url);
  return std::string(url.substr(0, start)) + "***@" + std::string(url.substr(at + 1));
}

}  // namespace

Finding probe_net_helpers(const HostView& v) {
  Finding f;
  std::string slirp = v.which("slirp4netns");
  std::string pasta = v.which("pasta");
  int tun = v.live.open_rw(v.dev() + "/net/tun");
  // As --network private does: pasta first, else slirp4netns (net/usernet.h).
  f.found = pasta.empty() ? "pasta is not installed" : "pasta at " + pasta;
  if (slirp.empty()) {
    f.found += "; slirp4netns is not installed";
  } else {
    auto version = v.live.output({slirp, "--version"});
    f.found += "; " + (version ? *version : std::string("slirp4netns")) + " at " + slirp;
  }
  f.found += tun == 0 ? "; /dev/net/tun opens" : "; /dev/net/tun: " + errno_text(tun);
  if (slirp.empty() && pasta.empty()) {
    f.status = Status::kDegraded;
    f.why = "--network private needs pasta or slirp4netns (--network host and none work)";
    f.fix = "sudo apt install passt (it has pasta), or slirp4netns";
  } else if (tun != 0) {
    f.status = Status::kDegraded;
    f.why =
        "pasta and slirp4netns give the env its network through /dev/net/tun: --network "
        "private cannot start (--network host and none work)";
    f.fix = tun == ENOENT || tun == ENODEV || tun == ENXIO
                ? "sudo modprobe tun"
                : "sudo chmod 0666 /dev/net/tun (its usual mode)";
  }
  return f;
}

Finding probe_dns(const HostView& v) {
  Finding f;
  const std::string path = v.etc() + "/resolv.conf";
  auto text = v.read(path);
  char target[4096];
  ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
  std::string link = n > 0 ? " -> " + std::string(target, static_cast<size_t>(n)) : "";
  if (!text) {
    f.status = Status::kDegraded;
    f.found = "/etc/resolv.conf cannot be read" + link;
    f.why = "envs copy the host's name servers from it: without them names do not resolve";
    return f;
  }
  std::vector<std::string> servers;
  bool any_loopback = false;
  for (auto& line : text::split(*text, '\n')) {
    std::string l = trim(line);
    if (!l.starts_with("nameserver")) continue;
    std::string addr = trim(std::string_view(l).substr(10));
    if (addr.empty()) continue;
    any_loopback = any_loopback || loopback(addr);
    servers.push_back(addr == "127.0.0.53" ? addr + " (systemd-resolved's stub)" : addr);
  }
  if (servers.empty()) {
    f.status = Status::kDegraded;
    f.found = "/etc/resolv.conf" + link + " names no nameserver";
    f.why = "envs will not resolve names";
    return f;
  }
  f.found = "nameserver " + join(servers) + " in /etc/resolv.conf" + link;
  if (any_loopback)
    f.found +=
        "; --network host envs use it as it is, and --network private envs, which "
        "cannot reach the host's loopback, ask 10.0.2.3, the helper's forwarder to it";
  else
    f.found += "; envs use it (--network private through the helper's forwarder 10.0.2.3)";
  return f;
}

Finding probe_proxy(const HostView& v) {
  Finding f;
  std::vector<std::string> set;
  bool on_loopback = false;
  for (const char* name : {"http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy",
                           "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "ALL_PROXY", "NO_PROXY"}) {
    std::string value = v.getenv(name);
    if (value.empty()) continue;
    bool is_list = std::string_view(name) == "no_proxy" || std::string_view(name) == "NO_PROXY";
    set.push_back(std::string(name) + "=" + (is_list ? value : masked(value)));
    if (!is_list) on_loopback = on_loopback || loopback(url_host(value));
  }
  if (set.empty()) {
    f.found = "no proxy variables are set";
    return f;
  }
  f.status = Status::kDegraded;
  f.found = join(set) + " in togo's environment";
  f.why =
      "togo does not pass your environment into envs: programs inside will not use the "
      "proxy unless the env sets it";
  if (on_loopback)
    f.why +=
        "; and a proxy on this host's loopback cannot be reached from --network private "
        "envs";
  return f;
}

}  // namespace togo::doctor
