// Shared pieces of the integration tests: a fixture that runs every test both
// as root and as an unprivileged user, assertions on togo's error format,
// files on disk, crafted tarballs, and a `togo run` left running in the
// background.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "harness.h"

namespace togo::test {

/// Who runs togo: root, or an unprivileged user (rootless).
enum class As { kRoot, kRootless };
std::string as_name(As as);
void PrintTo(As as, std::ostream* os);

/// The lines of `s`, without their "\n".
std::vector<std::string> lines_of(const std::string& s);

/// Success if stderr is one line "togo: <what>: <why>" containing `needle`
/// (and no part of it said twice in a row), optionally followed by one
/// "togo: hint: ..." line, and stdout is empty.
::testing::AssertionResult one_line_error(const RunResult& r, const std::string& needle = "");

/// True if `needle` occurs in `hay`.
bool contains(const std::string& hay, const std::string& needle);

/// Polls `done` every 20 ms until it is true or `timeout_s` passed.
bool eventually(const std::function<bool()>& done, double timeout_s = 5);

/// The content of a file, or nullopt if it cannot be read.
std::optional<std::string> read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);
bool exists(const std::string& path);
/// The names in a directory, sorted; empty if it does not exist.
std::vector<std::string> list_dir(const std::string& path);
/// Everything under `root`: relative path -> type, mode, owner, and a hash
/// of the content (or the link target). Names in `skip` (at any depth) are left out.
std::map<std::string, std::string> snapshot(const std::string& root,
                                            const std::vector<std::string>& skip = {});

/// Writes an uncompressed tarball at `path`. `body` is Python that calls
/// file(name, data=b'', mode=0o644, uid=0, gid=0), dir(name), sym(name, target),
/// hard(name, target), dev(name, major, minor) and base() (every entry of the
/// test image); `args` are available to it as ARGS.
void make_tar(const std::string& path, const std::string& body,
              const std::vector<std::string>& args = {});

/// Runs each test as root and as an unprivileged user with a store of its
/// own. The root variant is skipped when the test process is not root; then
/// the rootless variant runs as the test process's own user.
class TogoTest : public ::testing::TestWithParam<As> {
 protected:
  void SetUp() override;

  bool rootless() const { return GetParam() == As::kRootless; }
  /// The uid togo runs as on the host.
  uid_t host_uid() const;
  /// Options that run a child as that user.
  RunOptions opts(const std::string& input = {}, int timeout_s = 60) const;
  /// The uid to give run() (nullopt: ours).
  std::optional<uid_t> as_uid() const { return as_uid_; }

  const std::string& store() const { return store_; }
  /// A path in this test's directory, which the togo user owns.
  std::string sub(const std::string& name) const { return dir_->sub(name); }

  /// togo --store <store> args...
  RunResult tg(const std::vector<std::string>& args, const std::string& input = {},
               int timeout_s = 60) const;
  /// togo run env -- cmd...
  RunResult in_env(const std::string& env, const std::vector<std::string>& cmd,
                   const std::string& input = {}) const;
  /// togo run env -- sh -c script
  RunResult sh(const std::string& env, const std::string& script,
               const std::string& input = {}) const;
  /// The probe's report from inside `env` (fails the test if it did not run).
  std::map<std::string, std::vector<std::string>> probe(const std::string& env) const;

  /// Imports a tarball under `name`; fails the test unless it succeeds.
  void import_image(const std::string& tar, const std::string& name) const;
  /// Creates an env; fails the test unless it succeeds.
  void create_env(const std::string& name, const std::string& image,
                  const std::vector<std::string>& extra = {}) const;
  /// Imports the test image as "test" and creates `name` from it.
  void make_env(const std::string& name = "dev") const;

  /// `image ls --json` as it is now.
  std::string images_json() const;
  /// The STATE column of `togo ls` for `env`.
  std::string state_of(const std::string& env) const;

 private:
  std::optional<uid_t> as_uid_;
  std::unique_ptr<TempDir> dir_;
  std::string store_;
};

/// In a forked child: default signals, an empty mask, the test user's ids
/// when `as_uid` is set, then execve. Exits 126 or 127 if that fails.
[[noreturn]] void exec_child(char* const* argv, char* const* envp, std::optional<uid_t> as_uid);

/// Instantiates a TogoTest-derived suite for root and rootless.
#define TOGO_AS_ROOT_AND_ROOTLESS(Suite)                                                \
  INSTANTIATE_TEST_SUITE_P(                                                             \
      , Suite, ::testing::Values(::togo::test::As::kRoot, ::togo::test::As::kRootless), \
      [](const ::testing::TestParamInfo<::togo::test::As>& i) {                         \
        return ::togo::test::as_name(i.param);                                          \
      })

/// A process started in the background (stdin /dev/null, stdout and stderr
/// captured, its own process group). The destructor sends SIGTERM, then
/// SIGKILL to the group if it does not end within 5 s.
class Background {
 public:
  Background(const std::vector<std::string>& argv, std::optional<uid_t> as_uid);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return pid_; }
  /// Waits until stdout has a line equal to `line`; false on EOF or timeout.
  bool wait_for_line(const std::string& line, double timeout_s);
  /// Waits for the exit: its status (128+N for signal N), or nullopt on timeout.
  std::optional<int> wait(double timeout_s);
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  void pump(double timeout_s);
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  std::string out_, err_;
  std::optional<int> status_;
};

}  // namespace togo::test
