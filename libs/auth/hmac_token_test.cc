#include "libs/auth/hmac_token.h"

#include <dirent.h>
#include <jwt.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "libs/clock/clock.h"

namespace switchboard::auth {
namespace {

const std::string kKey(32, 'k');

std::string Base64Url(absl::string_view s) {
  return absl::WebSafeBase64Escape(s);
}

std::vector<std::string> Parts(absl::string_view token) {
  return absl::StrSplit(token, '.');
}

std::string DecodePart(absl::string_view part) {
  std::string out;
  EXPECT_TRUE(absl::WebSafeBase64Unescape(part, &out));
  return out;
}

// Signs `payload_json` with libjwt directly, so tests can make tokens that
// TokenCodec::Sign refuses to make.
std::string SignRaw(jwt_alg_t alg, const std::string& key,
                    const std::string& payload_json) {
  jwt_t* jwt = nullptr;
  EXPECT_EQ(jwt_new(&jwt), 0);
  EXPECT_EQ(jwt_add_grants_json(jwt, payload_json.c_str()), 0);
  EXPECT_EQ(jwt_set_alg(jwt, alg,
                        reinterpret_cast<const unsigned char*>(key.data()),
                        static_cast<int>(key.size())),
            0);
  char* encoded = jwt_encode_str(jwt);
  std::string token = encoded == nullptr ? "" : encoded;
  free(encoded);
  jwt_free(jwt);
  return token;
}

class TokenTest : public ::testing::Test {
 protected:
  Principal Alice() {
    return Principal{"alice", Role::kAgent, clock_.Now() + absl::Hours(1)};
  }
  std::string MintAlice() {
    absl::StatusOr<std::string> token =
        MintAccessToken(codec_, Alice(), clock_.Now());
    EXPECT_TRUE(token.ok()) << token.status();
    return token.value_or("");
  }
  // A payload JSON for an access token, valid for an hour from now.
  std::string AccessPayload(absl::string_view sub, absl::string_view role) {
    int64_t now = absl::ToUnixSeconds(clock_.Now());
    return absl::StrCat(R"({"iss":"switchboard","aud":"switchboard-api","sub":")",
                        sub, R"(","role":")", role, R"(","iat":)", now,
                        R"(,"exp":)", now + 3600, "}");
  }
  void ExpectUnauthenticated(absl::string_view token,
                             absl::string_view reason = "") {
    absl::StatusOr<Principal> principal =
        VerifyAccessToken(codec_, token, clock_.Now());
    ASSERT_FALSE(principal.ok());
    EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated)
        << principal.status();
    if (!reason.empty()) {
      EXPECT_EQ(principal.status().message(), reason);
    }
  }

  FakeClock clock_;
  TokenCodec codec_{kKey};
};

TEST(RoleTest, NamesRoundTrip) {
  for (Role role :
       {Role::kCustomer, Role::kAgent, Role::kSupervisor, Role::kService}) {
    EXPECT_EQ(ParseRole(RoleName(role)), role);
  }
  EXPECT_EQ(RoleName(Role::kSupervisor), "supervisor");
  EXPECT_FALSE(ParseRole("Agent").has_value());
  EXPECT_FALSE(ParseRole("admin").has_value());
  EXPECT_FALSE(ParseRole("").has_value());
}

TEST_F(TokenTest, AccessTokenRoundTrip) {
  std::string token = MintAlice();
  absl::StatusOr<Principal> principal =
      VerifyAccessToken(codec_, token, clock_.Now());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, "alice");
  EXPECT_EQ(principal->role, Role::kAgent);
  EXPECT_EQ(principal->expires_at, clock_.Now() + absl::Hours(1));

  absl::StatusOr<TokenCodec::Claims> claims =
      codec_.Verify(token, "switchboard-api", clock_.Now());
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->strings.at("role"), "agent");
  EXPECT_EQ(claims->issued_at, clock_.Now());
  EXPECT_TRUE(absl::StrContains(DecodePart(Parts(token)[1]),
                                R"("iss":"switchboard")"));
}

TEST_F(TokenTest, AVerifiedTokenIsRememberedButStillExpiresAndStaysBoundToItsKey) {
  const std::string token = MintAlice();
  ASSERT_TRUE(VerifyAccessToken(codec_, token, clock_.Now()).ok());
  absl::StatusOr<Principal> again = VerifyAccessToken(codec_, token, clock_.Now());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->subject, "alice");
  EXPECT_EQ(again->role, Role::kAgent);
  // Another key's codec has its own memory: the token is refused there.
  TokenCodec other(std::string(32, 'o'));
  EXPECT_EQ(VerifyAccessToken(other, token, clock_.Now()).status().code(),
            absl::StatusCode::kUnauthenticated);
  // A changed token is a different text: checked in full, refused.
  std::string tampered = token;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  ExpectUnauthenticated(tampered);
  // Remembered or not, an expired token is refused.
  clock_.Advance(absl::Hours(1));
  ExpectUnauthenticated(token);
}

