#include "base/sha256.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <cerrno>

namespace togo {

// The one-shot SHA256_* interface is deprecated in OpenSSL 3 in favour of EVP,
// but it pulls far less of libcrypto into a static binary and is as fast.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

struct Sha256::State {
  SHA256_CTX ctx;
};

Sha256::Sha256() : state_(new State) {
  // The low-level interface does not initialise OpenSSL, whose CPU probe
  // picks the SHA instructions (see main.cc: the static build defers it).
  // Any option makes the first call initialise (0 returns at once); this
  // one also spares the exit a cleanup that frees what exit frees anyway.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
  SHA256_Init(&state_->ctx);
}
Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t size) { SHA256_Update(&state_->ctx, data, size); }

std::string Sha256::hex() {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256_Final(md, &state_->ctx);
  static const char digits[] = "0123456789abcdef";
  std::string out(2 * sizeof md, '0');
  for (size_t i = 0; i < sizeof md; i++) {
    out[2 * i] = digits[md[i] >> 4];
    out[2 * i + 1] = digits[md[i] & 15];
  }
  return out;
}

#pragma GCC diagnostic pop

std::string Sha256::digest_of(std::string_view data) {
  Sha256 h;
  h.update(data);
  return "sha256:" + h.hex();
}

Result<std::string> Sha256::digest_of_fd(int fd, uint64_t& size, const std::string& what) {
  Sha256 h;
  static thread_local std::string buf(1 << 18, '\0');
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(errno, "reading " + what);
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    size += static_cast<uint64_t>(n);
  }
  return "sha256:" + h.hex();
}

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool is_sha256_digest(std::string_view s) {
  return s.starts_with("sha256:") && is_sha256_hex(s.substr(7));
}

}  // namespace togo
