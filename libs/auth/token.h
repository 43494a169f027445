#pragma once

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/auth/keys.h"
#include "libs/auth/principal.h"

// Signed tokens: JWTs (RFC 7519) in JWS compact form, signed with ES256 by
// their issuer's private key and checked against the issuer's key set.
//
// Three kinds, each from its own issuer and checked against its own keys:
//   access tokens        iss: the desk's login (tools/mint_token locally),
//                        aud "switchboard-api", sub a person, "role"
//                        customer, agent or supervisor;
//   service tokens       iss "switchboard-service", sub the calling service,
//                        aud the service called, "role" service; signed
//                        with the calling service's own key;
//   verification tokens  iss "switchboard-identity", aud
//                        "switchboard-verification" (verification_token.h);
//                        signed with identity's verification key.
// The header names the key (`kid`). Only "ES256" is accepted as `alg`, and
// the algorithm is checked before anything else, so a token cannot choose
// how it is checked ("none", HS256 with a public key as the secret, ...).

namespace switchboard::auth {

// Longest token accepted, in bytes; longer ones are refused unparsed.
inline constexpr size_t kMaxTokenBytes = 8 * 1024;

// How far a token's iat or nbf may lie ahead of the verifier's clock. A
// token "from the future" comes from a badly set clock or a forged issuer,
// and accepting it would stretch its lifetime unnoticed.
inline constexpr absl::Duration kMaxClockSkew = absl::Minutes(5);

// The audience of access tokens, which callers present to every service.
inline constexpr absl::string_view kAccessAudience = "switchboard-api";

// The issuer of service tokens.
inline constexpr absl::string_view kServiceIssuer = "switchboard-service";

// The issuer and audience of verification tokens (verification_token.h).
inline constexpr absl::string_view kVerificationIssuer = "switchboard-identity";
inline constexpr absl::string_view kVerificationAudience = "switchboard-verification";

// The issuer of the access tokens tools/mint_token and the CLI make from the
// development issuer key; production names the desk's login instead
// (--access_issuer).
inline constexpr absl::string_view kDevelopmentIssuer = "switchboard-development";

// A token's claims. `strings` and `ints` hold the claims other than the
// registered ones (iss, sub, aud, exp, nbf, iat, jti), e.g. "role",
// identity's "method" and "level". Times have whole-second precision.
struct Claims {
  std::string audience;
  std::string subject;
  absl::Time issued_at;
  absl::Time expires_at;
  absl::flat_hash_map<std::string, std::string> strings;
  absl::flat_hash_map<std::string, int64_t> ints;
};

// Makes tokens as one issuer, with one private key. Thread-safe.
class TokenSigner {
 public:
  TokenSigner(SigningKey key, std::string issuer)
      : key_(std::move(key)), issuer_(std::move(issuer)) {}

  // The signed token: header {"alg":"ES256","typ":"JWT","kid":key().kid()}
  // and the claims with iss issuer(). InvalidArgument if audience or subject
  // is empty, expires_at is not after issued_at, a claim name is empty,
  // registered or used twice, a string is not valid UTF-8, an integer or
  // time is beyond 2^53 seconds, or the token would exceed kMaxTokenBytes;
  // Internal if OpenSSL fails.
  absl::StatusOr<std::string> Sign(const Claims& claims) const;

  const SigningKey& key() const { return key_; }
  const std::string& issuer() const { return issuer_; }

 private:
  SigningKey key_;
  std::string issuer_;
};

// What a verifier demands of one kind of token.
struct TokenRules {
  // iss must equal it.
  std::string issuer;
  // aud must equal it (or, as an array, contain it).
  std::string audience;
  // exp - iat may not exceed it: a leaked token is worth little for long.
  absl::Duration max_lifetime;
};

// The kid a token's header names, after checking only the header: the size
// and shape of the token, alg ES256, no `crit`. Unauthenticated as
// VerifyToken says ("malformed token", "unsupported algorithm", "unknown
// key" when there is no kid). Lets a verifier pick the key set before
// reading the payload.
absl::StatusOr<std::string> TokenKeyId(absl::string_view token);

// Checks `token` against `keys` and `rules` at `now` and returns its claims;
// `key_service`, if not null, receives the signing key's service (see
// KeySet). Unauthenticated, with a short reason and never the token:
//   "malformed token"          not three base64url parts of JSON objects,
//                              longer than kMaxTokenBytes, or a registered
//                              claim missing or of the wrong type;
//   "unsupported algorithm"    alg other than ES256 (including "none"), or a
//                              `crit` header;
//   "unknown key"              no kid, or a kid not in `keys`;
//   "bad signature";
//   "wrong issuer", "wrong audience";
//   "token expired"            exp at or before `now`;
//   "token not yet valid"      iat or nbf more than kMaxClockSkew after `now`;
//   "token lifetime too long"  exp - iat above rules.max_lifetime.
// The payload is parsed only once the signature is good. String and integer
// claims land in `strings` and `ints`; claims of other JSON types are
// ignored.
absl::StatusOr<Claims> VerifyToken(absl::string_view token, const KeySet& keys,
                                   const TokenRules& rules, absl::Time now,
                                   std::string* key_service = nullptr);

// An access token for `principal` (customer, agent or supervisor): aud
// kAccessAudience, sub, "role", iat `now`, exp principal.expires_at.
// InvalidArgument if the role is kService (services use MintServiceToken),
// the subject is empty or longer than kMaxSubjectBytes, or expires_at is not
// after `now`.
absl::StatusOr<std::string> MintAccessToken(const TokenSigner& issuer, const Principal& principal,
                                            absl::Time now);

// A service token from `caller` to `callee`, signed with the caller's own
// key (`signer`, issuer kServiceIssuer): sub `caller`, aud `callee`, role
// "service", valid from `now` for `lifetime`. InvalidArgument for an empty
// name or a lifetime that is not positive.
absl::StatusOr<std::string> MintServiceToken(const TokenSigner& signer, absl::string_view caller,
                                             absl::string_view callee, absl::Time now,
                                             absl::Duration lifetime);

}  // namespace switchboard::auth
