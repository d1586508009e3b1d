// togo commit | image export
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "base/sys.h"
#include "cli/commands.h"
#include "cli/env_access.h"
#include "cli/output_file.h"
#include "image/commit.h"
#include "image/image_export.h"
#include "runtime/idmap_apply.h"
#include "store/envs.h"

namespace togo::cli {

namespace {

// The child that packs an env's writable tree into a pipe. Rootless it
// first enters a user namespace with the env's own id maps, so it sees the
// files with the owners the env sees (a file root wrote inside is 0:0 in the
// layer) and may read files of the env's other ids. As root it packs as
// root. It is a plain fork of this single-threaded process and ends in
// _exit, never returning into the parent's code.
class LayerProducer {
 public:
  LayerProducer() = default;
  LayerProducer(LayerProducer&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)),
        tar_(std::move(o.tar_)),
        status_(std::move(o.status_)),
        result_(std::move(o.result_)),
        reader_stopped_(o.reader_stopped_) {}
  LayerProducer& operator=(LayerProducer&&) = delete;
  ~LayerProducer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }

  static Result<LayerProducer> start(EnvAccess& e, const store::EnvRecord& env) {
    int fds[2];
    TRY(sys::pipe(fds));
    Fd tar_r(fds[0]), tar_w(fds[1]);
    TRY(sys::pipe(fds));
    Fd status_r(fds[0]), status_w(fds[1]);
    // Both ways: the child says it has its namespace, the parent that its
    // ids are mapped.
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
      return sys_error(errno, "socketpair");
    Fd sync_parent(fds[0]), sync_child(fds[1]);
    const bool userns = e.identity.user_namespace;
    pid_t pid = ::fork();
    if (pid < 0) return sys_error(errno, "fork");
    if (pid == 0) {
      tar_r.reset();
      status_r.reset();
      sync_parent.reset();
      run_child(e.store.fd(), env, userns, tar_w.get(), status_w.get(), sync_child.get());
    }
    LayerProducer p;
    p.pid_ = pid;
    p.tar_ = std::move(tar_r);
    p.status_ = std::move(status_r);
    tar_w.reset();
    status_w.reset();
    sync_child.reset();
    if (userns) {
      char c = 0;
      ssize_t n;
      do n = ::read(sync_parent.get(), &c, 1);
      while (n < 0 && errno == EINTR);
      if (n != 1 || c != 'u') {
        TRY(p.wait());
        return error("the packer stopped before it began");
      }
      TRY_CTX(runtime::write_id_maps(pid, e.identity.uids, e.identity.gids),
              "entering the environment's user namespace");
      TRY(sys::write_all(sync_parent.get(), "g", "starting the packer"));
    }
    return p;
  }

  int tar() const { return tar_.get(); }
  /// True once wait() has seen the packer end because its reader went away.
  bool reader_stopped() const { return reader_stopped_; }

  /// Waits for the child; its error, if it failed.
  Result<void> wait() {
    if (pid_ <= 0) return result_;
    tar_.reset();  // a packer still writing gets SIGPIPE instead of blocking
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    auto said = sys::read_all(status_.get(), "the packer's status");
    std::string msg = said ? *said : "";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return result_;
    // Killed by SIGPIPE: the reader stopped first, and has its own reason.
    reader_stopped_ = WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE;
    if (msg.empty())
      msg = WIFSIGNALED(status)
                ? "the packer was killed by signal " + std::to_string(WTERMSIG(status))
                : "the packer failed";
    result_ = error(ErrorKind::kFailed, msg);
    return result_;
  }

 private:
  [[noreturn]] static void run_child(int store_fd, const store::EnvRecord& env, bool userns,
                                     int tar, int status, int sync) {
    auto report = [&](const std::string& msg) {
      (void)sys::write_all(status, msg, "status");
      ::_exit(1);
    };
    ::signal(SIGPIPE, SIG_DFL);
    if (userns) {
      if (::unshare(CLONE_NEWUSER) < 0)
        report("creating a user namespace: " + std::string(std::strerror(errno)));
      (void)sys::write_all(sync, "u", "sync");
      char c = 0;
      ssize_t n;
      do n = ::read(sync, &c, 1);
      while (n < 0 && errno == EINTR);
      if (n != 1) ::_exit(1);  // the parent failed to map us; it says why
    }
    auto r = image::write_env_layer(store_fd, env, tar);
    if (!r) report(r.error().message);
    ::_exit(0);
  }

