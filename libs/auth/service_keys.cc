#include "libs/auth/service_keys.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/auth/key_folder.h"
#include "libs/auth/key_set_file.h"
#include "libs/log/log.h"

namespace switchboard::auth {

void AddKeyFlags(config::FlagSet& flags, KeyOptions* options, bool signs_service_tokens) {
  flags.Add("keys_dir", &options->keys_dir,
            "folder of the key files (access.jwks, services.jwks, verification.jwks and this "
            "service's private key); default DATA_DIR/keys, where development keys are made "
            "if it does not exist");
  flags.Add("access_keys", &options->access_keys,
            "JWKS of the access tokens' issuer (public keys); default KEYS_DIR/access.jwks");
  flags.Add("service_keys", &options->service_keys,
            "JWKS of the services' public keys, each naming its service; default "
            "KEYS_DIR/services.jwks");
  flags.Add("verification_keys", &options->verification_keys,
            "JWKS of identity's verification-token public keys; default "
            "KEYS_DIR/verification.jwks");
  if (signs_service_tokens) {
    flags.Add("service_signing_key", &options->service_signing_key,
              "this service's private key (PEM, P-256) for its service tokens; default "
              "KEYS_DIR/<service>.pem");
  }
  flags.Add("access_issuer", &options->access_issuer,
            "the iss of access tokens (the desk's login; switchboard-development for "
            "tools/mint_token's tokens)");
  flags.Add("max_access_token_lifetime", &options->max_access_token_lifetime,
            "access tokens valid longer than this (exp - iat) are refused");
  flags.Add("max_service_token_lifetime", &options->max_service_token_lifetime,
            "service tokens valid longer than this are refused");
  flags.Add("max_verification_token_lifetime", &options->max_verification_token_lifetime,
            "verification tokens valid longer than this are refused");
  flags.Add("key_refresh_interval", &options->key_refresh_interval,
            "how often the JWKS files are looked at for new or removed keys");
}

std::string KeysDir(const KeyOptions& options, const std::string& data_dir) {
  return options.keys_dir.empty() ? data_dir + "/keys" : options.keys_dir;
}

absl::StatusOr<ServiceKeys> LoadServiceKeys(const KeyOptions& options, const std::string& service,
                                            const std::string& data_dir,
                                            bool signs_service_tokens) {
  if (options.max_access_token_lifetime <= absl::ZeroDuration() ||
      options.max_service_token_lifetime <= absl::ZeroDuration() ||
      options.max_verification_token_lifetime <= absl::ZeroDuration() ||
      options.key_refresh_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--max_*_token_lifetime and --key_refresh_interval must be above 0");
  }
  if (options.access_issuer.empty() || options.access_issuer == kServiceIssuer ||
      options.access_issuer == kVerificationIssuer) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--access_issuer must be set, and differ from \"", kServiceIssuer, "\" and \"",
        kVerificationIssuer, "\""));
  }
  const std::string dir = KeysDir(options, data_dir);
  const bool from_folder =
      options.access_keys.empty() || options.service_keys.empty() ||
      options.verification_keys.empty() ||
      (signs_service_tokens && options.service_signing_key.empty());
  if (options.keys_dir.empty() && from_folder) {
    absl::StatusOr<bool> made = EnsureKeyFolder(dir);
    if (!made.ok()) return made.status();
    log::Warning("development_keys",
                 {{"service", service},
                  {"keys_dir", dir},
                  {"created", *made ? "true" : "false"},
                  {"note", "tokens are checked with development keys; in production pass "
                           "--keys_dir or the key file flags"}});
  }
  const auto path = [&dir](const std::string& given, const std::string& name) {
    return given.empty() ? absl::StrCat(dir, "/", name) : given;
  };
  TokenVerifier::KeySources sources;
  struct Set {
    std::shared_ptr<const KeySource>* source;
    std::string path;
  };
  for (const Set& set :
       {Set{&sources.access, path(options.access_keys, kAccessKeysFile)},
        Set{&sources.services, path(options.service_keys, kServiceKeysFile)},
        Set{&sources.verification, path(options.verification_keys, kVerificationKeysFile)}}) {
    absl::StatusOr<std::shared_ptr<const KeySource>> source =
        WatchKeySetFile(set.path, options.key_refresh_interval);
    if (!source.ok()) return source.status();
    *set.source = *std::move(source);
  }
  VerifierOptions verifier;
  verifier.service = service;
  verifier.access_issuer = options.access_issuer;
  verifier.max_access_lifetime = options.max_access_token_lifetime;
  verifier.max_service_lifetime = options.max_service_token_lifetime;
  verifier.max_verification_lifetime = options.max_verification_token_lifetime;
  ServiceKeys keys;
  keys.verifier = std::make_unique<TokenVerifier>(std::move(sources), std::move(verifier));
  if (signs_service_tokens) {
    absl::StatusOr<SigningKey> key =
        ReadSigningKeyFile(path(options.service_signing_key, ServiceKeyFile(service)));
    if (!key.ok()) return key.status();
    keys.signer = std::make_unique<TokenSigner>(*std::move(key), std::string(kServiceIssuer));
    // A key missing from the service key set, or bound to another service,
    // would have every peer refuse this service: better not to start.
    const absl::Time now = absl::Now();
    absl::StatusOr<std::string> probe =
        MintServiceToken(*keys.signer, service, service, now, absl::Minutes(1));
    if (!probe.ok()) return probe.status();
    if (absl::StatusOr<Principal> checked = keys.verifier->VerifyCaller(*probe, now);
        !checked.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the service signing key (kid ", keys.signer->key().kid(),
          ") does not pass the service key set's checks: ", checked.status().message()));
    }
  }
  return keys;
}

}  // namespace switchboard::auth