TEST_F(TokenTest, GenericClaimsRoundTrip) {
  TokenCodec::Claims claims;
  claims.audience = "switchboard-identity";
  claims.subject = "customer-42";
  claims.issued_at = clock_.Now();
  claims.expires_at = clock_.Now() + absl::Minutes(10);
  claims.strings = {{"method", "email_otp"}, {"session", "s-1"},
                    {"note", "转人工"}};
  claims.ints = {{"level", 2}, {"big", int64_t{1} << 60}, {"neg", -7}};
  absl::StatusOr<std::string> token = codec_.Sign(claims);
  ASSERT_TRUE(token.ok()) << token.status();

  absl::StatusOr<TokenCodec::Claims> back =
      codec_.Verify(*token, "switchboard-identity", clock_.Now());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->audience, claims.audience);
  EXPECT_EQ(back->subject, claims.subject);
  EXPECT_EQ(back->issued_at, claims.issued_at);
  EXPECT_EQ(back->expires_at, claims.expires_at);
  EXPECT_EQ(back->strings, claims.strings);
  EXPECT_EQ(back->ints, claims.ints);

  // The same token is no access token.
  ExpectUnauthenticated(*token, "wrong audience");
}

TEST_F(TokenTest, SignRejectsBadClaims) {
  TokenCodec::Claims good;
  good.audience = "a";
  good.subject = "s";
  good.issued_at = clock_.Now();
  good.expires_at = clock_.Now() + absl::Minutes(1);
  ASSERT_TRUE(codec_.Sign(good).ok());

  std::vector<TokenCodec::Claims> bad(8, good);
  bad[0].audience = "";
  bad[1].subject = "";
  bad[2].expires_at = bad[2].issued_at;
  bad[3].strings["exp"] = "1";
  bad[4].ints["sub"] = 1;
  bad[5].strings["x"] = "y";
  bad[5].ints["x"] = 1;
  bad[6].strings["x"] = std::string("a\0b", 3);
  bad[7].strings["x"] = "\xff\xfe";
  for (size_t i = 0; i < bad.size(); ++i) {
    absl::StatusOr<std::string> token = codec_.Sign(bad[i]);
    EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument)
        << "case " << i << ": " << token.status();
  }
}

