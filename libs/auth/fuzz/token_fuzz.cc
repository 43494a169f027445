// Fuzzes what a caller controls of authentication: the authorization header
// (BearerToken) and the token in it, checked as an access token
// (VerifyAccessToken), as a verification token (VerifyVerificationToken) and
// through TokenCodec::Verify itself.
//
// The first byte picks how the rest becomes a token:
//   even: the rest is the authorization header's value, as sent;
//   odd:  the rest is "<header JSON>\n<payload JSON>", which this target
//         encodes and signs with the codec's key (HMAC-SHA256, whatever the
//         header says), so that the claim checks behind the signature are
//         reached too.
// Checks beyond "no crash": every refusal is UNAUTHENTICATED; whatever
// passes satisfies the documented contract (a known role, a subject of 1 to
// 128 bytes, not expired, a known verification method and level); and the
// claims of a verified token, signed again, verify to the same claims.

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/token.h"
#include "libs/auth/verification_token.h"

namespace {

using namespace switchboard::auth;

const std::string& Key() {
  static const std::string* key = new std::string(32, 'k');
  return *key;
}

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

void Check(bool ok) {
  if (!ok) abort();
}

std::string Base64Url(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

std::string SignedToken(absl::string_view header, absl::string_view payload) {
  std::string signing_input = Base64Url(header) + "." + Base64Url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), Key().data(), static_cast<int>(Key().size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_size);
  return signing_input + "." +
         Base64Url(absl::string_view(reinterpret_cast<const char*>(mac), mac_size));
}

bool SameClaims(const TokenCodec::Claims& a, const TokenCodec::Claims& b) {
  return a.audience == b.audience && a.subject == b.subject && a.issued_at == b.issued_at &&
         a.expires_at == b.expires_at && a.strings == b.strings && a.ints == b.ints;
}

void VerifyAll(const TokenCodec& codec, absl::string_view token) {
  for (absl::string_view audience : {kAccessAudience, kVerificationAudience}) {
    absl::StatusOr<TokenCodec::Claims> claims = codec.Verify(token, audience, kNow);
    if (!claims.ok()) {
      Check(claims.status().code() == absl::StatusCode::kUnauthenticated);
      continue;
    }
    Check(claims->audience == audience && !claims->subject.empty());
    Check(claims->expires_at > kNow);
    Check(claims->issued_at <= kNow + TokenCodec::kMaxClockSkew);
    // What verified can be issued again, and means the same once verified.
    // (Sign is stricter about a few things Verify tolerates, such as an
    // expiry before the issue time: then there is nothing to compare.)
    absl::StatusOr<std::string> again = codec.Sign(*claims);
    if (again.ok()) {
      absl::StatusOr<TokenCodec::Claims> reverified = codec.Verify(*again, audience, kNow);
      Check(reverified.ok() && SameClaims(*reverified, *claims));
    }
  }

  absl::StatusOr<Principal> principal = VerifyAccessToken(codec, token, kNow);
  if (principal.ok()) {
    Check(!principal->subject.empty() && principal->subject.size() <= kMaxSubjectBytes);
    Check(principal->expires_at > kNow);
    Check(ParseRole(RoleName(principal->role)) == principal->role);
    // A second look is answered by the cache, and must agree.
    absl::StatusOr<Principal> cached = VerifyAccessToken(codec, token, kNow);
    Check(cached.ok() && cached->subject == principal->subject &&
          cached->role == principal->role && cached->expires_at == principal->expires_at);
  } else {
    Check(principal.status().code() == absl::StatusCode::kUnauthenticated);
  }

  absl::StatusOr<VerificationClaims> verification = VerifyVerificationToken(codec, token, kNow);
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
  static const TokenCodec* codec = new TokenCodec(Key());
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    absl::StatusOr<absl::string_view> token = BearerToken(rest);
    if (!token.ok()) {
      Check(token.status().code() == absl::StatusCode::kUnauthenticated);
      // The bare text as a token too: BearerToken refuses most of it.
      VerifyAll(*codec, rest);
      return 0;
    }
    Check(!token->empty());
    VerifyAll(*codec, *token);
  } else {
    const size_t newline = rest.find('\n');
    if (newline == absl::string_view::npos) return 0;
    VerifyAll(*codec, SignedToken(rest.substr(0, newline), rest.substr(newline + 1)));
  }
  return 0;
}
