#include "libs/auth/verifier.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace switchboard::auth {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

SigningKey NewKey() {
  absl::StatusOr<SigningKey> key = SigningKey::Generate();
  EXPECT_TRUE(key.ok()) << key.status();
  return *std::move(key);
}

// A key source whose set a test replaces.
class SwappableKeys final : public KeySource {
 public:
  explicit SwappableKeys(KeySet keys) : keys_(std::make_shared<const KeySet>(std::move(keys))) {}
  std::shared_ptr<const KeySet> Keys() const override {
    absl::MutexLock lock(&mu_);
    return keys_;
  }
  void Set(KeySet keys) {
    absl::MutexLock lock(&mu_);
    keys_ = std::make_shared<const KeySet>(std::move(keys));
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const KeySet> keys_ ABSL_GUARDED_BY(mu_);
};

class VerifierTest : public ::testing::Test {
 protected:
  VerifierTest()
      : issuer_key_(NewKey()),
        routing_key_(NewKey()),
        bot_key_(NewKey()),
        identity_key_(NewKey()),
        issuer_(issuer_key_, std::string(kDevelopmentIssuer)),
        routing_(routing_key_, std::string(kServiceIssuer)),
        bot_(bot_key_, std::string(kServiceIssuer)),
        identity_(identity_key_, std::string(kVerificationIssuer)) {
    KeySet access;
    EXPECT_TRUE(access.Add(issuer_key_.kid(), issuer_key_.public_key()).ok());
    KeySet services;
    EXPECT_TRUE(services.Add(routing_key_.kid(), routing_key_.public_key(), "routing").ok());
    EXPECT_TRUE(services.Add(bot_key_.kid(), bot_key_.public_key(), "bot").ok());
    KeySet verification;
    EXPECT_TRUE(verification.Add(identity_key_.kid(), identity_key_.public_key()).ok());
    access_ = std::make_shared<SwappableKeys>(std::move(access));
    VerifierOptions options;
    options.service = "sessions";
    verifier_ = std::make_unique<TokenVerifier>(
        TokenVerifier::KeySources{access_, FixedKeys(std::move(services)),
                                  FixedKeys(std::move(verification))},
        options);
  }

  std::string Access(const std::string& subject, Role role,
                     absl::Duration lifetime = absl::Hours(1)) {
    return *MintAccessToken(issuer_, {subject, role, kNow + lifetime}, kNow);
  }
  std::string Service(const TokenSigner& signer, const std::string& caller,
                      const std::string& callee = "sessions",
                      absl::Duration lifetime = absl::Minutes(10)) {
    return *MintServiceToken(signer, caller, callee, kNow, lifetime);
  }
  std::string Sign(const TokenSigner& signer, Claims claims) { return *signer.Sign(claims); }
  Claims VerificationClaims(absl::Duration lifetime = absl::Minutes(15)) {
    Claims claims;
    claims.audience = std::string(kVerificationAudience);
    claims.subject = "cust-1";
    claims.issued_at = kNow;
    claims.expires_at = kNow + lifetime;
    claims.strings["method"] = "totp";
    return claims;
  }
  std::string Refusal(const std::string& token, absl::Time now = kNow) {
    absl::StatusOr<Principal> principal = verifier_->VerifyCaller(token, now);
    if (principal.ok()) return "accepted";
    EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated);
    return std::string(principal.status().message());
  }

  SigningKey issuer_key_, routing_key_, bot_key_, identity_key_;
  TokenSigner issuer_, routing_, bot_, identity_;
  std::shared_ptr<SwappableKeys> access_;
  std::unique_ptr<TokenVerifier> verifier_;
};

TEST_F(VerifierTest, AcceptsAccessAndServiceTokens) {
  absl::StatusOr<Principal> agent = verifier_->VerifyCaller(Access("ana", Role::kAgent), kNow);
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->subject, "ana");
  EXPECT_EQ(agent->role, Role::kAgent);
  EXPECT_EQ(agent->expires_at, kNow + absl::Hours(1));

  absl::StatusOr<Principal> routing = verifier_->VerifyCaller(Service(routing_, "routing"), kNow);
  ASSERT_TRUE(routing.ok()) << routing.status();
  EXPECT_EQ(routing->subject, "routing");
  EXPECT_EQ(routing->role, Role::kService);
}

TEST_F(VerifierTest, AServiceKeySpeaksOnlyForItsService) {
  // The bot's key claiming to be routing.
  EXPECT_EQ(Refusal(Service(bot_, "routing")), "key belongs to another service");
  // A service token for another callee is no good here.
  EXPECT_EQ(Refusal(Service(routing_, "routing", "presence")), "wrong audience");
  // A service key cannot make an access token: the kid is a service key's,
  // so the token is held to service tokens' issuer.
  const TokenSigner bot_as_issuer(bot_key_, std::string(kDevelopmentIssuer));
  EXPECT_EQ(Refusal(*MintAccessToken(bot_as_issuer,
                                     {"boss", Role::kSupervisor, kNow + absl::Hours(1)}, kNow)),
            "wrong issuer");
  // Nor can it be passed off under service tokens' issuer with a person's role.
  Claims claims;
  claims.audience = std::string(kAccessAudience);
  claims.subject = "bot";
  claims.issued_at = kNow;
  claims.expires_at = kNow + absl::Minutes(5);
  claims.strings["role"] = "supervisor";
  EXPECT_EQ(Refusal(Sign(bot_, claims)), "wrong audience");
  claims.audience = "sessions";
  EXPECT_EQ(Refusal(Sign(bot_, claims)), "unknown role");
  // Identity's verification key makes no caller tokens.
  const TokenSigner identity_as_issuer(identity_key_, std::string(kDevelopmentIssuer));
  EXPECT_EQ(Refusal(*MintAccessToken(identity_as_issuer,
                                     {"boss", Role::kSupervisor, kNow + absl::Hours(1)}, kNow)),
            "unknown key");
}