  pid_t pid_ = -1;
  Fd tar_, status_;
  Result<void> result_;
  bool reader_stopped_ = false;
};

std::unexpected<Error> no_such_image(const std::string& name) {
  return error(ErrorKind::kNotFound, "image " + name + ": no such image",
               "`togo image ls` lists the images in this store");
}

}  // namespace

Result<int> cmd_commit(Context& c) {
  const std::string& name = c.inv.args[0];
  std::string what = "commit " + name;
  image::CommitOptions opts;
  opts.name = c.inv.args[1];
  opts.message = c.inv.value("--message").value_or("");
  opts.changes = c.inv.all("--change");
  opts.notice = Context::notice;
  if (auto comp = c.inv.value("--compression"))
    opts.compression = TRY_CTX(image::parse_layer_compression(*comp), what);
  TRY_CTX(image::check_image_name(opts.name), what);
  image::oci::ImageConfig scratch;  // every change checked before any work
  for (auto& change : opts.changes) TRY_CTX(image::apply_change(scratch, change), what);

  EnvAccess e = TRY(open_env(c, name));
  auto lock = TRY(e.store.lock_for_writing(what));
  // Read again under the lock: the env or its image may have gone since.
  auto env = TRY(e.store.catalog().find_env(name));
  if (!env) return error(ErrorKind::kNotFound, name + ": no such environment");
  auto base = TRY(e.store.catalog().find_image(env->image_id));
  if (!base)
    return error(ErrorKind::kFailed, what + ": its image is missing from the catalog",
                 "run `togo fsck`");
  // Held, the env cannot start while its files are read. A running env is
  // committed as it is, as podman does (without pausing it).
  Fd env_lock = TRY_CTX(store::try_lock_env(e.store, *env), what);
  if (!env_lock.valid())
    Context::notice("warning: " + name +
                    " is running; files it changes while they are read may "
                    "be caught half-written (`togo stop " +
                    name + "` first for a consistent image)");
  if (env->rootfs == "copy")
    Context::notice(name +
                    " has a private copy of its image (--rootfs copy): the new image is "
                    "that whole copy, as one layer");

  LayerProducer producer = TRY_CTX(LayerProducer::start(e, *env), what);
  opts.before_commit = [&]() -> Result<void> { return producer.wait(); };
  auto img = image::commit_env(e.store, *env, *base, producer.tar(), opts);
  if (!img) {
    // A packer that failed explains a stream that ended early better.
    auto packed = producer.wait();
    if (!packed && !producer.reader_stopped())
      return std::unexpected(std::move(packed.error()).context(what));
    return std::unexpected(std::move(img.error()).context(what));
  }
  std::printf("%s %s\n", img->name.c_str(), img->id.substr(7, 12).c_str());
  return 0;
}

Result<int> cmd_image_export(Context& c) {
  const std::string& name = c.inv.args[0];
  const std::string& path = c.inv.args[1];
  std::string what = "image export " + name;
  image::ExportOptions opts;
  opts.format = TRY_CTX(image::parse_export_format(c.inv.value("--format").value_or("oci")), what);
  opts.notice = Context::notice;
  if (path == "-" && ::isatty(STDOUT_FILENO))
    return error(ErrorKind::kUsage, what + ": refusing to write an archive to a terminal",
                 "redirect the output, or give a FILE");
  auto st = TRY(store::Store::open_existing(TRY(c.store_path()), store::Store::Access::kRead));
  if (!st) return no_such_image(name);
  auto img = TRY(st->catalog().find_image(name));
  if (!img) return no_such_image(name);
  if (path == "-") {
    TRY_CTX(image::export_image(*st, *img, STDOUT_FILENO, opts), what);
    return 0;
  }
  OutputFile file = TRY_CTX(OutputFile::open(path, 0644), what);
  TRY_CTX(image::export_image(*st, *img, file.fd(), opts), what);
  TRY_CTX(file.commit(), what);
  return 0;
}

}  // namespace togo::cli
