#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/auth/keys.h"
#include "libs/auth/principal.h"
#include "libs/auth/token.h"

namespace switchboard::auth {

// Where a verifier finds the keys of one issuer: a fixed set, or a file
// that is re-read when it changes (key_set_file.h). Implementations are
// thread-safe.
class KeySource {
 public:
  virtual ~KeySource() = default;
  // The keys to check tokens with now; never null.
  virtual std::shared_ptr<const KeySet> Keys() const = 0;
};

// A source that always gives `keys`.
std::shared_ptr<const KeySource> FixedKeys(KeySet keys);

// What one service accepts.
struct VerifierOptions {
  // This service's name: the audience of the service tokens it accepts.
  std::string service;
  // The iss of access tokens (the desk's login in production).
  std::string access_issuer = std::string(kDevelopmentIssuer);
  // Longest lifetime (exp - iat) accepted per kind of token.
  absl::Duration max_access_lifetime = absl::Hours(12);
  absl::Duration max_service_lifetime = absl::Minutes(15);
  absl::Duration max_verification_lifetime = absl::Hours(1);
};

// Everything a service checks tokens with, holding public keys only: the
// access tokens' issuers' keys, every service's key (each bound to its
// service), and identity's verification keys. A key of one set never
// passes for another: a service's key cannot make an access or a
// verification token, and a key of one service cannot speak for another.
//
// Thread-safe. Verified caller tokens are remembered in a bounded cache
// keyed by their exact text (checking a signature is the largest cost of a
// small call, and a client sends the same token on every call); a
// remembered token is still refused once it expires or once the key set it
// was checked against is replaced (a key removed from a set stops working
// within the set's refresh interval).
class TokenVerifier {
 public:
  struct KeySources {
    std::shared_ptr<const KeySource> access;
    std::shared_ptr<const KeySource> services;
    std::shared_ptr<const KeySource> verification;
  };

  TokenVerifier(KeySources keys, VerifierOptions options);
  ~TokenVerifier();

  // The caller a token names: an access token (its issuer's key, aud
  // kAccessAudience, role customer, agent or supervisor, lifetime within
  // max_access_lifetime) or a service token (a service's key whose bound
  // service is the token's sub, aud options.service, role service,
  // lifetime within max_service_lifetime). The kid picks the set: access
  // keys first, then service keys. Unauthenticated with VerifyToken's
  // reasons, plus "unknown role" (a missing or unknown role, or role
  // service in an access token), "subject too long", and "key belongs to
  // another service".
  absl::StatusOr<Principal> VerifyCaller(absl::string_view token, absl::Time now) const;

  // A verification token's claims, checked against identity's keys only
  // (iss kVerificationIssuer, aud "switchboard-verification", lifetime
  // within max_verification_lifetime). Unauthenticated as VerifyToken.
  absl::StatusOr<Claims> VerifyVerification(absl::string_view token, absl::Time now) const;

  const VerifierOptions& options() const { return options_; }

 private:
  class Cache;
  const KeySources keys_;
  const VerifierOptions options_;
  std::unique_ptr<Cache> cache_;
};

}  // namespace switchboard::auth
