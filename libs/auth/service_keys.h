#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/auth/verifier.h"
#include "libs/config/flags.h"

// The keys a service starts with, from flags: what main() needs to check
// tokens and, for a service that calls others, to sign its service tokens.

namespace switchboard::auth {

struct KeyOptions {
  // Folder of the key files below (key_folder.h). Empty: DATA_DIR/keys,
  // where a development key folder is made if there is none.
  std::string keys_dir;
  // Each empty: the file of that name in the key folder.
  std::string access_keys;
  std::string service_keys;
  std::string verification_keys;
  std::string service_signing_key;
  // The iss of access tokens.
  std::string access_issuer = std::string(kDevelopmentIssuer);
  absl::Duration max_access_token_lifetime = absl::Hours(12);
  absl::Duration max_service_token_lifetime = absl::Minutes(15);
  absl::Duration max_verification_token_lifetime = absl::Hours(1);
  // How often the key set files are looked at for changes.
  absl::Duration key_refresh_interval = absl::Seconds(10);
};

// Adds --keys_dir, --access_keys, --service_keys, --verification_keys,
// --access_issuer, the --max_*_token_lifetime flags and
// --key_refresh_interval; with `signs_service_tokens` also
// --service_signing_key (only services that call other services hold a
// private key).
void AddKeyFlags(config::FlagSet& flags, KeyOptions* options, bool signs_service_tokens);

// The folder key files default to: --keys_dir, or DATA_DIR/keys.
std::string KeysDir(const KeyOptions& options, const std::string& data_dir);

struct ServiceKeys {
  std::unique_ptr<TokenVerifier> verifier;
  // Signs `service`'s service tokens; null unless asked for.
  std::unique_ptr<TokenSigner> signer;
};

// Loads what `service` (e.g. "sessions") needs: a verifier over the three
// key sets (re-read as they change) and, with `signs_service_tokens`, its
// service signing key. Without --keys_dir, a key file that defaults to the
// folder makes a development key folder in DATA_DIR/keys first if there is
// none (logged as a warning: production passes its keys). InvalidArgument
// for lifetimes or an interval that are not positive, an empty issuer, or
// an access issuer that is also the service or verification tokens' one;
// FailedPrecondition if the signing key is not in the service key set bound
// to `service` (its peers would refuse every call); otherwise the errors of
// WatchKeySetFile and ReadSigningKeyFile, naming the file.
absl::StatusOr<ServiceKeys> LoadServiceKeys(const KeyOptions& options, const std::string& service,
                                            const std::string& data_dir,
                                            bool signs_service_tokens);

}  // namespace switchboard::auth
