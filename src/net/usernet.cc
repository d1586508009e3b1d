#include "net/usernet.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/fs.h"
#include "base/sys.h"
#include "base/text.h"

namespace togo::net {

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kGrace{1000};
constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
// Descriptor numbers slirp4netns gets.
constexpr int kReadyFd = 3, kExitFd = 4;

// A private directory (0700) for the rendezvous files of one start: pasta's
// pid FIFO, slirp4netns's API socket, the namespace placeholder. Removed
// once the helper is ready: nothing is left for others to connect to.
class TempDir {
 public:
  static Result<TempDir> create() {
    std::string base = "/tmp";
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    if (xdg && xdg[0] == '/' && ::access(xdg, W_OK | X_OK) == 0) base = xdg;
    std::string tmpl = base + "/togo-net-XXXXXX";
    if (!::mkdtemp(tmpl.data())) return sys_error(errno, "creating a directory in " + base);
    TempDir d;
    d.path_ = std::move(tmpl);
    return d;
  }
  TempDir() = default;
  TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    if (!path_.empty()) (void)fs::remove_tree(AT_FDCWD, path_);
  }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// What a helper wrote to stdout/stderr, reduced to its last few meaningful
// lines: pasta's complaints about a missing syslog and slirp4netns's chatter
// are dropped, control characters blanked.
std::string helper_output(int fd) {
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) < 0) return {};
  off_t size = st.st_size, from = size > 65536 ? size - 65536 : 0;
  std::string text(static_cast<size_t>(size - from), '\0');
  ssize_t n = ::pread(fd, text.data(), text.size(), from);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  std::vector<std::string> kept;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(start, nl - start);
    start = nl + 1;
    for (char& c : line)
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (line.empty() || line.starts_with("Failed to send") || line.starts_with("WARNING:") ||
        line.starts_with("sent tapfd") || line.starts_with("received tapfd") ||
        line.starts_with("starting slirp") || line.starts_with("Don't run as root"))
      continue;
    kept.push_back(line.substr(0, 300));
  }
  std::string out;
  for (size_t i = kept.size() > 3 ? kept.size() - 3 : 0; i < kept.size(); ++i)
    out += (out.empty() ? "" : "; ") + kept[i];
  return out;
}

// Why a helper is gone: its words if it said any, else how it ended.
// `status` is its wait status if it was already reaped.
Error helper_failed(HelperProcess& p, int output, std::string_view name, int status = -1) {
  for (int i = 0; i < 40 && p.running() && !p.exited(&status); ++i) ::usleep(5000);
  p.stop(SIGKILL, milliseconds(0));
  std::string said = helper_output(output);
  std::string why = said.empty() ? describe_status(status) : "failed: " + said;
  return error(ErrorKind::kFailed, std::string(name) + " " + why).error();
}

// Waits until `fd` (non-blocking) has data, the helper exits, or the
// deadline passes.
Result<void> wait_ready(HelperProcess& p, int fd, int output, std::string_view name,
                        Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      p.stop(SIGKILL, milliseconds(0));
      std::string said = helper_output(output);
      return error(ErrorKind::kFailed, std::string(name) + " did not get ready in time" +
                                           (said.empty() ? "" : ": " + said));
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 25)));
    if (r < 0 && errno != EINTR)
      return sys_error(errno, std::string("waiting for ") + std::string(name));
    if (r > 0) {
      char buf[64];
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) return {};
      // EOF: the helper closed its end without a word, so it is going.
      if (n == 0 || (errno != EAGAIN && errno != EINTR))
        return std::unexpected(helper_failed(p, output, name));
    }
    if (int status; p.exited(&status))
      return std::unexpected(helper_failed(p, output, name, status));
  }
}

