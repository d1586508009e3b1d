#include "runtime/protocol.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace togo::runtime {

namespace {

struct Header {
  uint32_t type;
  uint32_t size;
};

void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }

void put_str(std::string& out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

// Reads from a bounded view; any overrun makes the whole decode fail.
class Reader {
 public:
  explicit Reader(const std::string& s) : s_(s) {}
  bool u32(uint32_t& v) {
    if (s_.size() - pos_ < 4) return false;
    std::memcpy(&v, s_.data() + pos_, 4);
    pos_ += 4;
    return true;
  }
  bool str(std::string& v) {
    uint32_t n;
    if (!u32(n) || s_.size() - pos_ < n) return false;
    v.assign(s_, pos_, n);
    pos_ += n;
    return true;
  }
  bool strs(std::vector<std::string>& v) {
    uint32_t n;
    if (!u32(n) || n > 4096) return false;
    v.resize(n);
    for (auto& s : v)
      if (!str(s)) return false;
    return true;
  }
  bool done() const { return pos_ == s_.size(); }

 private:
  const std::string& s_;
  size_t pos_ = 0;
};

std::unexpected<Error> bad_message(const char* what) {
  return error(ErrorKind::kBadInput, std::string("control message: ") + what);
}

}  // namespace

Result<void> send_message(int sock, MsgType type, const std::string& body,
                          const std::vector<int>& fds) {
  if (body.size() > kMaxMessage || fds.size() > kMaxFds) return bad_message("too large");
  Header h{static_cast<uint32_t>(type), static_cast<uint32_t>(body.size())};
  std::string packet(reinterpret_cast<const char*>(&h), sizeof h);
  packet += body;
  struct iovec iov = {packet.data(), packet.size()};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  // An init that closed its socket with this connection still queued
  // resets it: the env went away, as if it had closed it.
  if (n < 0 && (errno == ECONNRESET || errno == EPIPE))
    return error(ErrorKind::kNotFound, "control connection closed");
  if (n < 0) return sys_error(errno, "sending a control message");
  return {};
}

Result<Message> recv_message(int sock) {
  // The message's length first (a peek takes no descriptors), so that the
  // buffer fits it: messages are mostly tens of bytes, and one the size of
  // the largest is an mmap and munmap each time.
  constexpr size_t kSize = sizeof(Header) + kMaxMessage;
  char first;
  struct iovec peek_iov = {&first, 1};
  struct msghdr peek = {};
  peek.msg_iov = &peek_iov;
  peek.msg_iovlen = 1;
  ssize_t len;
  do len = ::recvmsg(sock, &peek, MSG_PEEK | MSG_TRUNC);
  while (len < 0 && errno == EINTR);
  size_t size = len > 0 && static_cast<size_t>(len) < kSize ? static_cast<size_t>(len) : kSize;
  std::unique_ptr<char[]> buf(new char[size]);
  struct iovec iov = {buf.get(), size};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == ECONNRESET) return error(ErrorKind::kNotFound, "control connection closed");
  if (n < 0) return sys_error(errno, "receiving a control message");
  Message m;
  // Take ownership of any descriptors first, so none leaks on a bad packet.
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      m.fds.emplace_back(fd);
    }
  }
  if (n == 0) return error(ErrorKind::kNotFound, "control connection closed");
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return bad_message("truncated");
  if (static_cast<size_t>(n) < sizeof(Header)) return bad_message("too short");
  Header h;
  std::memcpy(&h, buf.get(), sizeof h);
  if (h.size != static_cast<size_t>(n) - sizeof h) return bad_message("wrong length");
  m.type = static_cast<MsgType>(h.type);
  m.body.assign(buf.get() + sizeof h, h.size);
  return m;
}

std::string encode(const SpawnRequest& r) {
  std::string out;
  put_u32(out, r.uid);
  put_u32(out, r.gid);
  put_u32(out, (r.pty ? 1u : 0u));
  put_u32(out, (static_cast<uint32_t>(r.rows) << 16) | r.cols);
  put_str(out, r.cwd);
  put_u32(out, static_cast<uint32_t>(r.argv.size()));
  for (auto& a : r.argv) put_str(out, a);
  put_u32(out, static_cast<uint32_t>(r.env.size()));
  for (auto& e : r.env) put_str(out, e);
  put_str(out, r.user);
  return out;
}

Result<SpawnRequest> decode_spawn(const std::string& body) {
  SpawnRequest r;
  Reader in(body);
  uint32_t flags, size;
  if (!in.u32(r.uid) || !in.u32(r.gid) || !in.u32(flags) || !in.u32(size) || !in.str(r.cwd) ||
      !in.strs(r.argv) || !in.strs(r.env) || !in.str(r.user) || !in.done())
    return bad_message("malformed spawn request");
  r.pty = flags & 1;
  r.rows = static_cast<uint16_t>(size >> 16);
  r.cols = static_cast<uint16_t>(size & 0xffff);
  for (auto& a : r.argv)
    if (a.find('\0') != std::string::npos) return bad_message("NUL in an argument");
  for (auto& e : r.env)
    if (e.find('\0') != std::string::npos || e.find('=') == std::string::npos)
      return bad_message("malformed environment variable");
  if (r.cwd.find('\0') != std::string::npos) return bad_message("NUL in the working directory");
  if (r.user.find('\0') != std::string::npos) return bad_message("NUL in the user");
  return r;
}

std::string encode_u32s(const std::vector<uint32_t>& v) {
  std::string out;
  for (uint32_t x : v) put_u32(out, x);
  return out;
}

Result<std::vector<uint32_t>> decode_u32s(const std::string& body, size_t count) {
  if (body.size() != 4 * count) return bad_message("wrong size");
  std::vector<uint32_t> v(count);
  std::memcpy(v.data(), body.data(), body.size());
  return v;
}

}  // namespace togo::runtime
