#pragma once

#include <string>
#include <vector>

#include "tools/cli/clients.h"

namespace switchboard::cli {

// `switchboard customer <command> ...`: open, chat, say, show, attach,
// verify, callback, email, rate, complain, changes, confirm-change,
// cancel-change. `args` start with the command name. Tokens
// name --as (default "customer-1") with the customer role.
int RunCustomer(const std::vector<std::string>& args, Io& io);

}  // namespace switchboard::cli
