#include "libs/auth/verification_token.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace switchboard::auth {
namespace {

bool KnownMethod(absl::string_view method) {
  return method == "email_otp" || method == "sms_otp" || method == "totp";
}

bool KnownLevel(int64_t level) { return level == kLevelBasic || level == kLevelStrong; }

absl::StatusOr<Claims> ToClaims(const VerificationClaims& claims) {
  if (claims.customer_id.empty()) {
    return absl::InvalidArgumentError("verification token: customer_id is empty");
  }
  if (claims.token_id.empty()) {
    return absl::InvalidArgumentError("verification token: token_id is empty");
  }
  if (!KnownMethod(claims.method)) {
    return absl::InvalidArgumentError("verification token: unknown method");
  }
  if (!KnownLevel(claims.level)) {
    return absl::InvalidArgumentError("verification token: unknown level");
  }
  Claims out;
  out.audience = std::string(kVerificationAudience);
  out.subject = claims.customer_id;
  out.issued_at = claims.issued_at;
  out.expires_at = claims.expires_at;
  out.strings["method"] = claims.method;
  out.strings["tid"] = claims.token_id;
  if (!claims.session_id.empty()) out.strings["session"] = claims.session_id;
  out.ints["level"] = claims.level;
  return out;
}

absl::StatusOr<VerificationClaims> FromClaims(const Claims& claims) {
  auto method = claims.strings.find("method");
  auto tid = claims.strings.find("tid");
  auto level = claims.ints.find("level");
  if (method == claims.strings.end() || !KnownMethod(method->second) ||
      tid == claims.strings.end() || tid->second.empty() || level == claims.ints.end() ||
      !KnownLevel(level->second) || claims.subject.empty()) {
    return absl::UnauthenticatedError("malformed token");
  }
  VerificationClaims out;
  out.customer_id = claims.subject;
  out.method = method->second;
  out.level = static_cast<int>(level->second);
  out.token_id = tid->second;
  if (auto session = claims.strings.find("session"); session != claims.strings.end()) {
    out.session_id = session->second;
  }
  out.issued_at = claims.issued_at;
  out.expires_at = claims.expires_at;
  return out;
}

}  // namespace

absl::StatusOr<std::string> SignVerificationToken(const TokenSigner& signer,
                                                  const VerificationClaims& claims) {
  absl::StatusOr<Claims> out = ToClaims(claims);
  if (!out.ok()) return out.status();
  return signer.Sign(*out);
}

absl::StatusOr<VerificationClaims> VerifyVerificationToken(const TokenVerifier& verifier,
                                                           absl::string_view token,
                                                           absl::Time now) {
  absl::StatusOr<Claims> claims = verifier.VerifyVerification(token, now);
  if (!claims.ok()) return claims.status();
  return FromClaims(*claims);
}

absl::Status CheckVerificationSigner(const TokenSigner& signer, const TokenVerifier& verifier,
                                     absl::Duration lifetime) {
  const absl::Time now = absl::Now();
  VerificationClaims probe;
  probe.customer_id = "probe";
  probe.method = "totp";
  probe.level = kLevelBasic;
  probe.token_id = "probe";
  probe.issued_at = now;
  probe.expires_at = now + lifetime;
  absl::StatusOr<std::string> token = SignVerificationToken(signer, probe);
  if (!token.ok()) return token.status();
  if (absl::StatusOr<VerificationClaims> checked = VerifyVerificationToken(verifier, *token, now);
      !checked.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("verification tokens signed with kid ", signer.key().kid(),
                     " do not pass the verification key set's checks: ",
                     checked.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace switchboard::auth
