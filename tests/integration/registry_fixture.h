// A real OCI registry for tests: Debian's distribution registry
// (/usr/bin/docker-registry) on 127.0.0.1 at a free port, storing into a
// temporary directory, optionally behind basic auth; plus small OCI image
// layouts made on the spot and copied into it with skopeo.
//
// Self-contained (POSIX, libc and togo_base only, no gtest, no harness.h)
// so that both test binaries can use it: CMakeLists.txt compiles
// registry_fixture.cc into the unit test binary too, for
// src/image/registry_test.cc.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace togo::test {

/// Why a registry cannot be started here ("" if it can): a missing
/// /usr/bin/docker-registry (package docker-registry) or skopeo.
std::string registry_missing_reason();

/// Writes `data` to `path` (created or truncated); false, with a message on
/// stderr, if it cannot.
bool write_text(const std::string& path, std::string_view data);

/// A loopback port nobody listens on right now (a small race with other
/// tests is accepted: whatever binds it then fails and says so).
uint16_t free_port();

/// The one account of a registry started with basic auth.
inline constexpr const char* kRegistryUser = "togo";
inline constexpr const char* kRegistryPassword = "s3cret-pw";

/// A running docker-registry, stopped (SIGTERM, then SIGKILL after 5 s) and
/// its directory removed on destruction.
class LocalRegistry {
 public:
  struct Options {
    /// htpasswd auth with kRegistryUser / kRegistryPassword.
    bool basic_auth = false;
  };
  /// Starts the registry and waits (up to 20 s) until GET /v2/ answers.
  /// Check ok(); if false, why() says what went wrong.
  explicit LocalRegistry(Options o);
  LocalRegistry() : LocalRegistry(Options{}) {}
  ~LocalRegistry();
  LocalRegistry(const LocalRegistry&) = delete;
  LocalRegistry& operator=(const LocalRegistry&) = delete;

  bool ok() const { return why_.empty(); }
  const std::string& why() const { return why_; }
  /// "127.0.0.1:<port>", as a registry in an image reference.
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }
  /// The temporary directory (config, htpasswd, data/, registry.log).
  const std::string& dir() const { return dir_; }
  /// What the registry printed so far.
  std::string log() const;

 private:
  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::string why_;
};

/// What a command printed and how it ended (128+N for signal N, 127 if it
/// could not be started).
struct ToolResult {
  int status = -1;
  std::string out, err;
};

/// Runs argv (searched in PATH) with stdin from /dev/null, killing it after
/// `timeout_s` seconds.
ToolResult run_tool(const std::vector<std::string>& argv, int timeout_s = 120);

/// `skopeo copy --dest-tls-verify=false [--dest-creds creds] [--all] src dest`,
/// e.g. src "oci:/tmp/x/layout:v1", dest "docker://127.0.0.1:5000/test/img:v1";
/// `all` copies every image of an index, not only this host's.
ToolResult skopeo_copy(const std::string& src, const std::string& dest, const std::string& creds = "",
                       bool all = false);

/// An OCI image layout written by make_oci_layout().
struct TestImage {
  std::string layout;                // the layout directory, for "oci:<layout>:<tag>"
  std::string manifest;              // the manifest's bytes
  std::string manifest_digest;
  std::string config_digest;
  std::vector<std::string> layers;   // each layer's bytes (uncompressed tar)
  std::vector<std::string> layer_digests;
};

/// Writes an OCI image layout in `dir` (created if needed) holding one image
/// tagged `tag`: one uncompressed tar layer per element of `layers`, each
/// with regular files name -> content (mode 0644, owner 0, mtime 0), and a
/// linux/amd64 config. Returns an empty `layout` on failure (errno-style
/// message on stderr).
TestImage make_oci_layout(const std::string& dir, const std::string& tag,
                          const std::vector<std::map<std::string, std::string>>& layers);

}  // namespace togo::test
