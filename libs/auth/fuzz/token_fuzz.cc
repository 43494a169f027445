// Fuzzes what a caller controls of authentication: the authorization header
// (BearerToken) and the token in it, checked as a caller's token
// (TokenVerifier::VerifyCaller), as a verification token
// (VerifyVerificationToken), through TokenKeyId, and through VerifyToken
// itself.
//
// The first byte picks how the rest becomes a token:
//   even: the rest is the authorization header's value, as sent;
//   odd:  the rest is "<header JSON>\n<payload JSON>", which this target
//         encodes and signs (ES256, whatever the header says) with the
//         access issuer's key, a service's key or identity's verification
//         key (the first byte's next bits choose), so that the checks
//         behind the signature are reached too.
// Checks beyond "no crash": every refusal is UNAUTHENTICATED; whatever
// passes satisfies the documented contract (a known role, a subject of 1 to
// 128 bytes, not expired, a known verification method and level); and the
// claims of a verified token, signed again, verify to the same claims.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/keys.h"
#include "libs/auth/principal.h"
#include "libs/auth/token.h"
#include "libs/auth/verification_token.h"
#include "libs/auth/verifier.h"
#include "libs/testing/test_tokens.h"

namespace {

using namespace switchboard::auth;

// The keys, made once: a fresh key pair per input would cost more than the
// input.
const switchboard::testing::TestTokens& Tokens() {
  static const auto* tokens = new switchboard::testing::TestTokens("sessions");
  return *tokens;
}

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

void Check(bool ok) {
  if (!ok) abort();
}

std::string Base64Url(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

std::string SignedToken(const TokenSigner& signer, absl::string_view header,
                        absl::string_view payload) {
  std::string signing_input = Base64Url(header) + "." + Base64Url(payload);
  absl::StatusOr<std::string> signature = signer.key().Sign(signing_input);
  Check(signature.ok());
  return signing_input + "." + Base64Url(*signature);
}

bool SameClaims(const Claims& a, const Claims& b) {
  return a.audience == b.audience && a.subject == b.subject && a.issued_at == b.issued_at &&
         a.expires_at == b.expires_at && a.strings == b.strings && a.ints == b.ints;
}

// VerifyToken against the access issuer's key alone; what passes, signed
// again by that issuer, verifies to the same claims.
void VerifyAsAccess(absl::string_view token) {
  const TokenSigner& issuer = Tokens().issuer();
  KeySet keys;
  Check(keys.Add(issuer.key().kid(), issuer.key().public_key()).ok());
  const TokenRules rules{issuer.issuer(), std::string(kAccessAudience), absl::Hours(12)};
  absl::StatusOr<Claims> claims = VerifyToken(token, keys, rules, kNow);
  if (!claims.ok()) {
    Check(claims.status().code() == absl::StatusCode::kUnauthenticated);
    return;
  }
  Check(claims->audience == kAccessAudience);
  Check(claims->expires_at > kNow);
  Check(claims->issued_at <= kNow + kMaxClockSkew);
  Check(claims->expires_at - claims->issued_at <= rules.max_lifetime);
  // (Sign is stricter about a few things VerifyToken tolerates: then there
  // is nothing to compare.)
  absl::StatusOr<std::string> again = issuer.Sign(*claims);
  if (again.ok()) {
    absl::StatusOr<Claims> reverified = VerifyToken(*again, keys, rules, kNow);
    Check(reverified.ok() && SameClaims(*reverified, *claims));
  }
}

void VerifyAll(absl::string_view token) {
  absl::StatusOr<std::string> kid = TokenKeyId(token);
  Check(kid.ok() || kid.status().code() == absl::StatusCode::kUnauthenticated);

  VerifyAsAccess(token);

  const TokenVerifier& verifier = Tokens().verifier();
  absl::StatusOr<Principal> principal = verifier.VerifyCaller(token, kNow);
  if (principal.ok()) {
    Check(kid.ok());
    Check(!principal->subject.empty() && principal->subject.size() <= kMaxSubjectBytes);
    Check(principal->expires_at > kNow);
    Check(ParseRole(RoleName(principal->role)) == principal->role);
    // A second look is answered by the cache, and must agree.
    absl::StatusOr<Principal> cached = verifier.VerifyCaller(token, kNow);
    Check(cached.ok() && cached->subject == principal->subject &&
          cached->role == principal->role && cached->expires_at == principal->expires_at);
  } else {
    Check(principal.status().code() == absl::StatusCode::kUnauthenticated);
  }

  absl::StatusOr<VerificationClaims> verification =
      VerifyVerificationToken(verifier, token, kNow);
  if (verification.ok()) {
    Check(!verification->customer_id.empty() && !verification->token_id.empty());
    Check(verification->level == kLevelBasic || verification->level == kLevelStrong);
    Check(verification->method == "email_otp" || verification->method == "sms_otp" ||
          verification->method == "totp");
    Check(verification->expires_at > kNow);
  } else {
    Check(verification.status().code() == absl::StatusCode::kUnauthenticated);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    absl::StatusOr<absl::string_view> token = BearerToken(rest);
    if (!token.ok()) {
      Check(token.status().code() == absl::StatusCode::kUnauthenticated);
      // The bare text as a token too: BearerToken refuses most of it.
      VerifyAll(rest);
      return 0;
    }
    Check(!token->empty());
    VerifyAll(*token);
  } else {
    const size_t newline = rest.find('\n');
    if (newline == absl::string_view::npos) return 0;
    const int signer = (data[0] >> 1) % 3;
    const TokenSigner& key = signer == 0   ? Tokens().issuer()
                             : signer == 1 ? Tokens().service_signer("routing")
                                           : Tokens().verification_signer();
    VerifyAll(SignedToken(key, rest.substr(0, newline), rest.substr(newline + 1)));
  }
  return 0;
}