TEST_F(VerifierTest, AccessTokensCarryAPersonsRole) {
  Claims claims;
  claims.audience = std::string(kAccessAudience);
  claims.subject = "routing";
  claims.issued_at = kNow;
  claims.expires_at = kNow + absl::Hours(1);
  claims.strings["role"] = "service";
  EXPECT_EQ(Refusal(Sign(issuer_, claims)), "unknown role");
  claims.strings["role"] = "admin";
  EXPECT_EQ(Refusal(Sign(issuer_, claims)), "unknown role");
  claims.strings.erase("role");
  EXPECT_EQ(Refusal(Sign(issuer_, claims)), "unknown role");
  claims.strings["role"] = "agent";
  claims.subject = std::string(kMaxSubjectBytes + 1, 'a');
  EXPECT_EQ(Refusal(Sign(issuer_, claims)), "subject too long");
  // Another issuer's name with the right key.
  const TokenSigner renamed(issuer_key_, "someone-else");
  EXPECT_EQ(Refusal(*MintAccessToken(renamed, {"ana", Role::kAgent, kNow + absl::Hours(1)}, kNow)),
            "wrong issuer");
}

TEST_F(VerifierTest, EachKindHasItsMaximumLifetime) {
  EXPECT_EQ(Refusal(Access("ana", Role::kAgent, absl::Hours(12))), "accepted");
  EXPECT_EQ(Refusal(Access("ana", Role::kAgent, absl::Hours(12) + absl::Seconds(1))),
            "token lifetime too long");
  EXPECT_EQ(Refusal(Service(routing_, "routing", "sessions", absl::Minutes(15))), "accepted");
  EXPECT_EQ(Refusal(Service(routing_, "routing", "sessions", absl::Minutes(16))),
            "token lifetime too long");
  EXPECT_TRUE(verifier_->VerifyVerification(Sign(identity_, VerificationClaims(absl::Hours(1))),
                                            kNow)
                  .ok());
  EXPECT_EQ(verifier_
                ->VerifyVerification(Sign(identity_, VerificationClaims(absl::Hours(2))), kNow)
                .status()
                .message(),
            "token lifetime too long");
}

TEST_F(VerifierTest, VerificationTokensComeFromIdentitysKeyOnly) {
  absl::StatusOr<Claims> claims =
      verifier_->VerifyVerification(Sign(identity_, VerificationClaims()), kNow);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->subject, "cust-1");
  for (const TokenSigner* other : {&issuer_, &routing_}) {
    const TokenSigner as_identity(other->key(), std::string(kVerificationIssuer));
    EXPECT_EQ(verifier_->VerifyVerification(Sign(as_identity, VerificationClaims()), kNow)
                  .status()
                  .message(),
              "unknown key");
  }
  // A verification token is no caller token, nor the reverse.
  EXPECT_EQ(Refusal(Sign(identity_, VerificationClaims())), "unknown key");
  EXPECT_EQ(
      verifier_->VerifyVerification(Access("cust-1", Role::kCustomer), kNow).status().message(),
      "unknown key");
}

TEST_F(VerifierTest, RemembersTokensUntilTheyExpireOrTheirKeysGo) {
  const std::string token = Access("ana", Role::kAgent);
  EXPECT_EQ(Refusal(token), "accepted");
  EXPECT_EQ(Refusal(token, kNow + absl::Minutes(59)), "accepted");
  EXPECT_EQ(Refusal(token, kNow + absl::Hours(1)), "token expired");
  EXPECT_EQ(Refusal(token), "accepted");
  // The issuer's key is withdrawn: a token already remembered stops working.
  access_->Set(KeySet());
  EXPECT_EQ(Refusal(token), "unknown key");
  // Rotation: a new set with the same key works again.
  KeySet again;
  ASSERT_TRUE(again.Add(issuer_key_.kid(), issuer_key_.public_key()).ok());
  access_->Set(std::move(again));
  EXPECT_EQ(Refusal(token), "accepted");
}

TEST_F(VerifierTest, ConcurrentCallersAgree) {
  std::vector<std::string> tokens = {Access("ana", Role::kAgent), Access("c1", Role::kCustomer),
                                     Service(routing_, "routing"), Service(bot_, "routing")};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        for (size_t k = 0; k < tokens.size(); ++k) {
          const bool ok = verifier_->VerifyCaller(tokens[k], kNow).ok();
          if (ok != (k < 3)) ++wrong;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace switchboard::auth
