#include "harness.h"

#include <elf.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "base/fd.h"
#include "base/fs.h"

extern char** environ;

namespace togo::test {
namespace {

// Steps the child reports, with errno, over a close-on-exec pipe if it fails
// before exec.
enum ChildStep : int { kStepChdir = 1, kStepSetgroups, kStepSetgid, kStepSetuid, kStepExec };

struct ChildFailure {
  int step;
  int err;
};

const char* step_name(int step) {
  switch (step) {
    case kStepChdir: return "chdir";
    case kStepSetgroups: return "setgroups";
    case kStepSetgid: return "setresgid";
    case kStepSetuid: return "setresuid";
    case kStepExec: return "exec";
  }
  return "?";
}

std::string temp_root() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

std::string key_of(const std::string& kv) { return kv.substr(0, kv.find('=')); }

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Writing to a child that exited must not kill the test with SIGPIPE; the
// child gets the default disposition back before exec.
void ignore_sigpipe() {
  static bool done = [] {
    struct sigaction old{};
    sigaction(SIGPIPE, nullptr, &old);
    if (old.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)done;
}

std::string join_argv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

int decode_status(int ws) {
  if (WIFEXITED(ws)) return WEXITSTATUS(ws);
  if (WIFSIGNALED(ws)) return 128 + WTERMSIG(ws);
  return -1;
}

// Runs in the forked child: no allocation, no logging; failures go to `report`.
[[noreturn]] void child(const RunOptions& o, char* const* argv, char* const* envp, int in,
                        int out, int err, int report) {
  auto die = [report](int step) {
    ChildFailure f{step, errno};
    ssize_t ignored = ::write(report, &f, sizeof f);
    (void)ignored;
    ::_exit(f.err == ENOENT && step == kStepExec ? 127 : 126);
  };
  ::setpgid(0, 0);
  ::dup2(in, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  ::signal(SIGPIPE, SIG_DFL);
  sigset_t all;
  sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) < 0) die(kStepChdir);
  if (o.as_uid) {
    uid_t id = *o.as_uid;
    if (::setgroups(0, nullptr) < 0) die(kStepSetgroups);
    if (::setresgid(id, id, id) < 0) die(kStepSetgid);
    if (::setresuid(id, id, id) < 0) die(kStepSetuid);
  }
  ::execvpe(argv[0], argv, envp);
  die(kStepExec);
  ::_exit(126);
}

// Reads what is available on `fd` into `to`; false at EOF or error.
bool drain(int fd, std::string& to) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      to.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    return false;
  }
}

bool make_pipe(int fds[2]) { return ::pipe2(fds, O_CLOEXEC) == 0; }

}  // namespace

std::vector<std::string> child_environment(const RunOptions& o) {
  std::vector<std::string> env;
  if (o.as_uid) {
    env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    env.push_back("HOME=" + temp_root());
  } else {
    for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  }
  for (const auto& kv : o.env) {
    std::string k = key_of(kv);
    std::erase_if(env, [&](const std::string& x) { return key_of(x) == k; });
    env.push_back(kv);
  }
  return env;
}

double now_s() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

