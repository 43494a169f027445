#include "libs/auth/token.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace switchboard::auth {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
const TokenRules kRules{"issuer-1", "aud-1", absl::Hours(12)};

SigningKey NewKey() {
  absl::StatusOr<SigningKey> key = SigningKey::Generate();
  EXPECT_TRUE(key.ok()) << key.status();
  return *std::move(key);
}

std::string Part(absl::string_view json) { return Base64UrlEncode(json); }

class TokenTest : public ::testing::Test {
 protected:
  TokenTest() : key_(NewKey()), signer_(key_, "issuer-1") {
    EXPECT_TRUE(keys_.Add(key_.kid(), key_.public_key(), "svc").ok());
  }

  Claims Basic() {
    Claims claims;
    claims.audience = "aud-1";
    claims.subject = "alice";
    claims.issued_at = kNow;
    claims.expires_at = kNow + absl::Hours(1);
    return claims;
  }
  std::string Sign(const Claims& claims) {
    absl::StatusOr<std::string> token = signer_.Sign(claims);
    EXPECT_TRUE(token.ok()) << token.status();
    return token.value_or("");
  }
  // A token with the header and payload given as JSON, signed with `key`
  // (default: the set's key), so tests can make tokens Sign refuses to.
  std::string SignRaw(absl::string_view header, absl::string_view payload,
                      const SigningKey* key = nullptr) {
    const std::string input = absl::StrCat(Part(header), ".", Part(payload));
    absl::StatusOr<std::string> signature = (key != nullptr ? *key : key_).Sign(input);
    EXPECT_TRUE(signature.ok());
    return absl::StrCat(input, ".", Base64UrlEncode(signature.value_or("")));
  }
  std::string Header() { return absl::StrCat(R"({"alg":"ES256","kid":")", key_.kid(), "\"}"); }
  // A payload valid for an hour from kNow, with `extra` members appended.
  std::string Payload(absl::string_view extra = "") {
    const int64_t now = absl::ToUnixSeconds(kNow);
    return absl::StrCat(R"({"iss":"issuer-1","aud":"aud-1","sub":"alice","iat":)", now,
                        R"(,"exp":)", now + 3600, extra, "}");
  }
  void ExpectRefused(absl::string_view token, absl::string_view reason,
                     absl::Time now = kNow, const TokenRules& rules = kRules) {
    absl::StatusOr<Claims> claims = VerifyToken(token, keys_, rules, now);
    ASSERT_FALSE(claims.ok()) << token;
    EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(claims.status().message(), reason) << token;
  }

  SigningKey key_;
  TokenSigner signer_;
  KeySet keys_;
};

TEST_F(TokenTest, RoundTripsClaimsAndNamesTheKey) {
  Claims claims = Basic();
  claims.strings["role"] = "agent";
  claims.strings["note"] = "充值 \"quoted\"\n";
  claims.ints["level"] = 2;
  claims.ints["negative"] = -5;
  claims.ints["big"] = int64_t{1} << 53;
  const std::string token = Sign(claims);
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  ASSERT_EQ(parts.size(), 3u);
  std::string header;
  ASSERT_TRUE(Base64UrlDecode(parts[0], &header));
  EXPECT_EQ(header, absl::StrCat(R"({"alg":"ES256","typ":"JWT","kid":")", key_.kid(), "\"}"));

  std::string service;
  absl::StatusOr<Claims> verified = VerifyToken(token, keys_, kRules, kNow, &service);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->subject, "alice");
  EXPECT_EQ(verified->audience, "aud-1");
  EXPECT_EQ(verified->issued_at, kNow);
  EXPECT_EQ(verified->expires_at, kNow + absl::Hours(1));
  EXPECT_EQ(verified->strings, claims.strings);
  EXPECT_EQ(verified->ints, claims.ints);
  EXPECT_EQ(service, "svc");
  EXPECT_EQ(TokenKeyId(token).value_or(""), key_.kid());
}

