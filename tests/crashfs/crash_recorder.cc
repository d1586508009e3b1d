#include "crash_recorder.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/fs.h"
#include "base/sys.h"

#ifndef TOGO_CRASHFS
#error "TOGO_CRASHFS must be defined to the path of the togo-crashfs binary"
#endif

namespace togo::crashfs {
namespace {

double now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Waits up to `seconds` for `pid`; its exit status, or -1 if it is still running.
int wait_for(pid_t pid, double seconds) {
  double deadline = now() + seconds;
  for (;;) {
    int ws;
    pid_t r = ::waitpid(pid, &ws, WNOHANG);
    if (r == pid) return ws;
    if (r < 0 && errno != EINTR) return 0;
    if (now() > deadline) return -1;
    ::usleep(10000);
  }
}

// Starts the daemon with its stdout on a pipe; waits for its "ready".
Result<pid_t> spawn_daemon(const std::vector<std::string>& args, const std::string& err_path) {
  int out[2];
  TRY(sys::pipe(out));
  Fd out_r(out[0]), out_w(out[1]);
  Fd err = TRY(sys::open_at(AT_FDCWD, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644));
  std::vector<std::string> a = args;
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return sys_error(errno, "fork");
  if (pid == 0) {
    ::setpgid(0, 0);
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::dup2(out_w.get(), 1);
    ::dup2(err.get(), 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  out_w.reset();
  std::string said;
  double deadline = now() + 10;
  while (said.find('\n') == std::string::npos && now() < deadline) {
    struct pollfd p = {out_r.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[64];
    ssize_t n = ::read(out_r.get(), buf, sizeof buf);
    if (n <= 0) break;
    said.append(buf, static_cast<size_t>(n));
  }
  if (said != "ready\n") {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return error("togo-crashfs did not start: " + fs::read_file(AT_FDCWD, err_path).value_or(""));
  }
  return pid;
}

}  // namespace

std::string crashfs_bin() { return TOGO_CRASHFS; }

std::string crashfs_unavailable_reason() {
  if (::geteuid() != 0) return "crash recording needs root (it mounts a FUSE file system)";
  int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::string("cannot open /dev/fuse: ") + std::strerror(errno);
  ::close(fd);
  if (::access(crashfs_bin().c_str(), X_OK) < 0) return crashfs_bin() + " is not built";
  return {};
}

// ---- Recording ----

Recording::Recording(std::string work_dir, Log log)
    : work_(std::move(work_dir)), log_(std::move(log)) {}

Recording::Recording(Recording&& o) noexcept
    : work_(std::exchange(o.work_, {})), log_(std::move(o.log_)), keep_(o.keep_) {}

Recording::~Recording() {
  if (work_.empty()) return;
  const char* env = std::getenv("TOGO_CRASHFS_KEEP");
  if (keep_ || (env && *env && std::string(env) != "0")) {
    // Out of the test's directory, which its test removes.
    const char* t = std::getenv("TMPDIR");
    std::string kept = std::string(t && *t ? t : "/tmp") + "/togo-crashfs-kept-XXXXXX";
    if (::mkdtemp(kept.data()) && ::rename(work_.c_str(), (kept + "/recording").c_str()) == 0)
      work_ = kept + "/recording";
    std::fprintf(stderr, "togo-crashfs: recording kept in %s\n", work_.c_str());
    return;
  }
  (void)fs::remove_tree(AT_FDCWD, work_);
}

std::vector<CrashState> Recording::states(std::span<const Mode> modes, const ModelOptions& options,
                                          size_t max_cuts) const {
  return all_crash_states(log_, modes, options, max_cuts);
}

Result<Materialized> Recording::materialize(const CrashState& state,
                                            const std::string& dest) const {
  return crashfs::materialize(snapshot_dir(), log_, state, dest);
}

// ---- CrashRecorder ----

Result<CrashRecorder> CrashRecorder::start(const std::string& store_path,
                                           const RecorderOptions& options) {
  CrashRecorder r;
  r.store_ = fs::absolute(store_path);
  while (r.store_.size() > 1 && r.store_.back() == '/') r.store_.pop_back();
  size_t slash = r.store_.rfind('/');
  std::string parent = slash == 0 ? "/" : r.store_.substr(0, slash);
  std::string tmpl = fs::join(parent, "." + r.store_.substr(slash + 1) + ".crashfs-XXXXXX");
  if (!::mkdtemp(tmpl.data())) return sys_error(errno, "creating a work directory in " + parent);
  r.work_ = tmpl;
  const std::string backing = r.work_ + "/backing";
  struct RemoveOnError {
    const std::string& dir;
    bool armed = true;
    ~RemoveOnError() {
      if (armed) (void)fs::remove_tree(AT_FDCWD, dir);
    }
  } cleanup{r.work_};

  struct stat st;
  bool existed = ::lstat(r.store_.c_str(), &st) == 0;
  if (existed && !S_ISDIR(st.st_mode)) return error(r.store_ + " is not a directory");
  if (!existed) TRY(sys::mkdir_at(AT_FDCWD, backing, 0755));
  TRY_CTX(snapshot(existed ? r.store_ : backing, r.work_ + "/snapshot"), "snapshot of the store");
  if (existed) {
    // Nothing may change the store between the snapshot and the daemon's scan.
    TRY(sys::rename_at(AT_FDCWD, r.store_, AT_FDCWD, backing));
    if (::mkdir(r.store_.c_str(), 0755) < 0) {
      int err = errno;
      ::rename(backing.c_str(), r.store_.c_str());
      return sys_error(err, "creating the mount point " + r.store_);
    }
  } else {
    TRY(sys::mkdir_at(AT_FDCWD, r.store_, 0755));
  }
  std::vector<std::string> args = {crashfs_bin()};
  if (options.real_sync) args.push_back("--real-sync");
  if (options.debug) args.push_back("--debug");
  args.insert(args.end(), {backing, r.store_, r.work_ + "/log"});
  auto pid = spawn_daemon(args, r.work_ + "/daemon.err");
  if (!pid) {
    ::rmdir(r.store_.c_str());
    if (existed) ::rename(backing.c_str(), r.store_.c_str());
    return std::unexpected(std::move(pid.error()));
  }
  r.daemon_ = *pid;
  r.active_ = true;
  cleanup.armed = false;
  return r;
}

CrashRecorder::CrashRecorder(CrashRecorder&& o) noexcept
    : store_(std::move(o.store_)),
      work_(std::move(o.work_)),
      daemon_(o.daemon_),
      active_(std::exchange(o.active_, false)) {}

CrashRecorder::~CrashRecorder() {
  if (!active_) return;
  (void)stop();
  (void)fs::remove_tree(AT_FDCWD, work_);
}

std::vector<std::string> CrashRecorder::watched(const std::vector<std::string>& argv,
                                                std::optional<uid_t> as_uid) const {
  std::vector<std::string> out = {crashfs_bin(), "watch"};
  if (as_uid) out.insert(out.end(), {"--uid", std::to_string(*as_uid)});
  out.insert(out.end(), {store_, "--"});
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Result<void> CrashRecorder::mark(const std::string& label) {
  std::string name = std::string(kSignalMarkPrefix) + escape(label);
  if (name.size() > 255) return error("mark label too long: " + label);
  if (::lgetxattr(store_.c_str(), name.c_str(), nullptr, 0) < 0 && errno != ENODATA)
    return sys_error(errno, "recording mark " + label);
  return {};
}

Result<void> CrashRecorder::stop() {
  active_ = false;
  std::string problem;
  double deadline = now() + 10;
  while (::umount2(store_.c_str(), 0) < 0) {
    if (errno == EINVAL || errno == ENOENT) break;  // not mounted any more
    if (errno != EBUSY || now() > deadline) {
      problem = std::string("unmounting ") + store_ + ": " + std::strerror(errno) +
                " (a process still uses the store?)";
      ::umount2(store_.c_str(), MNT_DETACH);
      break;
    }
    ::usleep(20000);
  }
  if (wait_for(daemon_, problem.empty() ? 10 : 1) == -1) {
    ::kill(daemon_, SIGKILL);
    ::waitpid(daemon_, nullptr, 0);
    if (problem.empty()) problem = "togo-crashfs did not exit after the unmount";
  }
  // What the daemon could not record makes the recording worthless.
  if (auto err = fs::read_file(AT_FDCWD, work_ + "/daemon.err"); err && problem.empty())
    if (size_t at = err->find("togo-crashfs: "); at != std::string::npos)
      problem = "the recording is incomplete: " + err->substr(at, err->find('\n', at) - at);
  // The store is a plain directory again, holding what the run left.
  ::rmdir(store_.c_str());
  if (::rename((work_ + "/backing").c_str(), store_.c_str()) < 0)
    return sys_error(errno, "moving the store back to " + store_);
  if (!problem.empty()) return error(problem);
  return {};
}

Result<Recording> CrashRecorder::finish() {
  if (!active_) return error("the recording was already finished");
  auto stopped = stop();
  auto log = load_log(work_ + "/log");
  Recording rec(work_, log ? std::move(*log) : Log{});
  if (!stopped) return std::unexpected(std::move(stopped.error()));
  if (!log) return std::unexpected(std::move(log.error()));
  return rec;
}

}  // namespace togo::crashfs
