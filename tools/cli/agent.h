#pragma once

#include <string>
#include <vector>

#include "tools/cli/clients.h"

namespace switchboard::cli {

// `switchboard agent <command> ...`: online, offline, offers, accept,
// decline, chat, say, transfer, resolve. `args` start with the command
// name. Tokens name --as (default "agent-1") with the agent role.
int RunAgent(const std::vector<std::string>& args, Io& io);

// Blocks SIGINT and SIGTERM in the calling thread (and the threads it
// starts later), so that WaitForStop can wait for them. Call before any
// thread starts.
void BlockStopSignals();
// Waits up to `limit` for SIGINT or SIGTERM; true if one came.
bool WaitForStop(absl::Duration limit);

}  // namespace switchboard::cli