TEST_F(TokenTest, SignRefusesBadClaims) {
  std::vector<Claims> bad(12, Basic());
  bad[0].audience = "";
  bad[1].subject = "";
  bad[2].expires_at = bad[2].issued_at;
  bad[3].strings["iss"] = "x";
  bad[4].ints["exp"] = 1;
  bad[5].strings[""] = "x";
  bad[6].strings["a"] = "x";
  bad[6].ints["a"] = 1;
  bad[7].strings["s"] = "\xff";
  bad[8].subject = "\xc0\xaf";
  bad[9].ints["n"] = (int64_t{1} << 53) + 1;
  bad[10].expires_at = absl::InfiniteFuture();
  bad[11].strings["long"] = std::string(kMaxTokenBytes, 'a');
  for (size_t i = 0; i < bad.size(); ++i) {
    absl::StatusOr<std::string> token = signer_.Sign(bad[i]);
    EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument) << i;
  }
}

TEST_F(TokenTest, ChecksTimes) {
  const std::string token = Sign(Basic());
  EXPECT_TRUE(VerifyToken(token, keys_, kRules, kNow + absl::Minutes(59)).ok());
  ExpectRefused(token, "token expired", kNow + absl::Hours(1));
  // Issued in the future beyond the allowed skew.
  EXPECT_TRUE(VerifyToken(token, keys_, kRules, kNow - kMaxClockSkew).ok());
  ExpectRefused(token, "token not yet valid", kNow - kMaxClockSkew - absl::Seconds(1));
  const int64_t now = absl::ToUnixSeconds(kNow);
  ExpectRefused(SignRaw(Header(), Payload(absl::StrCat(R"(,"nbf":)", now + 600))),
                "token not yet valid");
  EXPECT_TRUE(
      VerifyToken(SignRaw(Header(), Payload(absl::StrCat(R"(,"nbf":)", now))), keys_, kRules, kNow)
          .ok());
}

TEST_F(TokenTest, EnforcesTheMaximumLifetime) {
  Claims claims = Basic();
  claims.expires_at = kNow + absl::Hours(12);
  EXPECT_TRUE(VerifyToken(Sign(claims), keys_, kRules, kNow).ok());
  claims.expires_at += absl::Seconds(1);
  ExpectRefused(Sign(claims), "token lifetime too long");
  // Also when the token is nearly spent: what counts is what it was issued for.
  ExpectRefused(Sign(claims), "token lifetime too long", kNow + absl::Hours(11));
}

TEST_F(TokenTest, ChecksIssuerAndAudience) {
  const std::string token = Sign(Basic());
  ExpectRefused(token, "wrong issuer", kNow, {"issuer-2", "aud-1", absl::Hours(12)});
  ExpectRefused(token, "wrong audience", kNow, {"issuer-1", "aud-2", absl::Hours(12)});
  const int64_t now = absl::ToUnixSeconds(kNow);
  const std::string listed = SignRaw(
      Header(), absl::StrCat(R"({"iss":"issuer-1","aud":["other","aud-1"],"sub":"a","iat":)", now,
                             R"(,"exp":)", now + 60, "}"));
  EXPECT_TRUE(VerifyToken(listed, keys_, kRules, kNow).ok());
  const std::string no_aud = SignRaw(
      Header(),
      absl::StrCat(R"({"iss":"issuer-1","sub":"a","iat":)", now, R"(,"exp":)", now + 60, "}"));
  ExpectRefused(no_aud, "wrong audience");
}

