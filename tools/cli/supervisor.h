#pragma once

#include <string>
#include <vector>

#include "tools/cli/clients.h"

namespace switchboard::cli {

// `switchboard supervisor <command> ...`: queues, agents, complaints,
// summary, contact. `args` start with the command name. Tokens name --as
// (default "supervisor-1") with the supervisor role.
int RunSupervisor(const std::vector<std::string>& args, Io& io);

}  // namespace switchboard::cli
