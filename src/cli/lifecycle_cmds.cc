// togo start | stop | ps | logs
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <map>

#include "base/fs.h"
#include "base/sys.h"
#include "base/text.h"
#include "cli/commands.h"
#include "cli/env_access.h"
#include "store/envs.h"
#include "store/layout.h"

namespace togo::cli {

namespace {

struct Proc {
  pid_t pid = 0, ppid = 0;
  std::string inner_pid, cmdline;
};

// Every process on the host, for walking the tree below an env's init.
std::map<pid_t, Proc> host_processes() {
  std::map<pid_t, Proc> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    auto status = fs::read_file(AT_FDCWD, "/proc/" + std::to_string(pid) + "/status");
    if (!status) continue;
    Proc p;
    p.pid = pid;
    for (auto& line : text::split(*status, '\n')) {
      if (text::starts_with(line, "PPid:")) p.ppid = static_cast<pid_t>(std::atoi(line.c_str() + 5));
      if (text::starts_with(line, "NSpid:")) p.inner_pid = line.substr(line.rfind('\t') + 1);
    }
    if (auto cmd = fs::read_file(AT_FDCWD, "/proc/" + std::to_string(pid) + "/cmdline")) {
      std::replace(cmd->begin(), cmd->end(), '\0', ' ');
      while (!cmd->empty() && cmd->back() == ' ') cmd->pop_back();
      p.cmdline = *cmd;
    }
    out[pid] = p;
  }
  ::closedir(d);
  return out;
}

Result<int> list_processes(Context& c, const std::string& name) {
  auto e = TRY(open_env(c, name, Purpose::kLook));
  // An init that no longer listens is on its way out, with nothing left to list.
  auto init = runtime::live_init(e.dir.get());
  auto ch = runtime::connect_env(e.dir.get());
  if (!init || !ch || !*ch)
    return error(ErrorKind::kConflict, name + ": the environment is not running");
  ch->reset();  // a connection open keeps the env from ending
  auto procs = host_processes();
  std::map<pid_t, std::vector<pid_t>> children;
  for (auto& [pid, p] : procs) children[p.ppid].push_back(pid);
  std::vector<pid_t> order = {*init};
  for (size_t i = 0; i < order.size(); i++)
    for (pid_t child : children[order[i]]) order.push_back(child);
  if (c.json()) {
    std::vector<std::string> items;
    for (pid_t pid : order)
      items.push_back(text::JsonObject()
                          .add("pid", static_cast<int64_t>(pid))
                          .add("env_pid", static_cast<int64_t>(std::atoll(procs[pid].inner_pid.c_str())))
                          .add("command", procs[pid].cmdline)
                          .str());
    std::printf("%s\n", text::json_array(items).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"PID", "ENV PID", "COMMAND"}};
  for (pid_t pid : order)
    rows.push_back({std::to_string(pid), procs[pid].inner_pid, procs[pid].cmdline});
  std::fputs(text::table(rows).c_str(), stdout);
  return 0;
}

}  // namespace

Result<int> cmd_start(Context& c) {
  const std::string& name = c.inv.args[0];
  auto e = TRY(open_env(c, name));
  for (int attempt = 0; attempt < 200; attempt++) {
    if (TRY(runtime::connect_env(e.dir.get()))) {
      Context::notice(name + " is already running");
      return 0;
    }
    auto started = start_env(e, /*persistent=*/true, -1);
    if (!started) {
      Error err = std::move(started.error().error).context("start " + name);
      return std::unexpected(std::move(err));
    }
    if (*started) {
      store::remove_retired_work(e.dir.get());
      std::printf("%s\n", name.c_str());
      return 0;
    }
    ::usleep(10000);
  }
  return error(ErrorKind::kConflict, "start " + name + ": the environment keeps starting and stopping");
}

Result<int> cmd_stop(Context& c) {
  uint32_t grace = 10;
  if (auto t = c.inv.value("--time")) {
    char* end = nullptr;
    unsigned long v = std::strtoul(t->c_str(), &end, 10);
    if (t->empty() || *end || v > 3600)
      return error(ErrorKind::kUsage, "stop: --time " + *t + ": not a number of seconds (0-3600)");
    grace = static_cast<uint32_t>(v);
  }
  for (auto& name : c.inv.args) {
    auto e = TRY(open_env(c, name, Purpose::kLook));
    auto ch = TRY(runtime::connect_env(e.dir.get()));
    if (!ch) {
      Context::notice(name + " is not running");
      continue;
    }
    TRY_CTX(runtime::stop_env(ch->get(), e.dir.get(), grace), "stop " + name);
    std::printf("%s\n", name.c_str());
  }
  return 0;
}

Result<int> cmd_ps(Context& c) {
  if (!c.inv.args.empty()) return list_processes(c, c.inv.args[0]);
  auto st = TRY(store::Store::open_existing(TRY(c.store_path()), store::Store::Access::kRead));
  std::vector<std::vector<std::string>> rows = {{"NAME", "PID", "SESSIONS", "MODE", "UP"}};
  std::vector<std::string> items;
  int64_t now = ::time(nullptr);
  if (st) {
    for (auto& env : TRY(st->catalog().envs())) {
      auto dir = sys::open_at(st->fd(), store::env_paths(env.id).dir, O_RDONLY | O_DIRECTORY);
      if (!dir) continue;
      auto init = runtime::live_init(dir->get());
      auto ch = runtime::connect_env(dir->get());
      if (!init || !ch || !*ch) continue;
      auto status = runtime::query_status((*ch)->get());
      if (!status) continue;
      std::string mode = status->persistent ? "started" : "run";
      std::string up = text::ago(status->started, now);
      up = up.substr(0, up.rfind(" ago"));
      rows.push_back({env.name, std::to_string(*init), std::to_string(status->sessions), mode, up});
      items.push_back(text::JsonObject()
                          .add("name", env.name)
                          .add("pid", static_cast<int64_t>(*init))
                          .add("sessions", static_cast<int64_t>(status->sessions))
                          .add("mode", mode)
                          .add("started", status->started)
                          .str());
    }
  }
  if (c.json())
    std::printf("%s\n", text::json_array(items).c_str());
  else
    std::fputs(text::table(rows).c_str(), stdout);
  return 0;
}

Result<int> cmd_logs(Context& c) {
  const std::string& name = c.inv.args[0];
  auto e = TRY(open_env(c, name, Purpose::kLook));
  auto fd = sys::open_at(e.dir.get(), runtime::kLog, O_RDONLY);
  if (!fd) return 0;  // never started: nothing logged
  bool follow = c.inv.flag("--follow");
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n > 0) {
      (void)!::write(STDOUT_FILENO, buf, static_cast<size_t>(n));
      continue;
    }
    if (!follow || !runtime::live_init(e.dir.get())) return 0;
    ::usleep(200000);
  }
}

}  // namespace togo::cli
