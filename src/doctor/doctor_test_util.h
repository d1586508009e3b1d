// Fixture trees for the doctor's unit tests: a temp directory standing in for
// the host's root (proc/, sys/, etc/, dev/, usr/bin/, a store), and a
// HostView over it whose live actions all succeed until a test says
// otherwise.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "base/fs.h"
#include "doctor/checks.h"
#include "doctor/host_view.h"

namespace togo::doctor::testing {

inline bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

class Fixture {
 public:
  Fixture() {
    std::string tmpl = ::testing::TempDir() + "togo-doctor-XXXXXX";
    root_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
    char buf[PATH_MAX];
    if (::realpath(root_.c_str(), buf)) root_ = buf;
  }
  ~Fixture() { (void)fs::remove_tree(AT_FDCWD, root_); }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  const std::string& root() const { return root_; }
  std::string path(const std::string& rel) const { return fs::join(root_, rel); }

  void file(const std::string& rel, const std::string& text, mode_t mode = 0644) {
    std::string p = path(rel);
    ASSERT_TRUE(fs::make_dirs(p.substr(0, p.find_last_of('/'))));
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    ASSERT_GE(fd, 0) << p;
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
    ASSERT_EQ(::chmod(p.c_str(), mode), 0);
  }
  void dir(const std::string& rel) { ASSERT_TRUE(fs::make_dirs(path(rel))); }
  void symlink(const std::string& rel, const std::string& target) {
    std::string p = path(rel);
    ASSERT_TRUE(fs::make_dirs(p.substr(0, p.find_last_of('/'))));
    ASSERT_EQ(::symlink(target.c_str(), p.c_str()), 0) << p;
  }
  /// An executable in usr/bin, where the view's `which` looks.
  void program(const std::string& name, mode_t mode = 0755) {
    file("usr/bin/" + name, "#!/bin/sh\n", mode);
  }
  /// proc/self/mountinfo with "/" on ext4 and, optionally, more lines.
  void mounts(const std::string& more = "") {
    file("proc/self/mountinfo",
         "21 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
         "25 21 0:23 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n" +
             more);
  }

  /// A view of the fixture as uid `uid`, store at <root>/store (not made),
  /// whose actions succeed and whose filesystem looks like ext4 on 8:1. Its
  /// mount table and passwd entry are read now: write them first.
  HostView view(uid_t uid = 0) const {
    HostView v;
    v.root = root_;
    v.store = path("store");
    v.uid = uid;
    v.gid = uid;
    v.machine = "x86_64";
    v.exe = "/usr/local/bin/togo";
    std::string bin = path("usr/bin");
    v.which = [bin](const std::string& name) { return fs::find_program(name, bin); };
    v.live.namespaces = [](int) { return Outcome{}; };
    v.live.unprivileged_userns = [] { return Outcome{}; };
    v.live.overlay = [](const std::string&) -> Result<void> { return {}; };
    v.live.idmapped_mount = [](const std::string&) { return Outcome{}; };
    v.live.openat2 = [] { return 0; };
    v.live.seccomp = [] { return Outcome{}; };
    v.live.kvm = [](const std::string&) {
      KvmRun r;
      r.outcome = KvmOutcome::kRan;
      r.iterations = r.total = kKvmIterations;
      r.elapsed_ms = 3;
      r.api_version = 12;
      return r;
    };
    v.live.open_rw = [](const std::string&) { return 0; };
    v.live.fs_stats = [](const std::string&) {
      FsStats s;
      s.magic = 0xEF53;
      s.block_size = 4096;
      s.blocks = 1u << 24;     // 64 GiB
      s.available = 1u << 22;  // 16 GiB
      s.dev_major = 8;
      s.dev_minor = 1;
      return std::optional<FsStats>(s);
    };
    v.live.output = [](const std::vector<std::string>& argv) {
      return std::optional<std::string>(argv[0].substr(argv[0].rfind('/') + 1) + " version 1.0");
    };
    v.load_tables();
    return v;
  }

 private:
  std::string root_;
};

}  // namespace togo::doctor::testing
