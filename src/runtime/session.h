// A session: one command run in an env on behalf of one togo on the host.
// Its leader, forked by init, is a subreaper: when the command ends, the
// leader ends what the command left behind, then reports the status.
#pragma once

#include <vector>

#include "base/fd.h"
#include "runtime/protocol.h"

namespace togo::runtime {

/// Runs in the leader, inside the env, after init forked it; never returns.
/// `channel` talks to the host's togo; `stdio` are the command's stdin,
/// stdout and stderr (ignored when the request asks for a pty).
[[noreturn]] void leader_main(Fd channel, const SpawnRequest& req, std::vector<Fd> stdio);

/// The environment a command starts with: defaults, the user's identity,
/// then the request's own variables (which win).
std::vector<std::string> command_environment(const SpawnRequest& req, const std::string& hostname,
                                             const std::string& user, const std::string& home,
                                             const std::string& shell);

}  // namespace togo::runtime
