// Messages between togo on the host and an env's init, over a unix
// SOCK_SEQPACKET socket: one message per packet, file descriptors attached
// with SCM_RIGHTS. Encoding is plain and bounded, decoded defensively.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace togo::runtime {

enum class MsgType : uint32_t {
  kSpawn = 1,     // host -> init: start a session (SpawnRequest; fds: stdin, stdout, stderr)
  kStarted = 2,   // leader -> host: the command runs (pid; fd: pty master if one was asked)
  kExit = 3,      // leader -> host: the command ended (status: exit code or 128+signal)
  kSignal = 4,    // host -> leader: deliver this signal to the command
  kFailed = 5,    // leader -> host: the command could not start (errno, what)
  kStop = 6,      // host -> init: end the env (grace seconds)
  kStatus = 7,    // host -> init: how are you (reply: kStatus with sessions, started)
};

struct Message {
  MsgType type{};
  std::string body;
  std::vector<Fd> fds;
};

/// Largest message accepted; a bigger packet is refused.
inline constexpr size_t kMaxMessage = 256 * 1024;
/// Most descriptors one message carries.
inline constexpr size_t kMaxFds = 4;

/// Sends one message (the fds are duplicated by the kernel, not consumed).
Result<void> send_message(int sock, MsgType type, const std::string& body,
                          const std::vector<int>& fds = {});
/// Receives one message. An orderly close of the other side is kNotFound.
Result<Message> recv_message(int sock);

/// What a session runs. Everything is explicit: the leader fills in nothing
/// but defaults for empty fields.
struct SpawnRequest {
  std::vector<std::string> argv;  // empty: the user's login shell
  std::vector<std::string> env;   // KEY=VALUE, in addition to the env's defaults
  std::string cwd;                // empty: the user's home
  uint32_t uid = 0, gid = 0;      // inside the env
  std::string user;               // the image's User ("name", "uid", "name:group", "uid:gid");
                                  // when set, resolved inside the env instead of uid/gid
  bool pty = false;               // allocate a pty; the master comes back in kStarted
  uint16_t rows = 0, cols = 0;    // its initial size
};

std::string encode(const SpawnRequest& r);
/// SECURITY: the decoder checks every length against the packet.
Result<SpawnRequest> decode_spawn(const std::string& body);

/// Small fixed-layout bodies.
std::string encode_u32s(const std::vector<uint32_t>& v);
Result<std::vector<uint32_t>> decode_u32s(const std::string& body, size_t count);

}  // namespace togo::runtime
