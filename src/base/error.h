// Errors that carry errno plus context, printed once at the edge as
// `togo: <what>: <why>`.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace togo {

/// What kind of failure this is; the CLI maps kinds to documented exit codes.
enum class ErrorKind {
  kFailed,    // an operation did not succeed (I/O, the kernel said no, ...)
  kUsage,     // the command line was wrong
  kNotFound,  // a named object does not exist
  kConflict,  // the object exists, is in use, or the store is newer
  kBadInput,  // an archive, file or message from outside is malformed or hostile
};

/// An error: errno (0 if none), a kind, and a message that reads as
/// "<what>: <why>". Context is added by prefixing: "importing x: <what>: <why>".
struct Error {
  int err = 0;
  ErrorKind kind = ErrorKind::kFailed;
  std::string message;
  std::string hint;  // optional: what to do about it
  int exit_code = 0; // optional: the exit status to use instead of the kind's

  /// Adds "<what>: " in front of the message.
  Error&& context(const std::string& what) && {
    message = what + ": " + message;
    return std::move(*this);
  }
  Error&& with_hint(std::string h) && {
    hint = std::move(h);
    return std::move(*this);
  }
};

template <typename T = void>
using Result = std::expected<T, Error>;

/// An error from a failed syscall: "<what>: strerror(err)".
std::unexpected<Error> sys_error(int err, const std::string& what);
/// An error with a plain message, a kind, and optionally what to do about it.
std::unexpected<Error> error(ErrorKind kind, std::string message, std::string hint = {});
inline std::unexpected<Error> error(std::string message) {
  return error(ErrorKind::kFailed, std::move(message));
}

}  // namespace togo

/// Evaluates a Result; on error returns it from the enclosing function,
/// otherwise yields the value (or nothing for Result<void>).
#define TRY(expr)                                          \
  ({                                                       \
    auto&& try_result_ = (expr);                           \
    if (!try_result_)                                      \
      return std::unexpected(std::move(try_result_.error())); \
    *std::move(try_result_);                               \
  })

/// Like TRY, adding "<what>: " to the error's message.
#define TRY_CTX(expr, what)                                               \
  ({                                                                      \
    auto&& try_result_ = (expr);                                          \
    if (!try_result_)                                                     \
      return std::unexpected(std::move(try_result_.error()).context(what)); \
    *std::move(try_result_);                                              \
  })
