#include "registry_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "base/fd.h"
#include "base/fs.h"
#include "base/sha256.h"
#include "base/sys.h"

namespace togo::test {
namespace {

constexpr const char* kRegistryBin = "/usr/bin/docker-registry";
// bcrypt of kRegistryPassword (cost 5): the registry accepts only bcrypt in
// htpasswd files, and a fixed hash needs no htpasswd tool at test time.
constexpr const char* kPasswordHash = "$2b$05$T95MUPNwH8nq8ibuAoNZNOZFNvIBhorgs/eQdnpIfB5uzzW1YlHRm";

std::string temp_root() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

/// True once something on the port answers GET /v2/ with an HTTP status.
bool answers_http(uint16_t port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
  std::string_view req = "GET /v2/ HTTP/1.0\r\n\r\n";
  if (::send(s.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return false;
  struct pollfd p = {s.get(), POLLIN, 0};
  if (::poll(&p, 1, 2000) != 1) return false;
  char buf[16] = {};
  return ::recv(s.get(), buf, 8, 0) == 8 && std::string_view(buf, 7) == "HTTP/1.";
}

int exit_status(int wstatus) {
  return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

// ---- a minimal ustar writer ----

void octal(char* field, size_t width, uint64_t value) {
  std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1), static_cast<unsigned long long>(value));
}

std::string tar_of(const std::map<std::string, std::string>& files) {
  std::string out;
  for (const auto& [name, content] : files) {
    char h[512] = {};
    std::snprintf(h, 100, "%s", name.c_str());
    octal(h + 100, 8, 0644);
    octal(h + 108, 8, 0);
    octal(h + 116, 8, 0);
    octal(h + 124, 12, content.size());
    octal(h + 136, 12, 0);
    std::memset(h + 148, ' ', 8);
    h[156] = '0';
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);
    out.append(h, sizeof h);
    out += content;
    out.append((512 - content.size() % 512) % 512, '\0');
  }
  out.append(1024, '\0');
  return out;
}

std::string hex_of(const std::string& digest) { return digest.substr(7); }

}  // namespace

bool write_text(const std::string& path, std::string_view data) {
  auto fd = sys::open_at(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!fd || !sys::write_all(fd->get(), data, path)) {
    std::fprintf(stderr, "registry fixture: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

uint16_t free_port() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return 0;
  return ntohs(a.sin_port);
}

std::string registry_missing_reason() {
  if (::access(kRegistryBin, X_OK) != 0)
    return std::string(kRegistryBin) + " is missing (install the docker-registry package)";
  for (const char* dir : {"/usr/bin/skopeo", "/usr/local/bin/skopeo"})
    if (::access(dir, X_OK) == 0) return "";
  return "skopeo is missing (install the skopeo package)";
}

LocalRegistry::LocalRegistry(Options o) {
  std::string tmpl = temp_root() + "/togo-registry-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    why_ = "mkdtemp: " + std::string(strerror(errno));
    return;
  }
  dir_ = tmpl;
  port_ = free_port();
  if (port_ == 0) {
    why_ = "no free port on 127.0.0.1";
    return;
  }
  std::string config =
      "version: 0.1\n"
      "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
      "storage:\n  filesystem:\n    rootdirectory: " + dir_ + "/data\n"
      "  delete:\n    enabled: true\n"
      "  maintenance:\n    uploadpurging:\n      enabled: false\n"
      "http:\n  addr: 127.0.0.1:" + std::to_string(port_) + "\n  secret: togo-test-only\n";
  if (o.basic_auth) {
    config += "auth:\n  htpasswd:\n    realm: togo-test\n    path: " + dir_ + "/htpasswd\n";
    if (!write_text(dir_ + "/htpasswd", std::string(kRegistryUser) + ":" + kPasswordHash + "\n")) {
      why_ = "cannot write the htpasswd file";
      return;
    }
  }
  if (!write_text(dir_ + "/config.yml", config)) {
    why_ = "cannot write the registry config";
    return;
  }
  Fd log(::open((dir_ + "/registry.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::string cfg = dir_ + "/config.yml";
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::dup2(null.get(), 0);
    ::dup2(log.get(), 1);
    ::dup2(log.get(), 2);
    ::execl(kRegistryBin, kRegistryBin, "serve", cfg.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  if (pid_ < 0) {
    why_ = "fork: " + std::string(strerror(errno));
    return;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (answers_http(port_)) return;
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      why_ = "docker-registry exited with status " + std::to_string(exit_status(status)) + ": " + this->log();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  why_ = "docker-registry did not answer on port " + std::to_string(port_) + " within 20 s: " + this->log();
}

LocalRegistry::~LocalRegistry() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGTERM);
    int status;
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
      gone = ::waitpid(pid_, &status, WNOHANG) == pid_;
      if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!gone) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  if (!dir_.empty()) {
    auto removed = fs::remove_tree(AT_FDCWD, dir_);
    if (!removed) std::fprintf(stderr, "warning: cannot remove %s: %s\n", dir_.c_str(), removed.error().message.c_str());
  }
}

std::string LocalRegistry::log() const {
  auto fd = sys::open_at(AT_FDCWD, dir_ + "/registry.log", O_RDONLY);
  if (!fd) return "";
  auto text = sys::read_all(fd->get(), "registry.log");
  return text ? *text : "";
}

ToolResult run_tool(const std::vector<std::string>& argv, int timeout_s) {
  ToolResult r;
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    r.err = "pipe: " + std::string(strerror(errno));
    return r;
  }
  Fd out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(out_w.get(), 1);
    ::dup2(err_w.get(), 2);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  if (pid < 0) {
    r.err = "fork: " + std::string(strerror(errno));
    return r;
  }
  out_w.reset();
  err_w.reset();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  struct pollfd p[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  int open_fds = 2;
  bool killed = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(-pid, SIGKILL);
      killed = true;
      break;
    }
    if (::poll(p, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        p[i].fd = -1;
        open_fds--;
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.status = exit_status(status);
  if (killed) r.err += "\n(killed after " + std::to_string(timeout_s) + " s)";
  return r;
}

ToolResult skopeo_copy(const std::string& src, const std::string& dest, const std::string& creds, bool all) {
  std::vector<std::string> argv = {"skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false"};
  if (!creds.empty()) {
    argv.push_back("--dest-creds");
    argv.push_back(creds);
  }
  if (all) argv.push_back("--all");
  argv.push_back(src);
  argv.push_back(dest);
  return run_tool(argv, 300);
}

TestImage make_oci_layout(const std::string& dir, const std::string& tag,
                          const std::vector<std::map<std::string, std::string>>& layers) {
  TestImage img;
  std::string blobs = dir + "/blobs/sha256";
  if (auto made = fs::make_dirs(blobs); !made) {
    std::fprintf(stderr, "registry fixture: %s\n", made.error().message.c_str());
    return img;
  }
  auto put_blob = [&](const std::string& data) {
    std::string digest = Sha256::digest_of(data);
    return write_text(blobs + "/" + hex_of(digest), data) ? digest : std::string();
  };
  std::string diff_ids, layer_descs;
  for (const auto& files : layers) {
    std::string tar = tar_of(files);
    std::string digest = put_blob(tar);
    if (digest.empty()) return img;
    if (!diff_ids.empty()) {
      diff_ids += ",";
      layer_descs += ",";
    }
    diff_ids += "\"" + digest + "\"";
    layer_descs += "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" + digest +
                   "\",\"size\":" + std::to_string(tar.size()) + "}";
    img.layers.push_back(std::move(tar));
    img.layer_digests.push_back(digest);
  }
  std::string config = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},\"rootfs\":{\"type\":\"layers\","
                       "\"diff_ids\":[" + diff_ids + "]}}";
  img.config_digest = put_blob(config);
  img.manifest = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                 "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" +
                 img.config_digest + "\",\"size\":" + std::to_string(config.size()) + "},\"layers\":[" +
                 layer_descs + "]}";
  img.manifest_digest = put_blob(img.manifest);
  std::string index = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
                      "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" + img.manifest_digest +
                      "\",\"size\":" + std::to_string(img.manifest.size()) +
                      ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"" + tag + "\"}}]}";
  if (img.config_digest.empty() || img.manifest_digest.empty() || !write_text(dir + "/index.json", index) ||
      !write_text(dir + "/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}"))
    return img;
  img.layout = dir;
  return img;
}

}  // namespace togo::test