TEST_F(TokenTest, MintRejectsBadPrincipals) {
  Principal empty = Alice();
  empty.subject = "";
  Principal long_subject = Alice();
  long_subject.subject = std::string(kMaxSubjectBytes + 1, 'x');
  Principal expired = Alice();
  expired.expires_at = clock_.Now();
  for (const Principal& p : {empty, long_subject, expired}) {
    EXPECT_EQ(MintAccessToken(codec_, p, clock_.Now()).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  Principal longest = Alice();
  longest.subject = std::string(kMaxSubjectBytes, 'x');
  EXPECT_TRUE(MintAccessToken(codec_, longest, clock_.Now()).ok());
}

TEST_F(TokenTest, ExpiresAtExp) {
  std::string token = MintAlice();
  clock_.Advance(absl::Hours(1) - absl::Seconds(1));
  EXPECT_TRUE(VerifyAccessToken(codec_, token, clock_.Now()).ok());
  clock_.Advance(absl::Seconds(1));
  ExpectUnauthenticated(token, "token expired");
  clock_.Advance(absl::Hours(100));
  ExpectUnauthenticated(token, "token expired");
}

// Tokens issued in the future are accepted within kMaxClockSkew (clocks of
// different hosts disagree a little) and rejected beyond it.
TEST_F(TokenTest, IssuedInTheFuture) {
  Principal p = Alice();
  p.expires_at = clock_.Now() + absl::Hours(2);
  absl::StatusOr<std::string> slightly_ahead =
      MintAccessToken(codec_, p, clock_.Now() + TokenCodec::kMaxClockSkew);
  ASSERT_TRUE(slightly_ahead.ok());
  EXPECT_TRUE(VerifyAccessToken(codec_, *slightly_ahead, clock_.Now()).ok());

  absl::StatusOr<std::string> far_ahead = MintAccessToken(
      codec_, p, clock_.Now() + TokenCodec::kMaxClockSkew + absl::Seconds(1));
  ASSERT_TRUE(far_ahead.ok());
  ExpectUnauthenticated(*far_ahead, "token not yet valid");
}

TEST_F(TokenTest, RejectsTamperedPayload) {
  std::vector<std::string> parts = Parts(MintAlice());
  std::string payload = DecodePart(parts[1]);
  for (auto [from, to] : {std::pair{"alice", "mallory"},
                          std::pair{"agent", "supervisor"}}) {
    std::string changed = payload;
    changed.replace(changed.find(from), strlen(from), to);
    ExpectUnauthenticated(
        absl::StrCat(parts[0], ".", Base64Url(changed), ".", parts[2]),
        "bad signature");
  }
}

TEST_F(TokenTest, RejectsTamperedSignature) {
  std::vector<std::string> parts = Parts(MintAlice());
  std::string sig = parts[2];
  sig[0] = sig[0] == 'A' ? 'B' : 'A';
  ExpectUnauthenticated(absl::StrCat(parts[0], ".", parts[1], ".", sig),
                        "bad signature");
  ExpectUnauthenticated(absl::StrCat(parts[0], ".", parts[1], "."),
                        "bad signature");
  ExpectUnauthenticated(absl::StrCat(parts[0], ".", parts[1], ".", sig, "AAAA"),
                        "bad signature");
}

TEST_F(TokenTest, RejectsOtherKey) {
  TokenCodec other(std::string(32, 'o'));
  absl::StatusOr<std::string> token =
      MintAccessToken(other, Alice(), clock_.Now());
  ASSERT_TRUE(token.ok());
  ExpectUnauthenticated(*token, "bad signature");
}

TEST_F(TokenTest, RejectsShortKey) {
  TokenCodec short_key(std::string(31, 'k'));
  EXPECT_EQ(MintAccessToken(short_key, Alice(), clock_.Now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      VerifyAccessToken(short_key, MintAlice(), clock_.Now()).status().code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST_F(TokenTest, RejectsAlgNone) {
  std::string payload = Base64Url(AccessPayload("alice", "supervisor"));
  for (absl::string_view header :
       {R"({"alg":"none"})", R"({"alg":"none","typ":"JWT"})",
        R"({"alg":"None","typ":"JWT"})", R"({"typ":"JWT"})"}) {
    std::string h = Base64Url(header);
    ExpectUnauthenticated(absl::StrCat(h, ".", payload, "."),
                          "unsupported algorithm");
    ExpectUnauthenticated(absl::StrCat(h, ".", payload),
                          "malformed token");
    ExpectUnauthenticated(absl::StrCat(h, ".", payload, ".", Parts(MintAlice())[2]),
                          "unsupported algorithm");
  }
  // libjwt itself makes an unsigned token for JWT_ALG_NONE.
  jwt_t* jwt = nullptr;
  ASSERT_EQ(jwt_new(&jwt), 0);
  ASSERT_EQ(jwt_add_grants_json(jwt, AccessPayload("alice", "agent").c_str()),
            0);
  char* encoded = jwt_encode_str(jwt);
  ASSERT_NE(encoded, nullptr);
  ExpectUnauthenticated(encoded, "unsupported algorithm");
  free(encoded);
  jwt_free(jwt);
}

TEST_F(TokenTest, RejectsOtherAlgorithms) {
  std::string hs512 =
      SignRaw(JWT_ALG_HS512, kKey, AccessPayload("alice", "agent"));
  ASSERT_FALSE(hs512.empty());
  ExpectUnauthenticated(hs512, "unsupported algorithm");
  std::string hs384 =
      SignRaw(JWT_ALG_HS384, kKey, AccessPayload("alice", "agent"));
  ExpectUnauthenticated(hs384, "unsupported algorithm");

  // An RS256 header over a valid HS256 signature: the classic confusion.
  std::vector<std::string> parts = Parts(MintAlice());
  ExpectUnauthenticated(
      absl::StrCat(Base64Url(R"({"alg":"RS256","typ":"JWT"})"), ".", parts[1],
                   ".", parts[2]),
      "unsupported algorithm");
  ExpectUnauthenticated(
      absl::StrCat(Base64Url(R"({"alg":["HS256"]})"), ".", parts[1], ".",
                   parts[2]),
      "unsupported algorithm");
  ExpectUnauthenticated(
      absl::StrCat(Base64Url(R"({"alg":"HS256","crit":["exp"]})"), ".",
                   parts[1], ".", parts[2]),
      "unsupported algorithm");
}

TEST_F(TokenTest, RejectsWrongIssuerAndAudience) {
  int64_t now = absl::ToUnixSeconds(clock_.Now());
  std::string other_issuer = SignRaw(
      JWT_ALG_HS256, kKey,
      absl::StrCat(R"({"iss":"evil","aud":"switchboard-api","sub":"a",)",
                   R"("role":"agent","iat":)", now, R"(,"exp":)", now + 60,
                   "}"));
  ExpectUnauthenticated(other_issuer, "wrong issuer");
  std::string array_audience = SignRaw(
      JWT_ALG_HS256, kKey,
      absl::StrCat(R"({"iss":"switchboard","aud":["switchboard-api"],)",
                   R"("sub":"a","role":"agent","iat":)", now, R"(,"exp":)",
                   now + 60, "}"));
  ExpectUnauthenticated(array_audience, "wrong audience");
}

TEST_F(TokenTest, RejectsMissingOrMistypedRegisteredClaims) {
  int64_t now = absl::ToUnixSeconds(clock_.Now());
  const std::string prefix =
      R"({"iss":"switchboard","aud":"switchboard-api","role":"agent",)";
  for (const std::string& rest :
       {absl::StrCat(R"("iat":)", now, R"(,"exp":)", now + 60, "}"),
        absl::StrCat(R"("sub":"","iat":)", now, R"(,"exp":)", now + 60, "}"),
        absl::StrCat(R"("sub":7,"iat":)", now, R"(,"exp":)", now + 60, "}"),
        absl::StrCat(R"("sub":"a","iat":)", now, "}"),
        absl::StrCat(R"("sub":"a","exp":)", now + 60, "}"),
        absl::StrCat(R"("sub":"a","iat":)", now, R"(,"exp":")", now + 60,
                     "\"}"),
        absl::StrCat(R"("sub":"a","iat":)", now, R"(,"exp":)", now + 60,
                     ".5}")}) {
    ExpectUnauthenticated(SignRaw(JWT_ALG_HS256, kKey, prefix + rest),
                          "malformed token");
  }
}

TEST_F(TokenTest, RejectsUnknownOrMissingRole) {
  ExpectUnauthenticated(
      SignRaw(JWT_ALG_HS256, kKey, AccessPayload("alice", "admin")),
      "unknown role");
  ExpectUnauthenticated(
      SignRaw(JWT_ALG_HS256, kKey, AccessPayload("alice", "Agent")),
      "unknown role");
  TokenCodec::Claims no_role;
  no_role.audience = std::string("switchboard-api");
  no_role.subject = "alice";
  no_role.issued_at = clock_.Now();
  no_role.expires_at = clock_.Now() + absl::Minutes(1);
  absl::StatusOr<std::string> token = codec_.Sign(no_role);
  ASSERT_TRUE(token.ok());
  ExpectUnauthenticated(*token);
}

TEST_F(TokenTest, RejectsOverlongSubject) {
  ExpectUnauthenticated(SignRaw(JWT_ALG_HS256, kKey,
                                AccessPayload(std::string(129, 'x'), "agent")));
  EXPECT_TRUE(VerifyAccessToken(
                  codec_,
                  SignRaw(JWT_ALG_HS256, kKey,
                          AccessPayload(std::string(128, 'x'), "agent")),
                  clock_.Now())
                  .ok());
}

TEST_F(TokenTest, IgnoresClaimsOfOtherTypes) {
  int64_t now = absl::ToUnixSeconds(clock_.Now());
  std::string token = SignRaw(
      JWT_ALG_HS256, kKey,
      absl::StrCat(R"({"iss":"switchboard","aud":"x","sub":"a","iat":)", now,
                   R"(,"exp":)", now + 60,
                   R"(,"flag":true,"list":[1],"obj":{"a":1},"real":1.5,)",
                   R"("nil":null,"s":"v","n":3})"));
  absl::StatusOr<TokenCodec::Claims> claims =
      codec_.Verify(token, "x", clock_.Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->strings,
            (absl::flat_hash_map<std::string, std::string>{{"s", "v"}}));
  EXPECT_EQ(claims->ints,
            (absl::flat_hash_map<std::string, int64_t>{{"n", 3}}));
}

TEST_F(TokenTest, GarbageNeverCrashes) {
  std::vector<std::string> inputs = {
      "",
      ".",
      "..",
      "...",
      "a.b.c",
      "a.b",
      std::string("\0", 1),
      std::string("eyJhbGciOiJIUzI1NiJ9\0.e30.x", 27),
      "Bearer x",
      "eyJhbGciOiJIUzI1NiJ9.e30.",
      "eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
      absl::StrCat(Base64Url("{"), ".", Base64Url("{}"), ".AAAA"),
      absl::StrCat(Base64Url(R"({"alg":"HS256"})"), ".", Base64Url("[]"),
                   ".AAAA"),
      absl::StrCat(Base64Url(R"({"alg":"HS256"})"), ".", Base64Url("nul\0l"),
                   ".AAAA"),
      // Deep nesting, within the size limit.
      absl::StrCat(Base64Url(R"({"alg":"HS256"})"), ".",
                   Base64Url(absl::StrCat(R"({"a":)", std::string(5000, '['))),
                   ".AAAA"),
      absl::StrCat(Base64Url(R"({"alg":"HS256"})"), ".",
                   Base64Url(absl::StrCat(R"({"a":)", std::string(2500, '['),
                                          std::string(2500, ']'), "}")),
                   ".AAAA"),
      std::string(1 << 20, 'a'),
      absl::StrCat(std::string(1 << 20, 'a'), ".", std::string(1 << 20, 'b'),
                   ".", std::string(1 << 20, 'c')),
      std::string(1 << 20, '.'),
      absl::StrCat(MintAlice(), "."),
      absl::StrCat(".", MintAlice()),
      absl::StrCat(MintAlice(), std::string(1 << 20, 'A')),
  };
  std::mt19937 rng(42);
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
  for (int i = 0; i < 500; ++i) {
    std::string s(rng() % 200, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    inputs.push_back(s);
    std::string bytes(rng() % 200, ' ');
    for (char& c : bytes) c = static_cast<char>(rng());
    inputs.push_back(bytes);
  }
  for (const std::string& input : inputs) {
    absl::StatusOr<Principal> principal =
        VerifyAccessToken(codec_, input, clock_.Now());
    ASSERT_FALSE(principal.ok());
    EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_LT(principal.status().message().size(), 40u);
  }
}

// Every one-character change to a valid token is rejected, except the few
// that base64url decoding maps back to the same bytes (unused low bits of
// the last character), which must then yield the same principal.
TEST_F(TokenTest, SingleCharacterMutations) {
  const std::string token = MintAlice();
  for (size_t i = 0; i < token.size(); ++i) {
    for (char c : {'A', 'z', '0', '_', '.', '='}) {
      if (token[i] == c) continue;
      std::string changed = token;
      changed[i] = c;
      absl::StatusOr<Principal> principal =
          VerifyAccessToken(codec_, changed, clock_.Now());
      if (principal.ok()) {
        EXPECT_EQ(i + 1, token.size()) << changed;
        EXPECT_EQ(principal->subject, "alice");
        EXPECT_EQ(principal->role, Role::kAgent);
      } else {
        EXPECT_EQ(principal.status().code(),
                  absl::StatusCode::kUnauthenticated);
      }
    }
  }
}

TEST_F(TokenTest, ConcurrentVerification) {
  const std::string token = MintAlice();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (!VerifyAccessToken(codec_, token, clock_.Now()).ok()) ++failures;
        if (!MintAccessToken(codec_, Alice(), clock_.Now()).ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

// --- LoadOrCreateKey ------------------------------------------------------

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern =
        absl::StrCat(base != nullptr ? base : "/tmp", "/keyXXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  std::vector<std::string> Files() {
    std::vector<std::string> names;
    DIR* d = opendir(dir_.c_str());
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(d);
    return names;
  }
  void Write(const std::string& path, const std::string& contents) {
    std::ofstream(path) << contents;
  }

  std::string dir_;
};

TEST_F(KeyFileTest, ServiceTokensShareTheLocalKeyOrNeedTheConfiguredOne) {
  absl::StatusOr<TokenCodec> first = LoadServiceTokens(dir_, "");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(Files(), std::vector<std::string>{"token.key"});
  // A second service of the same local run signs with the same key.
  absl::StatusOr<TokenCodec> second = LoadServiceTokens(dir_, "");
  ASSERT_TRUE(second.ok());
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  std::string token = *MintAccessToken(
      *first, Principal{"agent-1", Role::kAgent, now + absl::Hours(1)}, now);
  EXPECT_TRUE(VerifyAccessToken(*second, token, now).ok());
  // A configured key file is never created.
  EXPECT_FALSE(LoadServiceTokens(dir_, dir_ + "/missing.key").ok());
}

}  // namespace
}  // namespace switchboard::auth
