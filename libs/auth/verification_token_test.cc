#include "libs/auth/verification_token.h"

#include "gtest/gtest.h"
#include "libs/auth/key_folder.h"

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

class VerificationTokenTest : public ::testing::Test {
 protected:
  static KeyFolder NewKeys() {
    absl::StatusOr<KeyFolder> keys = KeyFolder::Generate();
    EXPECT_TRUE(keys.ok()) << keys.status();
    return *std::move(keys);
  }

  KeyFolder keys_ = NewKeys();
  TokenSigner identity_{keys_.verification, std::string(kVerificationIssuer)};
  TokenVerifier verifier_{{FixedKeys(keys_.AccessKeys()), FixedKeys(keys_.ServiceKeys()),
                           FixedKeys(keys_.VerificationKeys())},
                          VerifierOptions{"sessions"}};
};

TEST_F(VerificationTokenTest, RoundTrips) {
  absl::StatusOr<std::string> token = SignVerificationToken(identity_, Claims());
  ASSERT_TRUE(token.ok()) << token.status();
  absl::StatusOr<VerificationClaims> claims =
      VerifyVerificationToken(verifier_, *token, kNow + absl::Minutes(1));
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->customer_id, "cust-1");
  EXPECT_EQ(claims->method, "totp");
  EXPECT_EQ(claims->level, kLevelStrong);
  EXPECT_EQ(claims->token_id, "vt_1");
  EXPECT_EQ(claims->session_id, "sess-1");
  EXPECT_EQ(claims->issued_at, kNow);
  EXPECT_EQ(claims->expires_at, kNow + absl::Minutes(15));
}

TEST_F(VerificationTokenTest, SessionIsOptional) {
  VerificationClaims in = Claims();
  in.session_id.clear();
  absl::StatusOr<VerificationClaims> claims =
      VerifyVerificationToken(verifier_, *SignVerificationToken(identity_, in), kNow);
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->session_id, "");
}

TEST_F(VerificationTokenTest, OnlyIdentitysKeyMakesThem) {
  const std::string token = *SignVerificationToken(identity_, Claims());
  EXPECT_EQ(VerifyVerificationToken(verifier_, token, kNow + absl::Minutes(15)).status().message(),
            "token expired");
  // The access issuer's key and any service's key, even named as identity.
  for (const SigningKey* key : {&keys_.issuer, &keys_.services.at("sessions")}) {
    const TokenSigner forger(*key, std::string(kVerificationIssuer));
    EXPECT_EQ(VerifyVerificationToken(verifier_, *SignVerificationToken(forger, Claims()), kNow)
                  .status()
                  .message(),
              "unknown key");
  }
  // An access token is no verification token, nor the reverse.
  const TokenSigner issuer(keys_.issuer, std::string(kDevelopmentIssuer));
  const std::string access =
      *MintAccessToken(issuer, {"cust-1", Role::kCustomer, kNow + absl::Hours(1)}, kNow);
  EXPECT_FALSE(VerifyVerificationToken(verifier_, access, kNow).ok());
  EXPECT_FALSE(verifier_.VerifyCaller(token, kNow).ok());
}

TEST_F(VerificationTokenTest, IdentityChecksItsKeyIsPublished) {
  EXPECT_TRUE(CheckVerificationSigner(identity_, verifier_, absl::Minutes(15)).ok());
  EXPECT_EQ(CheckVerificationSigner(identity_, verifier_, absl::Hours(2)).code(),
            absl::StatusCode::kFailedPrecondition);
  const TokenSigner unpublished(keys_.services.at("identity"), std::string(kVerificationIssuer));
  absl::Status status = CheckVerificationSigner(unpublished, verifier_, absl::Minutes(15));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("unknown key"), absl::string_view::npos) << status;
}

TEST_F(VerificationTokenTest, RefusesMissingOrUnknownClaims) {
  auth::Claims raw;
  raw.audience = std::string(kVerificationAudience);
  raw.subject = "cust-1";
  raw.issued_at = kNow;
  raw.expires_at = kNow + absl::Minutes(5);
  raw.strings["method"] = "carrier_pigeon";
  raw.strings["tid"] = "vt_1";
  raw.ints["level"] = 1;
  absl::StatusOr<VerificationClaims> claims =
      VerifyVerificationToken(verifier_, *identity_.Sign(raw), kNow);
  EXPECT_EQ(claims.status().message(), "malformed token");
  raw.strings["method"] = "sms_otp";
  raw.ints.clear();
  claims = VerifyVerificationToken(verifier_, *identity_.Sign(raw), kNow);
  EXPECT_EQ(claims.status().message(), "malformed token");
  raw.ints["level"] = 1;
  raw.audience = std::string(kAccessAudience);
  claims = VerifyVerificationToken(verifier_, *identity_.Sign(raw), kNow);
  EXPECT_EQ(claims.status().message(), "wrong audience");
}

TEST_F(VerificationTokenTest, SignRefusesBadClaims) {
  VerificationClaims claims = Claims();
  claims.level = 3;
  EXPECT_TRUE(absl::IsInvalidArgument(SignVerificationToken(identity_, claims).status()));
  claims = Claims();
  claims.method = "email";
  EXPECT_TRUE(absl::IsInvalidArgument(SignVerificationToken(identity_, claims).status()));
  claims = Claims();
  claims.customer_id.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(SignVerificationToken(identity_, claims).status()));
}

}  // namespace
}  // namespace switchboard::auth
