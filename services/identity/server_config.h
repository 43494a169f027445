#pragma once

// The identity server's own settings and flags; libs/host adds the shared
// ones (ports, data folder, keys, events, TLS).

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/auth/verifier.h"
#include "libs/config/flags.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/postgres_pool.h"
#include "services/identity/notifier.h"
#include "services/identity/crypto.h"
#include "services/identity/identity.h"
#include "services/identity/identity_service.h"

namespace switchboard::identity {

struct ServerConfig {
  std::string verification_signing_key;
  std::string identity_key_file;
  // Whether identity_key_file is the default one, made if missing.
  bool default_identity_key = false;
  std::string code_delivery = "development_file";
  std::string code_outbox_file;
  std::string code_delivery_brokers;
  std::string code_delivery_kafka_settings;
  std::string code_delivery_topic;
  IdentityOptions identity;
  IdentityService::Options service;
  absl::Duration sweep_interval = absl::Minutes(1);
};

// Registers identity's own flags, with `config`'s values as defaults.
void AddServerFlags(config::FlagSet& flags, ServerConfig* config);

// Checks the values the flags gave. INVALID_ARGUMENT naming the flags at
// fault.
absl::Status CheckServerConfig(const ServerConfig& config);

// Fills the paths and the topic left empty with their defaults: the
// identity key and the development code outbox in `data_dir`, the
// verification signing key in `keys_dir`, the code delivery topic after
// `topic_prefix`.
void SetDefaultPaths(ServerConfig& config, const std::string& data_dir,
                     const std::string& keys_dir, const std::string& topic_prefix);

// Identity's own keys.
struct IdentityKeys {
  // Signs verification tokens.
  std::unique_ptr<auth::TokenSigner> verification_signer;
  // From the identity key: hashes one-time codes, seals TOTP secrets, seals
  // code delivery requests.
  std::unique_ptr<CodeHasher> hasher;
  std::unique_ptr<SecretBox> box;
  std::unique_ptr<SecretBox> delivery_box;
};

// Reads the verification signing key (which `verifier` must accept, see
// CheckVerificationSigner) and the identity key (made when it is the
// default one and missing), from the paths in `config` (see
// SetDefaultPaths). On failure `failed_step` names what failed:
// "verification_signing_key" or "identity_key".
absl::StatusOr<IdentityKeys> LoadIdentityKeys(const ServerConfig& config,
                                              const auth::TokenVerifier& verifier,
                                              std::string* failed_step);

// Where one-time codes go, as `config.code_delivery` says: sealed into the
// outbox (kafka; `after_commit` wakes the relay), PostgreSQL's through
// `postgres` when it is not null, else SQLite's through `committer`; or
// the development file (a warning is logged: codes in plain text). Errors
// name the file.
absl::StatusOr<std::unique_ptr<CodeNotifier>> OpenCodeNotifier(
    const ServerConfig& config, storage::GroupCommitter* committer,
    storage::PostgresPool* postgres, const SecretBox* delivery_box,
    std::function<void()> after_commit);

}  // namespace switchboard::identity
