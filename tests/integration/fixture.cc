#include "fixture.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

namespace togo::test {

namespace sfs = std::filesystem;

std::string as_name(As as) { return as == As::kRoot ? "Root" : "Rootless"; }
void PrintTo(As as, std::ostream* os) { *os << as_name(as); }

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

::testing::AssertionResult one_line_error(const RunResult& r, const std::string& needle) {
  auto fail = [&](const std::string& why) {
    return ::testing::AssertionFailure() << why << "\n" << describe(r);
  };
  if (!r.out.empty()) return fail("stdout is not empty");
  if (r.err.empty() || r.err.back() != '\n') return fail("stderr is not whole lines");
  auto lines = lines_of(r.err);
  if (lines.size() != 1 && lines.size() != 2)
    return fail("stderr has " + std::to_string(lines.size()) + " lines, expected 1 (+ hint)");
  if (!lines[0].starts_with("togo: ") || lines[0].starts_with("togo: hint: "))
    return fail("the first line is not \"togo: <what>: <why>\"");
  if (lines[0].find(": ", 6) == std::string::npos) return fail("the first line has no \": <why>\"");
  // Context added twice on the way out ("mapping ids: mapping ids: ...").
  std::string previous;
  for (size_t at = 6, next; at < lines[0].size(); at = next + 2) {
    next = std::min(lines[0].find(": ", at), lines[0].size());
    std::string part = lines[0].substr(at, next - at);
    if (part == previous) return fail("\"" + part + ": \" is said twice in a row");
    previous = part;
  }
  if (lines.size() == 2 && !lines[1].starts_with("togo: hint: "))
    return fail("the second line is not \"togo: hint: ...\"");
  if (!needle.empty() && lines[0].find(needle) == std::string::npos)
    return fail("the error does not mention \"" + needle + "\"");
  return ::testing::AssertionSuccess();
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  ASSERT_TRUE(f) << "writing " << path;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : sfs::directory_iterator(path, ec)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

std::map<std::string, std::string> snapshot(const std::string& root,
                                            const std::vector<std::string>& skip) {
  std::map<std::string, std::string> m;
  std::error_code ec;
  auto it = sfs::recursive_directory_iterator(root, ec);
  for (; !ec && it != sfs::recursive_directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename();
    if (std::find(skip.begin(), skip.end(), name) != skip.end()) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    std::string path = it->path();
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) continue;
    std::ostringstream d;
    d << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid;
    if (S_ISREG(st.st_mode)) {
      auto text = read_file(path);
      d << " size " << st.st_size << " hash "
        << (text ? std::to_string(std::hash<std::string>{}(*text)) : "<unreadable>");
    }
    if (S_ISLNK(st.st_mode)) d << " -> " << sfs::read_symlink(path, ec).string();
    m[path.substr(root.size())] = d.str();
  }
  return m;
}

void make_tar(const std::string& path, const std::string& body,
              const std::vector<std::string>& args) {
  static const char* const kPrelude = R"PY(
import io, sys, tarfile
out = tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT)
BASE = sys.argv[2]
ARGS = sys.argv[4:]
def _add(ti, data=None):
    ti.mtime = 1700000000
    out.addfile(ti, io.BytesIO(data) if data is not None else None)
def file(name, data=b'', mode=0o644, uid=0, gid=0):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode; ti.uid = uid; ti.gid = gid
    _add(ti, data)
def dir(name, mode=0o755):
    ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = mode; _add(ti)
def sym(name, target):
    ti = tarfile.TarInfo(name); ti.type = tarfile.SYMTYPE; ti.linkname = target; ti.mode = 0o777
    _add(ti)
def hard(name, target):
    ti = tarfile.TarInfo(name); ti.type = tarfile.LNKTYPE; ti.linkname = target; _add(ti)
def dev(name, major, minor):
    ti = tarfile.TarInfo(name); ti.type = tarfile.CHRTYPE; ti.devmajor = major
    ti.devminor = minor; ti.mode = 0o666; _add(ti)
def base():
    with tarfile.open(BASE) as b:
        for m in b.getmembers():
            out.addfile(m, b.extractfile(m) if m.isreg() else None)
exec(sys.argv[3])
out.close()
)PY";
  std::vector<std::string> argv = {"python3", "-c", kPrelude, path, test_rootfs_tar(), body};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = run(argv);
  ASSERT_EQ(r.status, 0) << "making " << path << "\n" << describe(r);
  ::chmod(path.c_str(), 0644);
}

// ---- TogoTest ----

void TogoTest::SetUp() {
  if (GetParam() == As::kRoot && !running_as_root())
    GTEST_SKIP() << "the root variant needs root; this test runs as uid " << ::geteuid();
  TOGO_REQUIRE_BUSYBOX();
  if (rootless() && running_as_root()) as_uid_ = unprivileged_uid();
  dir_ = std::make_unique<TempDir>(as_uid_);
  store_ = dir_->sub("store");
}

uid_t TogoTest::host_uid() const { return as_uid_ ? *as_uid_ : ::geteuid(); }

RunOptions TogoTest::opts(const std::string& input, int timeout_s) const {
  RunOptions o;
  o.input = input;
  o.as_uid = as_uid_;
  o.timeout_s = timeout_s;
  return o;
}

RunResult TogoTest::tg(const std::vector<std::string>& args, const std::string& input,
                       int timeout_s) const {
  return togo(store_, args, opts(input, timeout_s));
}

