#include "net/helper_argv.h"

namespace togo::net {

namespace {

std::string str(std::string_view s) { return std::string(s); }

// The value of a JSON string that follows `"key"` and a colon: an escaped
// character stands for itself, except \n \t \r which become spaces; at most
// about 500 characters; "" when absent or malformed.
std::string json_string_after(std::string_view text, std::string_view key) {
  std::string quoted = "\"" + str(key) + "\"";
  size_t at = text.find(quoted);
  if (at == std::string_view::npos) return {};
  size_t i = at + quoted.size();
  while (i < text.size() && (text[i] == ' ' || text[i] == ':')) ++i;
  if (i >= text.size() || text[i] != '"') return {};
  std::string out;
  for (++i; i < text.size() && text[i] != '"'; ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      c = text[++i];
      if (c == 'n' || c == 't' || c == 'r') c = ' ';
    }
    // Control characters from another process are not passed on to people.
    out += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
    if (out.size() > 500) break;
  }
  return out;
}

}  // namespace

std::string_view helper_name(HelperKind kind) {
  return kind == HelperKind::kPasta ? "pasta" : "slirp4netns";
}

std::string_view helper_package(HelperKind kind) {
  return kind == HelperKind::kPasta ? "passt" : "slirp4netns";
}

std::string pasta_port_spec(const PortForward& port) {
  return port.host_address + "/" + std::to_string(port.host_port) + ":" +
         std::to_string(port.env_port);
}

std::vector<std::string> pasta_argv(const std::string& exe, const HelperArgs& args) {
  // clang-format off
  std::vector<std::string> v = {exe, "--foreground", "--quiet", "--config-net",
                                "--ns-ifname", str(kInterface),
                                "--address", str(kEnvAddress),
                                "--netmask", std::to_string(kPrefixLength),
                                "--gateway", str(kGateway),
                                "--dns-forward", str(kDnsAddress),
                                "--mtu", std::to_string(args.mtu)};
  // clang-format on
  if (!args.host_loopback) v.push_back("--no-map-gw");
  for (Protocol proto : {Protocol::kTcp, Protocol::kUdp}) {
    const char* flag = proto == Protocol::kTcp ? "--tcp-ports" : "--udp-ports";
    bool any = false;
    for (const auto& p : args.ports)
      if (p.proto == proto) {
        v.insert(v.end(), {flag, pasta_port_spec(p)});
        any = true;
      }
    if (!any) v.insert(v.end(), {flag, "none"});
  }
  // Nothing the env listens on is forwarded back to the host's side.
  v.insert(v.end(), {"--tcp-ns", "none", "--udp-ns", "none"});
  if (!args.runas.empty()) v.insert(v.end(), {"--runas", args.runas});
  if (!args.pid_file.empty()) v.insert(v.end(), {"--pid", args.pid_file});
  if (args.target.pid > 0) {
    v.push_back(std::to_string(args.target.pid));
  } else {
    if (!args.target.userns_path.empty()) v.insert(v.end(), {"--userns", args.target.userns_path});
    // pasta would quit when the namespace file goes away: togo removes it
    // once pasta has the namespace open, and stops pasta itself.
    v.insert(v.end(), {"--no-netns-quit", "--netns", args.target.netns_path});
  }
  return v;
}

std::vector<std::string> slirp4netns_argv(const std::string& exe, const HelperArgs& args) {
  std::vector<std::string> v = {exe, "--configure", "--mtu=" + std::to_string(args.mtu),
                                "--cidr=10.0.2.0/" + std::to_string(kPrefixLength)};
  if (!args.host_loopback) v.push_back("--disable-host-loopback");
  if (args.sandbox) v.insert(v.end(), {"--enable-sandbox", "--enable-seccomp"});
  if (args.ready_fd >= 0) v.push_back("--ready-fd=" + std::to_string(args.ready_fd));
  if (args.exit_fd >= 0) v.push_back("--exit-fd=" + std::to_string(args.exit_fd));
  if (!args.api_socket.empty()) v.push_back("--api-socket=" + args.api_socket);
  if (args.target.pid > 0) {
    v.push_back(std::to_string(args.target.pid));
  } else {
    v.push_back("--netns-type=path");
    if (!args.target.userns_path.empty()) v.push_back("--userns-path=" + args.target.userns_path);
    v.push_back(args.target.netns_path);
  }
  v.push_back(str(kInterface));
  return v;
}

std::string slirp_add_hostfwd(const PortForward& port) {
  // Every value is checked by parse_port (digits, a dotted IPv4 address), so
  // none needs escaping.
  return R"({"execute": "add_hostfwd", "arguments": {"proto": ")" + str(to_string(port.proto)) +
         R"(", "host_addr": ")" + port.host_address + R"(", "host_port": )" +
         std::to_string(port.host_port) + R"(, "guest_addr": ")" + str(kEnvAddress) +
         R"(", "guest_port": )" + std::to_string(port.env_port) + "}}";
}

Result<void> parse_slirp_reply(std::string_view reply) {
  if (reply.find("\"error\"") != std::string_view::npos) {
    std::string desc = json_string_after(reply, "desc");
    return error(ErrorKind::kFailed,
                 "slirp4netns refused: " + (desc.empty() ? std::string("no reason given") : desc));
  }
  if (reply.find("\"return\"") != std::string_view::npos) return {};
  return error(ErrorKind::kFailed, "slirp4netns sent an unexpected API reply");
}

}  // namespace togo::net
