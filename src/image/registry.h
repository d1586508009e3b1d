// A client for one repository of an OCI distribution (Docker registry API
// v2) server: manifests and blobs in both directions, with the registry's
// token or basic authentication, resumable blob downloads verified against
// their digests, and errors that name the registry and the object.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "image/http.h"
#include "image/reference.h"

namespace togo::image {

/// A line for the person running the command.
using Notice = std::function<void(const std::string&)>;

struct Credentials {
  std::string user;
  std::string password;
};

/// Parses "user:password" as given to --creds; the password may hold ':'.
/// kUsage if there is no ':' or the user is empty.
Result<Credentials> parse_creds(std::string_view s);

/// The credentials stored for `registry` (as in Reference::registry:
/// "docker.io", "localhost:5000") in a Docker config.json text: the
/// "auths" entry whose key names that host ("https://index.docker.io/v1/"
/// for docker.io), with "auth" (base64 of user:password) or "username" and
/// "password". nullopt if there is none. When the config sends this
/// registry to a credential helper (credsStore, credHelpers), which togo
/// does not run, `note` is set to say so. kBadInput if the text is not a
/// valid config.
Result<std::optional<Credentials>> credentials_from_docker_config(std::string_view config_json,
                                                                  std::string_view registry,
                                                                  std::string* note = nullptr);

/// credentials_from_docker_config() on $DOCKER_CONFIG/config.json, else
/// ~/.docker/config.json; nullopt if the file does not exist. `notice`
/// hears about credential helpers that are skipped.
Result<std::optional<Credentials>> credentials_for(std::string_view registry, const Notice& notice = {});

/// One challenge of a WWW-Authenticate header: a scheme in lowercase
/// ("bearer", "basic") and its parameters (names in lowercase).
struct Challenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};

/// Parses a WWW-Authenticate value, which may hold several challenges:
/// `Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`.
/// Malformed parts are skipped; never fails.
std::vector<Challenge> parse_challenges(std::string_view header);

/// The message of a registry's error body
/// (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`),
/// messages joined with "; "; empty if the body is not such a document.
std::string registry_error_message(std::string_view body);

struct RegistryOptions {
  /// Sent when the registry asks for them; see credentials_for().
  std::optional<Credentials> creds;
  /// Loopback registries always speak plain HTTP (as Docker does). With
  /// `insecure`, other registries are reached over TLS without verifying
  /// the certificate, falling back to plain HTTP when TLS fails.
  bool insecure = false;
  /// Ask for push rights as well as pull.
  bool push = false;
  /// Timeouts, CA file and so on for the connections.
  http::ClientOptions http;
  /// Resumed blob downloads that fail on the network are retried this many
  /// times while they make progress.
  int blob_retries = 3;
};

/// A manifest or index as the registry sent it.
struct FetchedManifest {
  std::string bytes;
  std::string media_type;  // from Content-Type, else the document's mediaType
  std::string digest;      // sha256 of `bytes`, always computed here
};

/// Bytes transferred so far for the object at hand (a resumed download
/// starts at the bytes already present).
using Progress = std::function<void(uint64_t)>;

/// Talks to the registry of `ref` about `ref.repository`. Every error reads
/// "pulling docker.io/library/debian: <object>: <why>" ("pushing" when
/// RegistryOptions::push); a 404 is kNotFound, a peer's nonsense kBadInput.
class Registry {
 public:
  Registry(Reference ref, RegistryOptions opts = {});
  ~Registry();
  Registry(Registry&&) noexcept;
  Registry& operator=(Registry&&) noexcept;

  /// GET /v2/: checks that a registry answers, picks plain HTTP or TLS and
  /// learns how it wants to be authenticated. Called by every operation
  /// the first time; calling it first only moves its errors earlier.
  Result<void> ping();

  /// The manifest or index called `tag_or_digest`, asked for as OCI or
  /// Docker schema 2. When asked by digest, the bytes must hash to it, and
  /// to the sha256 digest the registry names in Docker-Content-Digest when
  /// it sends one (kBadInput "manifest v1: digest mismatch ..."). At most 4 MiB.
  Result<FetchedManifest> get_manifest(std::string_view tag_or_digest);

  /// The size of a blob if the repository has it (kBadInput if the answer
  /// gives no valid Content-Length), nullopt if not.
  Result<std::optional<uint64_t>> head_blob(std::string_view digest);

  /// Downloads blob `digest` (of `size` bytes, when known) into `fd`, a
  /// regular file opened for reading and writing. If `fd` already holds a
  /// partial download, only the rest is asked for (HTTP Range) and the
  /// bytes present are hashed first. Interrupted transfers are resumed up
  /// to RegistryOptions::blob_retries times. On success `fd` holds exactly
  /// the blob. On a digest or size mismatch `fd` is truncated to zero (so a
  /// retry starts clean) and the error is kBadInput
  /// "blob sha256:...: digest mismatch ...".
  Result<void> fetch_blob(std::string_view digest, std::optional<uint64_t> size, int fd,
                          const Progress& progress = {});

  /// Uploads `size` bytes of `fd` (from offset 0) as blob `digest`, unless
  /// the repository has it already. True if it was uploaded, false if it
  /// was there. The bytes are hashed as they are sent (`fd` is read once):
  /// if they do not hash to `digest`, a registry that verifies refuses them
  /// (its error is returned), and one that accepts them gets kBadInput
  /// "blob sha256:...: the data sent hashes to sha256:...". `sent_digest`,
  /// if given, receives the digest of the bytes sent once all of them were,
  /// whatever the answer.
  Result<bool> push_blob(std::string_view digest, int fd, uint64_t size, const Progress& progress = {},
                         std::string* sent_digest = nullptr);

  /// Stores a manifest or index under `tag_or_digest`; returns its digest.
  Result<std::string> put_manifest(std::string_view tag_or_digest, std::string_view bytes,
                                   std::string_view media_type);

  /// "docker.io/library/debian", as errors name it.
  std::string name() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace togo::image