RunResult TogoTest::in_env(const std::string& env, const std::vector<std::string>& cmd,
                           const std::string& input) const {
  std::vector<std::string> args = {"run", env, "--"};
  args.insert(args.end(), cmd.begin(), cmd.end());
  return tg(args, input);
}

RunResult TogoTest::sh(const std::string& env, const std::string& script,
                       const std::string& input) const {
  return in_env(env, {"sh", "-c", script}, input);
}

std::map<std::string, std::vector<std::string>> TogoTest::probe(const std::string& env) const {
  RunResult r = in_env(env, {"togo-probe"});
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "") << "the probe saw everything";
  return parse_probe(r.out);
}

void TogoTest::import_image(const std::string& tar, const std::string& name) const {
  RunResult r = tg({"image", "import", tar, "--name", name});
  ASSERT_EQ(r.status, 0) << describe(r);
  ASSERT_TRUE(r.out.starts_with(name + " ")) << describe(r);
}

void TogoTest::create_env(const std::string& name, const std::string& image,
                          const std::vector<std::string>& extra) const {
  std::vector<std::string> args = {"create", name, "--image", image};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult r = tg(args);
  ASSERT_EQ(r.status, 0) << describe(r);
  ASSERT_EQ(r.out, name + "\n");
}

void TogoTest::make_env(const std::string& name) const {
  std::string tar = test_rootfs_tar();
  ASSERT_FALSE(tar.empty());
  if (!exists(store_ + "/togo-store") || images_json().find("\"test\"") == std::string::npos) {
    ASSERT_NO_FATAL_FAILURE(import_image(tar, "test"));
  }
  ASSERT_NO_FATAL_FAILURE(create_env(name, "test"));
}

std::string TogoTest::images_json() const {
  RunResult r = tg({"image", "ls", "--json"});
  EXPECT_EQ(r.status, 0) << describe(r);
  return r.out;
}

// ---- Background ----

Background::Background(const std::vector<std::string>& argv_in, std::optional<uid_t> as_uid) {
  RunOptions o;
  o.as_uid = as_uid;
  std::vector<std::string> env = child_environment(o);
  std::vector<std::string> argv_s = argv_in;
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    return;
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    exec_child(argv.data(), envp.data(), as_uid);
  }
  ::close(out[1]);
  ::close(err[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  if (pid_ < 0) ADD_FAILURE() << "fork: " << strerror(errno);
  ::setpgid(pid_, pid_);
  for (int fd : {out_fd_, err_fd_}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

void Background::pump(double timeout_s) {
  struct pollfd p[2];
  int n = 0;
  if (out_fd_ >= 0) p[n++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0) p[n++] = {err_fd_, POLLIN, 0};
  if (n == 0) {
    ::usleep(static_cast<useconds_t>(timeout_s * 1e6));
    return;
  }
  if (::poll(p, static_cast<nfds_t>(n), static_cast<int>(timeout_s * 1000)) <= 0) return;
  for (int i = 0; i < n; i++) {
    if (!p[i].revents) continue;
    int& fd = p[i].fd == out_fd_ ? out_fd_ : err_fd_;
    std::string& to = p[i].fd == out_fd_ ? out_ : err_;
    char buf[4096];
    ssize_t got = ::read(fd, buf, sizeof buf);
    if (got > 0) {
      to.append(buf, static_cast<size_t>(got));
    } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
      ::close(fd);
      fd = -1;
    }
  }
}

bool Background::wait_for_line(const std::string& line, double timeout_s) {
  const double deadline = now_s() + timeout_s;
  for (;;) {
    for (const auto& l : lines_of(out_))
      if (l == line) return true;
    if (out_fd_ < 0 || now_s() >= deadline) return false;
    pump(std::min(0.05, deadline - now_s()));
  }
}

std::optional<int> Background::wait(double timeout_s) {
  if (status_ || pid_ <= 0) return status_;
  const double deadline = now_s() + timeout_s;
  for (;;) {
    int ws;
    pid_t w = ::waitpid(pid_, &ws, WNOHANG);
    if (w == pid_) {
      status_ = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
      // What is still in the pipes.
      for (double end = now_s() + 1; (out_fd_ >= 0 || err_fd_ >= 0) && now_s() < end;) pump(0.05);
      return status_;
    }
    if (now_s() >= deadline) return std::nullopt;
    pump(0.02);
  }
}

Background::~Background() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGTERM);
    if (!wait(5)) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

void exec_child(char* const* argv, char* const* envp, std::optional<uid_t> as_uid) {
  ::signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (as_uid && (::setgroups(0, nullptr) < 0 || ::setresgid(*as_uid, *as_uid, *as_uid) < 0 ||
                 ::setresuid(*as_uid, *as_uid, *as_uid) < 0))
    ::_exit(126);
  ::execve(argv[0], argv, envp);
  ::_exit(127);
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

bool eventually(const std::function<bool()>& done, double timeout_s) {
  for (double end = now_s() + timeout_s;; ::usleep(20000)) {
    if (done()) return true;
    if (now_s() >= end) return false;
  }
}

std::string TogoTest::state_of(const std::string& env) const {
  RunResult r = tg({"ls"});
  EXPECT_EQ(r.status, 0) << describe(r);
  auto lines = lines_of(r.out);
  if (lines.empty()) return "<no header>";
  size_t col = lines[0].find("STATE");
  if (col == std::string::npos) return "<no STATE column>";
  for (const auto& l : lines)
    if (l.starts_with(env + " ") && l.size() > col) return l.substr(col, l.find(' ', col) - col);
  return "<no row>";
}

}  // namespace togo::test
