#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/auth/verifier.h"

namespace switchboard::auth {

// Verification tokens: what identity issues after a customer completed a
// challenge, signed with identity's own verification key, and what other
// services check offline against identity's public keys before sensitive
// help (e.g. sessions for a PHONE callback). The format is stated in
// proto/switchboard/identity/v1/identity_service.proto: iss
// "switchboard-identity", aud "switchboard-verification", sub the customer,
// iat, exp, and the claims "method", "level", "tid" and (optionally)
// "session".
//
//   absl::StatusOr<VerificationClaims> claims =
//       VerifyVerificationToken(verifier, token, clock->Now());
//   if (!claims.ok() || claims->customer_id != caller ||
//       claims->level < kLevelBasic) { ...refuse... }

// Levels as in switchboard.common.v1.VerificationLevel.
inline constexpr int kLevelBasic = 1;
inline constexpr int kLevelStrong = 2;

struct VerificationClaims {
  // sub: the verified customer.
  std::string customer_id;
  // "email_otp", "sms_otp" or "totp".
  std::string method;
  // kLevelBasic or kLevelStrong.
  int level = 0;
  // tid: the token's id, safe to log.
  std::string token_id;
  // The session the token is bound to; empty when none.
  std::string session_id;
  absl::Time issued_at;
  absl::Time expires_at;
};

// Signs `claims` (all but session_id required) with identity's
// verification signer (issuer kVerificationIssuer). InvalidArgument for an
// unknown method or level or a missing customer or token id, and as
// TokenSigner::Sign.
absl::StatusOr<std::string> SignVerificationToken(const TokenSigner& signer,
                                                  const VerificationClaims& claims);

// Checks `token` as a verification token at `now` against identity's keys
// only (TokenVerifier::VerifyVerification) and returns its claims.
// Unauthenticated with VerifyToken's reason, or "malformed token" when a
// claim is missing or has an unknown value. A token signed with any other
// key (an access or a service key) fails with "unknown key", and a
// verification token is never an access token.
// The caller still checks that customer_id (and session_id, level) are the
// ones it needs: a valid token proves nothing about another customer.
absl::StatusOr<VerificationClaims> VerifyVerificationToken(const TokenVerifier& verifier,
                                                           absl::string_view token,
                                                           absl::Time now);

// Whether a verification token that `signer` makes, valid for `lifetime`,
// passes `verifier`: identity checks at start that its signing key is in
// the verification key set every service reads and that the tokens it
// issues are not too long-lived for it. FailedPrecondition naming the
// reason otherwise.
absl::Status CheckVerificationSigner(const TokenSigner& signer, const TokenVerifier& verifier,
                                     absl::Duration lifetime);


}  // namespace switchboard::auth
