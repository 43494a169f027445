#include "libs/auth/verification_token.h"

#include "gtest/gtest.h"

namespace switchboard::auth {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

VerificationClaims Claims() {
  VerificationClaims claims;
  claims.customer_id = "cust-1";
  claims.method = "totp";
  claims.level = kLevelStrong;
  claims.token_id = "vt_1";
  claims.session_id = "sess-1";
  claims.issued_at = kNow;
  claims.expires_at = kNow + absl::Minutes(15);
  return claims;
}

TEST(VerificationTokenTest, RoundTrips) {
  TokenCodec codec(std::string(32, 'k'));
  absl::StatusOr<std::string> token = SignVerificationToken(codec, Claims());
  ASSERT_TRUE(token.ok()) << token.status();
  absl::StatusOr<VerificationClaims> claims =
      VerifyVerificationToken(codec, *token, kNow + absl::Minutes(1));
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->customer_id, "cust-1");
  EXPECT_EQ(claims->method, "totp");
  EXPECT_EQ(claims->level, kLevelStrong);
  EXPECT_EQ(claims->token_id, "vt_1");
  EXPECT_EQ(claims->session_id, "sess-1");
  EXPECT_EQ(claims->issued_at, kNow);
  EXPECT_EQ(claims->expires_at, kNow + absl::Minutes(15));
}

TEST(VerificationTokenTest, SessionIsOptional) {
  TokenCodec codec(std::string(32, 'k'));
  VerificationClaims in = Claims();
  in.session_id.clear();
  absl::StatusOr<VerificationClaims> claims =
      VerifyVerificationToken(codec, *SignVerificationToken(codec, in), kNow);
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->session_id, "");
}

TEST(VerificationTokenTest, RefusesExpiredOtherKeyAndAccessTokens) {
  TokenCodec codec(std::string(32, 'k'));
  const std::string token = *SignVerificationToken(codec, Claims());
  EXPECT_EQ(VerifyVerificationToken(codec, token, kNow + absl::Minutes(15))
                .status()
                .message(),
            "token expired");
  TokenCodec other(std::string(32, 'o'));
  EXPECT_EQ(VerifyVerificationToken(other, token, kNow).status().message(),
            "bad signature");
  Principal principal{"cust-1", Role::kCustomer, kNow + absl::Hours(1)};
  const std::string access = *MintAccessToken(codec, principal, kNow);
  EXPECT_EQ(VerifyVerificationToken(codec, access, kNow).status().message(),
            "wrong audience");
  EXPECT_FALSE(VerifyAccessToken(codec, token, kNow).ok());
}

TEST(VerificationTokenTest, RefusesMissingOrUnknownClaims) {
  TokenCodec codec(std::string(32, 'k'));
  TokenCodec::Claims raw;
  raw.audience = std::string(kVerificationAudience);
  raw.subject = "cust-1";
  raw.issued_at = kNow;
  raw.expires_at = kNow + absl::Minutes(5);
  raw.strings["method"] = "carrier_pigeon";
  raw.strings["tid"] = "vt_1";
  raw.ints["level"] = 1;
  absl::StatusOr<VerificationClaims> claims =
      VerifyVerificationToken(codec, *codec.Sign(raw), kNow);
  EXPECT_TRUE(absl::IsUnauthenticated(claims.status()));
  raw.strings["method"] = "sms_otp";
  raw.ints.clear();
  claims = VerifyVerificationToken(codec, *codec.Sign(raw), kNow);
  EXPECT_EQ(claims.status().message(), "malformed token");
}

TEST(VerificationTokenTest, SignRefusesBadClaims) {
  TokenCodec codec(std::string(32, 'k'));
  VerificationClaims claims = Claims();
  claims.level = 3;
  EXPECT_TRUE(absl::IsInvalidArgument(SignVerificationToken(codec, claims).status()));
  claims = Claims();
  claims.method = "email";
  EXPECT_TRUE(absl::IsInvalidArgument(SignVerificationToken(codec, claims).status()));
  claims = Claims();
  claims.customer_id.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(SignVerificationToken(codec, claims).status()));
}

}  // namespace
}  // namespace switchboard::auth
