#pragma once

#include <string>
#include <vector>

#include "tools/cli/clients.h"

namespace switchboard::cli {

// The whole command line of `switchboard` without the program name:
// `<group> <command> [args] [--flags]`, or `help`, or `demo`. Returns the
// exit code: 0 on success, 1 when a call failed ("error: <CODE>: <message>"
// on stderr), 2 for bad usage.
int Run(const std::vector<std::string>& args, Io& io);

// What `switchboard help` prints.
std::string HelpText();

}  // namespace switchboard::cli
