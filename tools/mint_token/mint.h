#pragma once

#include <ostream>

#include "absl/time/time.h"
#include "libs/config/flags.h"

namespace switchboard::mint_token {

// Exit codes of the tool.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // a key could not be read or written
inline constexpr int kExitBadFlags = 2;  // missing, unknown or invalid flags

// Runs the tool, in one of two modes:
//
//   mint_token --subject=ID --role=customer|agent|supervisor [--ttl=12h]
//              [--keys_dir=DIR | --key_file=PEM] [--issuer=NAME]
//   mint_token --role=service --subject=SERVICE --audience=SERVICE [--ttl=10m]
//              [--keys_dir=DIR | --key_file=PEM]
//     writes to `out` a token valid from `now` for --ttl, and a newline: an
//     access token signed with the development issuer's key
//     (KEYS_DIR/development-issuer.pem), or a service token from one
//     service to another signed with the caller's key (KEYS_DIR/SERVICE.pem).
//     KEYS_DIR defaults to DATA_DIR/keys (--data_dir, default "data").
//
//   mint_token --generate_keys=DIR
//     writes a new development key folder at DIR (libs/auth/key_folder.h)
//     and the path to `out`; fails if DIR exists.
//
// Errors go to `err` as one line each. Flags fall back to environment
// variables as libs/config/flags.h describes, read through `environment`.
// Returns the process exit code.
int Run(int argc, const char* const* argv, absl::Time now, std::ostream& out,
        std::ostream& err,
        config::FlagSet::Environment environment = ::getenv);

}  // namespace switchboard::mint_token