RunResult run(const std::vector<std::string>& argv_in, const RunOptions& o) {
  RunResult r;
  if (argv_in.empty()) {
    ADD_FAILURE() << "run: empty argv";
    return r;
  }
  ignore_sigpipe();
  std::vector<std::string> argv_store = argv_in;
  std::vector<std::string> env_store = child_environment(o);
  std::vector<char*> argv = c_strings(argv_store);
  std::vector<char*> envp = c_strings(env_store);

  int in[2], out[2], err[2], rep[2];
  if (!make_pipe(in) || !make_pipe(out) || !make_pipe(err) || !make_pipe(rep)) {
    ADD_FAILURE() << "run: pipe: " << strerror(errno);
    return r;
  }
  Fd in_w(in[1]), out_r(out[0]), err_r(err[0]), rep_r(rep[0]);
  Fd in_r(in[0]), out_w(out[1]), err_w(err[1]), rep_w(rep[1]);

  pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "run: fork: " << strerror(errno);
    return r;
  }
  if (pid == 0) child(o, argv.data(), envp.data(), in[0], out[1], err[1], rep[1]);
  ::setpgid(pid, pid);  // also done by the child; whichever runs first wins
  in_r.reset();
  out_w.reset();
  err_w.reset();
  rep_w.reset();
  for (int fd : {in_w.get(), out_r.get(), err_r.get()})
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  size_t written = 0;
  if (o.input.empty()) in_w.reset();
  const double deadline = now_s() + o.timeout_s;
  bool timed_out = false;
  while (out_r.valid() || err_r.valid()) {
    struct pollfd p[3];
    int n = 0;
    int i_out = -1, i_err = -1, i_in = -1;
    if (out_r.valid()) p[i_out = n++] = {out_r.get(), POLLIN, 0};
    if (err_r.valid()) p[i_err = n++] = {err_r.get(), POLLIN, 0};
    if (in_w.valid()) p[i_in = n++] = {in_w.get(), POLLOUT, 0};
    double left = deadline - now_s();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    int rc = ::poll(p, static_cast<nfds_t>(n), static_cast<int>(left * 1000) + 1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      ADD_FAILURE() << "run: poll: " << strerror(errno);
      timed_out = true;
      break;
    }
    if (i_out >= 0 && p[i_out].revents && !drain(out_r.get(), r.out)) out_r.reset();
    if (i_err >= 0 && p[i_err].revents && !drain(err_r.get(), r.err)) err_r.reset();
    if (i_in >= 0 && p[i_in].revents) {
      ssize_t w = ::write(in_w.get(), o.input.data() + written, o.input.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == o.input.size())
        in_w.reset();
    }
  }
  in_w.reset();

  int ws = 0;
  if (!timed_out) {
    // The pipes are closed; the child may still be finishing.
    for (;;) {
      pid_t w = ::waitpid(pid, &ws, WNOHANG);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) break;
      if (now_s() >= deadline) {
        timed_out = true;
        break;
      }
      ::usleep(2000);
    }
  }
  if (timed_out) {
    bool exited = ::waitpid(pid, &ws, WNOHANG) == pid;
    ::kill(-pid, SIGKILL);
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &ws, 0);
    }
    r.status = decode_status(ws);
    ADD_FAILURE() << "timed out after " << o.timeout_s << "s: " << join_argv(argv_in)
                  << (exited ? " (it exited, but a descendant kept its stdout/stderr open)"
                             : "")
                  << "\n"
                  << describe(r);
    return r;
  }
  r.status = decode_status(ws);

  ChildFailure f{};
  if (::read(rep_r.get(), &f, sizeof f) == static_cast<ssize_t>(sizeof f)) {
    r.err += "run: " + std::string(step_name(f.step)) + " " + argv_in[0] + ": " +
             strerror(f.err) + "\n";
  }
  return r;
}

RunResult togo(const std::string& store, const std::vector<std::string>& args,
               const RunOptions& o) {
  std::vector<std::string> argv = {togo_bin(), "--store", store};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, o);
}

std::string describe(const RunResult& r) {
  std::ostringstream s;
  s << "status=" << r.status << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err;
  return s.str();
}

// ---- TempDir ----

namespace {

// Undoes the octal escapes (\040 for a space) of /proc/self/mountinfo.
std::string unescape_mount_path(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    auto octal = [&](size_t j) { return s[j] >= '0' && s[j] <= '7'; };
    if (s[i] == '\\' && i + 3 < s.size() && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Detaches every mount at or below `dir`, deepest first, so removing the tree
// never deletes files of another filesystem (a leaked bind mount of a host
// directory, say).
void detach_mounts_under(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::vector<std::string> points;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mp;
    fields >> id >> parent >> dev >> root >> mp;
    mp = unescape_mount_path(mp);
    if (mp == dir || mp.starts_with(dir + "/")) points.push_back(mp);
  }
  std::sort(points.begin(), points.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& mp : points) ::umount2(mp.c_str(), MNT_DETACH);
}

}  // namespace

TempDir::TempDir(std::optional<uid_t> owner) {
  std::string tmpl = temp_root() + "/togo-test-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    ADD_FAILURE() << "mkdtemp " << tmpl << ": " << strerror(errno);
    return;
  }
  path_ = tmpl;
  if (::chmod(path_.c_str(), 0755) < 0)
    ADD_FAILURE() << "chmod " << path_ << ": " << strerror(errno);
  if (owner && ::chown(path_.c_str(), *owner, *owner) < 0)
    ADD_FAILURE() << "chown " << path_ << ": " << strerror(errno);
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  if (running_as_root()) detach_mounts_under(path_);
  auto removed = fs::remove_tree(AT_FDCWD, path_);
  if (!removed)
    std::fprintf(stderr, "warning: cannot remove %s: %s\n", path_.c_str(),
                 removed.error().message.c_str());
}

std::string TempDir::sub(const std::string& name) const { return fs::join(path_, name); }

// ---- busybox and the test image ----

