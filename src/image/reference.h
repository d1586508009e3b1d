// Image references ("debian:bookworm", "ghcr.io/o/r@sha256:...") parsed and
// normalized the way Docker does, validated against the grammar of the
// distribution project's reference package.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace togo::image {

/// A normalized reference: "debian" is registry "docker.io", repository
/// "library/debian", tag "latest". A reference with a digest and no tag keeps
/// the tag empty; with both, both are kept and the digest decides.
struct Reference {
  std::string registry;    // "docker.io", "ghcr.io", "localhost:5000", "[::1]:5000"
  std::string repository;  // "library/debian", lowercase path components
  std::string tag;         // "" or [\w][\w.-]{0,127}
  std::string digest;      // "" or "sha256:<64 lowercase hex>"

  /// The host (and port) to talk to: "registry-1.docker.io" for docker.io.
  std::string api_host() const;
  /// The full canonical form: "docker.io/library/debian:latest",
  /// "ghcr.io/o/r:v1@sha256:...".
  std::string str() const;
  /// The familiar form, used to name the image in the store: "debian:bookworm",
  /// "user/repo:latest", "ghcr.io/o/r:v1". Without a tag, the digest shows as a
  /// tag-like "sha256-<first 12 hex>" ("debian:sha256-0123456789ab") because
  /// store names cannot hold '@'.
  std::string short_name() const;
  /// What to ask the registry's manifests endpoint for: the digest if set,
  /// else the tag.
  std::string manifest_ref() const;

  bool operator==(const Reference&) const = default;
};

/// Parses `[registry/]path[:tag][@digest]`. The first component is a registry
/// when it contains '.' or ':', is "localhost", or has an uppercase letter;
/// "index.docker.io" becomes "docker.io" and a one-component docker.io path
/// gets "library/". Only sha256 digests are accepted. Errors are kBadInput
/// "invalid image reference \"<ref>\": <why>".
Result<Reference> parse_reference(std::string_view ref);

/// True for hosts that name this machine: "localhost", 127.0.0.0/8 and "::1",
/// with or without a port ("localhost:5000", "[::1]:5000", "127.0.0.1").
bool is_loopback_host(std::string_view host_with_optional_port);

}  // namespace togo::image