TEST_F(TokenTest, RefusesOtherAlgorithmsBeforeTheSignature) {
  const std::string payload = Part(Payload());
  const std::string kid = key_.kid();
  // "none" with no signature, HS256 keyed with the public key's bytes (the
  // classic confusion attack), others; each with a signature part that
  // would otherwise be checked.
  for (const std::string& header :
       {std::string(R"({"alg":"none"})"), absl::StrCat(R"({"alg":"none","kid":")", kid, "\"}"),
        absl::StrCat(R"({"alg":"HS256","kid":")", kid, "\"}"),
        absl::StrCat(R"({"alg":"RS256","kid":")", kid, "\"}"),
        absl::StrCat(R"({"alg":"es256","kid":")", kid, "\"}"),
        absl::StrCat(R"({"alg":["ES256"],"kid":")", kid, "\"}"),
        absl::StrCat(R"({"kid":")", kid, "\"}"),
        absl::StrCat(R"({"alg":"ES256","crit":["exp"],"kid":")", kid, "\"}")}) {
    for (const std::string& signature : {std::string(""), std::string("AAAA")}) {
      ExpectRefused(absl::StrCat(Part(header), ".", payload, ".", signature),
                    "unsupported algorithm");
    }
  }
}

TEST_F(TokenTest, NeedsAKnownKidAndItsSignature) {
  SigningKey other = NewKey();
  // No kid, or one the set does not know.
  ExpectRefused(SignRaw(R"({"alg":"ES256"})", Payload()), "unknown key");
  ExpectRefused(SignRaw(absl::StrCat(R"({"alg":"ES256","kid":")", other.kid(), "\"}"), Payload(),
                        &other),
                "unknown key");
  // Another key claiming the set's kid.
  ExpectRefused(SignRaw(Header(), Payload(), &other), "bad signature");
  const std::string token = Sign(Basic());
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  ExpectRefused(absl::StrCat(parts[0], ".", parts[1], "."), "bad signature");
  ExpectRefused(absl::StrCat(parts[0], ".", parts[1], ".", parts[2], "="), "bad signature");
  // A payload changed after signing.
  ExpectRefused(absl::StrCat(parts[0], ".", Part(Payload(R"(,"role":"supervisor")")), ".",
                             parts[2]),
                "bad signature");
}

TEST_F(TokenTest, ReadsThePayloadOnlyOnceTheSignatureIsGood) {
  // A payload that is not JSON, behind a good header and a bad signature,
  // is refused for the signature: unauthenticated input never reaches the
  // payload's parser.
  ExpectRefused(absl::StrCat(Part(Header()), ".", Part("{{{"), ".",
                             Base64UrlEncode(std::string(64, 'x'))),
                "bad signature");
  // Signed garbage is malformed.
  ExpectRefused(SignRaw(Header(), "{{{"), "malformed token");
  ExpectRefused(SignRaw(Header(), "[1]"), "malformed token");
}

TEST_F(TokenTest, RefusesMissingOrMistypedRegisteredClaims) {
  const int64_t now = absl::ToUnixSeconds(kNow);
  const std::string head = R"({"iss":"issuer-1","aud":"aud-1")";
  for (const std::string& payload : {
           absl::StrCat(head, R"(,"iat":)", now, R"(,"exp":)", now + 60, "}"),
           absl::StrCat(head, R"(,"sub":"","iat":)", now, R"(,"exp":)", now + 60, "}"),
           absl::StrCat(head, R"(,"sub":7,"iat":)", now, R"(,"exp":)", now + 60, "}"),
           absl::StrCat(head, R"(,"sub":"a","exp":)", now + 60, "}"),
           absl::StrCat(head, R"(,"sub":"a","iat":)", now, "}"),
           absl::StrCat(head, R"(,"sub":"a","iat":)", now, R"(,"exp":")", now + 60, "\"}"),
           absl::StrCat(head, R"(,"sub":"a","iat":)", now, R"(.5,"exp":)", now + 60, "}"),
           absl::StrCat(head, R"(,"sub":"a","iat":)", now, R"(,"exp":1e300})"),
           absl::StrCat(head, R"(,"sub":"a","iat":)", now, R"(,"exp":)", now + 60,
                        R"(,"nbf":"soon"})"),
       }) {
    ExpectRefused(SignRaw(Header(), payload), "malformed token");
  }
}

TEST_F(TokenTest, IgnoresClaimsOfOtherTypes) {
  absl::StatusOr<Claims> claims = VerifyToken(
      SignRaw(Header(), Payload(R"(,"s":"v","n":3,"f":1.5,"b":true,"o":{},"l":[],"z":null)")),
      keys_, kRules, kNow);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->strings, (absl::flat_hash_map<std::string, std::string>{{"s", "v"}}));
  EXPECT_EQ(claims->ints, (absl::flat_hash_map<std::string, int64_t>{{"n", 3}}));
}