// One request to slirp4netns's API: connect, send, half-close, read the
// reply to EOF.
Result<std::string> slirp_api(const std::string& socket_path, const std::string& request) {
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return sys_error(errno, "socket");
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    return error("the slirp4netns API socket path is too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    return sys_error(errno, "connecting to " + socket_path);
  struct timeval tv = {5, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  TRY(sys::write_all(s.get(), request, socket_path));
  ::shutdown(s.get(), SHUT_WR);
  std::string reply;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(s.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(errno, "reading the reply from " + socket_path);
    if (n == 0) return reply;
    reply.append(buf, static_cast<size_t>(n));
    if (reply.size() > 65536) return error("slirp4netns sent an oversized API reply");
  }
}

struct Started {
  HelperProcess process;
  Fd exit_fd;
};

// True if `pid` is in our user namespace (togo as root, the env without one).
Result<bool> same_userns(pid_t pid) {
  auto mine = TRY(sys::stat_at(AT_FDCWD, "/proc/self/ns/user", 0));
  auto theirs = TRY(sys::stat_at(AT_FDCWD, "/proc/" + std::to_string(pid) + "/ns/user", 0));
  return mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev;
}

Result<Started> start_pasta(const std::string& exe, pid_t pid, const UserNetOptions& o,
                            const TempDir& dir, int output, Clock::time_point deadline) {
  HelperArgs a;
  a.mtu = o.mtu;
  a.ports = o.ports;
  a.host_loopback = o.host_loopback;
  // pasta writes its pid once it is configured and every port is bound: a
  // FIFO turns that into a wake-up (an inherited fd would not do: newer
  // pasta closes every descriptor it did not ask for).
  a.pid_file = dir.file("ready");
  if (::mkfifo(a.pid_file.c_str(), 0600) < 0) return sys_error(errno, "creating " + a.pid_file);
  Fd ready = TRY(sys::open_at(AT_FDCWD, a.pid_file, O_RDONLY | O_NONBLOCK));

  SpawnSpec spec;
  // As root pasta would switch to nobody, which cannot join a namespace
  // that root owns; it keeps root (and drops to what it needs, with
  // seccomp) when told to run as root.
  if (::geteuid() == 0) a.runas = "0:" + std::to_string(::getegid());
  if (TRY(same_userns(pid))) {
    // pasta opens /proc/PID/ns/net only after dropping capabilities, which
    // the ptrace access check then refuses for a process with more: it
    // gets the namespace as a bind mount in its own mount namespace.
    a.target.netns_path = dir.file("netns");
    Fd placeholder =
        TRY(sys::open_at(AT_FDCWD, a.target.netns_path, O_WRONLY | O_CREAT | O_EXCL, 0600));
    spec.bind_from = "/proc/" + std::to_string(pid) + "/ns/net";
    spec.bind_onto = a.target.netns_path;
  } else {
    a.target.pid = pid;
  }
  spec.argv = pasta_argv(exe, a);
  spec.output_fd = output;
  Started s;
  s.process = TRY(HelperProcess::spawn(spec));
  TRY(wait_ready(s.process, ready.get(), output, "pasta", deadline));
  return s;
}

Result<Started> start_slirp4netns(const std::string& exe, pid_t pid, const UserNetOptions& o,
                                  const TempDir& dir, int output, Clock::time_point deadline) {
  int ready_fds[2], exit_fds[2];
  TRY(sys::pipe(ready_fds));
  Fd ready_r(ready_fds[0]), ready_w(ready_fds[1]);
  Fd exit_r, exit_w;
  if (o.env_exit_fd >= 0) {
    exit_r = Fd(::fcntl(o.env_exit_fd, F_DUPFD_CLOEXEC, 0));  // the env holds the write end
  } else {
    TRY(sys::pipe(exit_fds));
    exit_r = Fd(exit_fds[0]);
    exit_w = Fd(exit_fds[1]);
  }
  ::fcntl(ready_r.get(), F_SETFL, O_NONBLOCK);

  HelperArgs a;
  a.mtu = o.mtu;
  a.host_loopback = o.host_loopback;
  a.target.pid = pid;  // it joins the env's user namespace itself, if any
  a.ready_fd = kReadyFd;
  a.exit_fd = kExitFd;
  a.api_socket = o.ports.empty() ? "" : dir.file("api.sock");
  SpawnSpec spec;
  spec.argv = slirp4netns_argv(exe, a);
  spec.fds = {{ready_w.get(), kReadyFd}, {exit_r.get(), kExitFd}};
  spec.die_with_togo = o.env_exit_fd < 0;
  spec.output_fd = output;
  Started s;
  s.process = TRY(HelperProcess::spawn(spec));
  ready_w.reset();
  exit_r.reset();
  s.exit_fd = std::move(exit_w);
  TRY(wait_ready(s.process, ready_r.get(), output, "slirp4netns", deadline));
  for (const auto& p : o.ports) {
    auto reply = slirp_api(a.api_socket, slirp_add_hostfwd(p));
    Result<void> added = reply ? parse_slirp_reply(*reply) : std::unexpected(reply.error());
    if (!added) {
      s.process.stop(SIGKILL, milliseconds(0));
      return std::unexpected(std::move(added.error()).context("forwarding " + format_port(p)));
    }
  }
  return s;
}

int unprivileged_port_start() {
  auto fd = sys::open_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_unprivileged_port_start", O_RDONLY);
  if (!fd) return 1024;
  auto text = sys::read_all(fd->get(), "ip_unprivileged_port_start");
  if (!text || text->empty()) return 1024;
  return std::atoi(text->c_str());
}

}  // namespace

Result<void> check_tun_device() {
  int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    ::close(fd);
    return {};
  }
  int err = errno;
  Error e = sys_error(err, "--network private needs /dev/net/tun").error();
  if (err == ENOENT || err == ENODEV || err == ENXIO)
    e.hint = "this kernel has no tun device; as root: `modprobe tun`";
  else if (err == EACCES || err == EPERM)
    e.hint =
        "this user may not open it; as root: `chmod 0666 /dev/net/tun` (its usual mode), "
        "or use --network host or none";
  return std::unexpected(std::move(e));
}