namespace {
constexpr const char* kBusybox = "/bin/busybox";

// Empty if `path` is an ELF file without an interpreter (statically linked).
std::string static_elf_problem(const char* path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::string(path) + " is missing (install the Debian package busybox-static)";
  Elf64_Ehdr eh{};
  if (!f.read(reinterpret_cast<char*>(&eh), sizeof eh) ||
      std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return std::string(path) + " is not an ELF file";
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return {};  // 32-bit host: trust it
  for (int i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph{};
    f.seekg(static_cast<std::streamoff>(eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize));
    if (!f.read(reinterpret_cast<char*>(&ph), sizeof ph)) break;
    if (ph.p_type == PT_INTERP)
      return std::string(path) +
             " is dynamically linked (install the Debian package busybox-static)";
  }
  return {};
}

const char* const kApplets[] = {
    "sh",    "ls",    "cat",   "echo",  "true", "false",  "hostname", "id",   "mkdir",
    "touch", "rm",    "sleep", "kill",  "ps",   "grep",   "env",      "stat", "readlink",
    "wc",    "head",  "tail",  "test",  "mount", "umount", "chmod",   "chown", "ln",
    "date",  "dd",    "mknod", "pwd",   "uname", "whoami", "tty",     "stty", "yes",
    "seq",   "sync",  "cp",    "mv",    "find", "which"};

constexpr const char* kOsRelease =
    "ID=togotest\n"
    "NAME=\"togo test image\"\n"
    "PRETTY_NAME=\"togo test image\"\n";
constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
constexpr const char* kGroup =
    "root:x:0:\n"
    "nogroup:x:65534:\n";

std::string& cached_tar() {
  static std::string tar;
  return tar;
}

void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
  if (!f.flush()) throw std::runtime_error("writing " + p.string());
}

void make_tree(const std::filesystem::path& root) {
  namespace sfs = std::filesystem;
  using sfs::perms;
  sfs::remove_all(root);
  for (const char* d : {"bin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "dev", "sys"})
    sfs::create_directories(root / d);
  sfs::permissions(root / "tmp", static_cast<perms>(01777));
  sfs::permissions(root / "root", static_cast<perms>(0700));
  sfs::copy_file(kBusybox, root / "bin/busybox");
  sfs::permissions(root / "bin/busybox", static_cast<perms>(0755));
  for (const char* a : kApplets) sfs::create_symlink("busybox", root / "bin" / a);
  sfs::copy_file(probe_bin(), root / "usr/bin/togo-probe");
  sfs::permissions(root / "usr/bin/togo-probe", static_cast<perms>(0755));
  write_text(root / "etc/os-release", kOsRelease);
  write_text(root / "etc/passwd", kPasswd);
  write_text(root / "etc/group", kGroup);
  write_text(root / "etc/hostname", "");
}

}  // namespace

bool have_busybox() { return static_elf_problem(kBusybox).empty(); }

std::string busybox_missing_reason() { return static_elf_problem(kBusybox); }

std::string build_test_rootfs(const std::string& dir) {
  std::string& cached = cached_tar();
  if (!cached.empty() && ::access(cached.c_str(), R_OK) == 0) return cached;
  cached.clear();
  if (!have_busybox()) {
    ADD_FAILURE() << "cannot build the test image: " << busybox_missing_reason();
    return {};
  }
  std::filesystem::path root = std::filesystem::path(dir) / "rootfs";
  try {
    make_tree(root);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "building the test root filesystem in " << root << ": " << e.what();
    return {};
  }
  std::string tar = fs::join(dir, "rootfs.tar.gz");
  // Top-level names listed explicitly so entries read "bin/busybox", not "./bin/busybox".
  std::vector<std::string> argv = {"tar", "--numeric-owner", "--owner=0", "--group=0",
                                   "--sort=name", "-czf", tar, "-C", root.string()};
  std::vector<std::string> top;
  for (const auto& e : std::filesystem::directory_iterator(root))
    top.push_back(e.path().filename().string());
  std::sort(top.begin(), top.end());
  argv.insert(argv.end(), top.begin(), top.end());
  RunResult r = run(argv);
  if (r.status != 0) {
    ADD_FAILURE() << "creating " << tar << ": " << describe(r);
    return {};
  }
  cached = tar;
  return cached;
}

std::string test_rootfs_tar() {
  static TempDir dir;
  return build_test_rootfs(dir.path());
}

std::string test_rootfs_dir() {
  std::string tar = test_rootfs_tar();
  if (tar.empty()) return {};
  return fs::join(std::filesystem::path(tar).parent_path().string(), "rootfs");
}

// ---- probe reports, users ----

std::map<std::string, std::vector<std::string>> parse_probe(const std::string& out) {
  std::map<std::string, std::vector<std::string>> m;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    size_t eq = line.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    m[line.substr(0, eq)].push_back(line.substr(eq + 1));
  }
  return m;
}

std::string probe_value(const std::map<std::string, std::vector<std::string>>& report,
                        const std::string& key) {
  auto it = report.find(key);
  return it == report.end() || it->second.empty() ? std::string() : it->second.front();
}

uid_t unprivileged_uid() { return 61234; }

bool running_as_root() { return ::geteuid() == 0; }

}  // namespace togo::test