TEST_F(TokenTest, GarbageIsRefusedBriefly) {
  const std::string good = Sign(Basic());
  std::vector<std::string> inputs = {
      "",
      ".",
      "..",
      "...",
      "a.b.c",
      "a.b",
      std::string("\0", 1),
      absl::StrCat(good, "."),
      absl::StrCat(".", good),
      absl::StrCat(good, std::string(kMaxTokenBytes, 'A')),
      std::string(1 << 20, '.'),
      absl::StrCat(Part("{"), ".", Part("{}"), ".AAAA"),
      absl::StrCat(Part(absl::StrCat(R"({"alg":"ES256","kid":)", std::string(3000, '['))), ".",
                   Part("{}"), ".AAAA"),
  };
  std::mt19937 rng(42);
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
  for (int i = 0; i < 300; ++i) {
    std::string s(rng() % 300, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    inputs.push_back(s);
    std::string bytes(rng() % 300, ' ');
    for (char& c : bytes) c = static_cast<char>(rng());
    inputs.push_back(bytes);
  }
  for (const std::string& input : inputs) {
    absl::StatusOr<Claims> claims = VerifyToken(input, keys_, kRules, kNow);
    ASSERT_FALSE(claims.ok());
    EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_LT(claims.status().message().size(), 40u);
  }
}

// Every one-character change to a valid token is refused: base64url here
// has one text per value, so no change maps back to the same bytes.
TEST_F(TokenTest, SingleCharacterMutationsAreRefused) {
  const std::string token = Sign(Basic());
  for (size_t i = 0; i < token.size(); ++i) {
    for (char c : {'A', 'z', '0', '_', '.', '='}) {
      if (token[i] == c) continue;
      std::string changed = token;
      changed[i] = c;
      EXPECT_FALSE(VerifyToken(changed, keys_, kRules, kNow).ok()) << i << " " << c;
    }
  }
}

TEST_F(TokenTest, MintsAccessAndServiceTokens) {
  absl::StatusOr<std::string> access =
      MintAccessToken(signer_, {"ana", Role::kAgent, kNow + absl::Hours(1)}, kNow);
  ASSERT_TRUE(access.ok()) << access.status();
  absl::StatusOr<Claims> claims =
      VerifyToken(*access, keys_, {"issuer-1", std::string(kAccessAudience), absl::Hours(1)}, kNow);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->subject, "ana");
  EXPECT_EQ(claims->strings.at("role"), "agent");

  EXPECT_EQ(MintAccessToken(signer_, {"routing", Role::kService, kNow + absl::Hours(1)}, kNow)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(MintAccessToken(signer_, {"", Role::kAgent, kNow + absl::Hours(1)}, kNow).ok());
  EXPECT_FALSE(MintAccessToken(signer_, {std::string(kMaxSubjectBytes + 1, 'a'), Role::kAgent,
                                         kNow + absl::Hours(1)},
                               kNow)
                   .ok());
  EXPECT_FALSE(MintAccessToken(signer_, {"ana", Role::kAgent, kNow}, kNow).ok());

  absl::StatusOr<std::string> service =
      MintServiceToken(signer_, "routing", "sessions", kNow, absl::Minutes(10));
  ASSERT_TRUE(service.ok()) << service.status();
  claims = VerifyToken(*service, keys_, {"issuer-1", "sessions", absl::Minutes(10)}, kNow);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->subject, "routing");
  EXPECT_EQ(claims->strings.at("role"), "service");
  EXPECT_FALSE(MintServiceToken(signer_, "", "sessions", kNow, absl::Minutes(1)).ok());
  EXPECT_FALSE(MintServiceToken(signer_, "routing", "sessions", kNow, absl::ZeroDuration()).ok());
}

}  // namespace
}  // namespace switchboard::auth
