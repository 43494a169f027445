#include "libs/testing/test_tokens.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/storage/test_dir.h"

namespace switchboard::testing {
namespace {

using auth::Role;

TEST(TestTokensTest, MintsWhatItsVerifierAccepts) {
  TestTokens tokens("sessions");
  const absl::Time now = absl::Now();
  absl::StatusOr<auth::Principal> agent =
      tokens.verifier().VerifyCaller(tokens.For(Role::kAgent, "ana"), now);
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->subject, "ana");
  absl::StatusOr<auth::Principal> routing =
      tokens.verifier().VerifyCaller(tokens.For(Role::kService, "routing"), now);
  ASSERT_TRUE(routing.ok()) << routing.status();
  EXPECT_EQ(routing->role, Role::kService);
  // Addressed to sessions, not to the bot.
  EXPECT_FALSE(tokens.VerifierFor("bot")->VerifyCaller(tokens.For(Role::kService, "routing"), now)
                   .ok());
  EXPECT_TRUE(tokens.VerifierFor("bot")
                  ->VerifyCaller(tokens.ServiceToken("sessions", "bot"), now)
                  .ok());
  // Another instance's keys are foreign.
  EXPECT_FALSE(TestTokens("sessions").verifier().VerifyCaller(tokens.For(Role::kAgent, "ana"), now)
                   .ok());
}

TEST(TestTokensTest, KeysGoThroughAFolder) {
  TestTokens tokens("bot");
  const std::string dir = storage::MakeTempDir() + "/keys";
  tokens.WriteFolder(dir);
  TestTokens read = TestTokens::FromFolder(dir, "bot");
  TestTokens made = TestTokens::InFolder(dir + "2", "bot");
  EXPECT_EQ(TestTokens::FromFolder(dir + "2").keys().issuer.kid(), made.keys().issuer.kid());
  EXPECT_TRUE(read.verifier().VerifyCaller(tokens.For(Role::kSupervisor, "s"), absl::Now()).ok());
  EXPECT_TRUE(
      tokens.verifier().VerifyCaller(read.For(Role::kService, "sessions"), absl::Now()).ok());
}

}  // namespace
}  // namespace switchboard::testing
