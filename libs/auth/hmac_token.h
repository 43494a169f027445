#pragma once

// The HS256 tokens every service used to share one key for. Being replaced
// by the ES256 tokens of token.h, service by service.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/auth/key_file.h"
#include "libs/auth/principal.h"

namespace switchboard::auth {

// Signs and verifies JWTs (HS256 only) with one key, using libjwt.
//
// Every token carries iss "switchboard", aud, sub, iat and exp, plus any
// caller-chosen string and integer claims. Verification:
//   - rejects any algorithm but HS256 (including "none") before checking the
//     signature, so a token cannot choose how it is checked;
//   - rejects tokens whose exp is at or before `now`;
//   - rejects tokens whose iat is more than kMaxClockSkew after `now`: a
//     token "from the future" comes from a badly set clock or a forged
//     issuer, and accepting it would stretch its lifetime unnoticed;
//   - rejects tokens longer than kMaxTokenBytes without parsing them.
//
// Thread-safe: all methods are const; the only shared state is the cache of
// verified access tokens (see VerifyAccessToken), which is internally locked.
class AccessTokenCache;
class TokenCodec {
 public:
  static constexpr size_t kMaxTokenBytes = 8 * 1024;
  static constexpr absl::Duration kMaxClockSkew = absl::Minutes(5);

  // `key` should come from LoadOrCreateKey (at least kMinKeyBytes bytes);
  // with a shorter key Sign and Verify fail with FailedPrecondition.
  explicit TokenCodec(std::string key);

  // A token's claims. `strings` and `ints` hold the claims other than the
  // registered ones (iss, aud, sub, iat, exp), e.g. identity's "method",
  // "level" or "session". Times have whole-second precision in tokens.
  struct Claims {
    std::string audience;
    std::string subject;
    absl::Time issued_at;
    absl::Time expires_at;
    absl::flat_hash_map<std::string, std::string> strings;
    absl::flat_hash_map<std::string, int64_t> ints;
  };

  // Returns the signed token (three base64url parts joined by dots).
  // InvalidArgument if audience or subject is empty, expires_at is not after
  // issued_at, a claim name is empty, registered or used twice, or a string
  // is not valid UTF-8 or contains a NUL byte.
  absl::StatusOr<std::string> Sign(const Claims& claims) const;

  // Checks `token` and returns its claims. Unauthenticated with a short reason
  // ("malformed token", "unsupported algorithm", "bad signature", "wrong
  // issuer", "wrong audience", "token expired", "token not yet valid") for
  // anything wrong; never the token itself in the message. String and integer
  // claims land in `strings` and `ints`; claims of other JSON types are
  // ignored. `now` should come from a Clock.
  absl::StatusOr<Claims> Verify(absl::string_view token,
                                absl::string_view audience,
                                absl::Time now) const;

 private:
  friend absl::StatusOr<Principal> VerifyAccessToken(const TokenCodec& codec,
                                                     absl::string_view token,
                                                     absl::Time now);
  std::string key_;
  // Access tokens already verified with this key: checking a token (a JSON
  // parse and an HMAC) is the largest cost of a small call, and a client
  // sends the same token on every call.
  std::shared_ptr<AccessTokenCache> access_cache_;
};

// The signing key a service starts with: `key_file` when given (it must
// exist: production keys come from configuration), else DATA_DIR/token.key,
// created on first use so that a local run works with no flags and all its
// services share one key. Errors name the path, never the key.
absl::StatusOr<TokenCodec> LoadServiceTokens(const std::string& data_dir,
                                             const std::string& key_file);

// Mints an access token for `principal`: aud "switchboard-api", sub, role,
// iat `now`, exp principal.expires_at. InvalidArgument if the subject is empty
// or longer than kMaxSubjectBytes, or expires_at is not after `now`.
absl::StatusOr<std::string> MintAccessToken(const TokenCodec& codec,
                                            const Principal& principal,
                                            absl::Time now);

// Verifies an access token (see TokenCodec::Verify) and returns its
// principal. Unauthenticated on anything wrong, including a missing or unknown
// role, an empty subject or one longer than kMaxSubjectBytes.
// A token that verified before with the same codec is answered from a
// bounded cache keyed by the token's exact text (so only a token that passed
// every check can hit), still refused once it expires.
absl::StatusOr<Principal> VerifyAccessToken(const TokenCodec& codec,
                                            absl::string_view token,
                                            absl::Time now);

}  // namespace switchboard::auth
