#include "base/error.h"

#include <cstring>

namespace togo {

std::unexpected<Error> sys_error(int err, const std::string& what) {
  Error e;
  e.err = err;
  e.kind = err == ENOENT ? ErrorKind::kNotFound : ErrorKind::kFailed;
  e.message = what + ": " + strerror(err);
  return std::unexpected(std::move(e));
}

std::unexpected<Error> error(ErrorKind kind, std::string message, std::string hint) {
  Error e;
  e.kind = kind;
  e.message = std::move(message);
  e.hint = std::move(hint);
  return std::unexpected(std::move(e));
}

}  // namespace togo
