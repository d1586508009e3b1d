// SHA-256 through OpenSSL's libcrypto (hardware-accelerated where the CPU allows).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"

namespace togo {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  /// The digest as 64 lowercase hex characters; the object is spent after.
  std::string hex();

  /// "sha256:<hex>" of a whole buffer.
  static std::string digest_of(std::string_view data);
  /// "sha256:<hex>" of what `fd` reads from its offset to EOF; the bytes
  /// read are added to `size`.
  static Result<std::string> digest_of_fd(int fd, uint64_t& size, const std::string& what);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// True if `s` is 64 lowercase hex digits (a SHA-256 in hex, no prefix).
bool is_sha256_hex(std::string_view s);
/// True if `s` is "sha256:" followed by 64 lowercase hex digits.
bool is_sha256_digest(std::string_view s);

}  // namespace togo