std::optional<std::string> find_helper(HelperKind kind, const std::string& search_path) {
  std::string path = search_path;
  if (path.empty()) {
    const char* env = std::getenv("PATH");
    path = env && *env ? env : kDefaultPath;
  }
  std::string exe = fs::find_program(helper_name(kind), path);
  if (exe.empty()) return std::nullopt;
  return exe;
}

UserNet& UserNet::operator=(UserNet&& o) noexcept {
  if (this != &o) {
    stop();
    kind_ = o.kind_;
    fallback_reason_ = std::move(o.fallback_reason_);
    process_ = std::move(o.process_);
    exit_fd_ = std::move(o.exit_fd_);
  }
  return *this;
}

void UserNet::stop() {
  if (process_.exited()) return;
  if (exit_fd_.valid()) {
    exit_fd_.reset();
    process_.stop(0, kGrace);
  } else {
    process_.stop(SIGTERM, kGrace);
  }
}

Result<UserNet> UserNet::start(pid_t pid, const UserNetOptions& opts) {
  for (const auto& p : opts.ports) {
    in_addr addr;
    if (::inet_pton(AF_INET, p.host_address.c_str(), &addr) != 1 || !p.host_port || !p.env_port)
      return error(ErrorKind::kUsage, "bad port forward " + format_port(p));
  }
  TRY(check_bindable(opts.ports, unprivileged_port_start(), ::geteuid() == 0));

  std::vector<std::pair<HelperKind, std::string>> installed;
  for (HelperKind kind : opts.helpers)
    if (auto exe = find_helper(kind, opts.search_path)) installed.push_back({kind, *exe});
  if (installed.empty())
    return error(ErrorKind::kFailed,
                 "--network private needs pasta or slirp4netns, and neither is installed",
                 "install the Debian package passt (it has pasta) or slirp4netns, e.g. "
                 "`apt-get install passt`; or use --network host or none");
  // Both helpers create a tap device; their own message would be cryptic.
  TRY(check_tun_device());

  std::string failures;
  for (const auto& [kind, exe] : installed) {
    std::string name(helper_name(kind));
    TempDir dir = TRY(TempDir::create());
    Fd output(::memfd_create("togo-net-helper", MFD_CLOEXEC));
    if (!output.valid()) return sys_error(errno, "memfd_create");
    auto deadline = Clock::now() + opts.timeout;
    auto started = kind == HelperKind::kPasta
                       ? start_pasta(exe, pid, opts, dir, output.get(), deadline)
                       : start_slirp4netns(exe, pid, opts, dir, output.get(), deadline);
    if (started) {
      UserNet net;
      net.kind_ = kind;
      net.process_ = std::move(started->process);
      net.exit_fd_ = std::move(started->exit_fd);
      net.fallback_reason_ = std::move(failures);
      return net;
    }
    std::string msg = started.error().message;
    if (!msg.starts_with(name)) msg = name + ": " + msg;
    failures += (failures.empty() ? "" : "; ") + msg;
  }
  return error(ErrorKind::kFailed, "starting user-mode networking: " + failures);
}

}  // namespace togo::net
