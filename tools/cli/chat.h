#pragma once

#include <string>

#include "tools/cli/clients.h"

namespace switchboard::cli {

// Sends one message with a fresh client_message_id; prints the stored
// message (its sequence) and returns an exit code.
int SendOne(Command& command, const std::string& token, const std::string& session,
            const std::string& text);

// An interactive chat in `session` as the holder of `token`: prints the
// session's events as they arrive (resuming from the last sequence seen on
// reconnect) and sends each line read from the input as a message with a
// fresh client_message_id. Ends at the end of input (after `linger`, so
// replies to the last lines still show) or when the session's stream ends
// (the session closed, or the caller left it).
int RunChat(Command& command, const std::string& token, const std::string& session,
            absl::Duration linger);

// A client_message_id / request_id: "cli-" and 24 random hex digits.
std::string NewRequestId();

}  // namespace switchboard::cli
