#pragma once

#include <ostream>

#include "absl/time/time.h"
#include "libs/config/flags.h"

namespace switchboard::mint_token {

// Exit codes of the tool.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // the key could not be read or made
inline constexpr int kExitBadFlags = 2;  // missing, unknown or invalid flags

// Runs `mint_token --key_file=PATH --subject=ID --role=ROLE [--ttl=12h]
// [--create_key]`: loads (or, with --create_key, creates) the signing key,
// and writes an access token for (subject, role) valid from `now` for --ttl to
// `out`, followed by a newline. Errors go to `err` as one line each. Flags
// fall back to environment variables as libs/config/flags.h describes,
// read through `environment`. Returns the process exit code.
int Run(int argc, const char* const* argv, absl::Time now, std::ostream& out,
        std::ostream& err,
        config::FlagSet::Environment environment = ::getenv);

}  // namespace switchboard::mint_token
