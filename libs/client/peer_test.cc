#include "libs/client/peer.h"

#include "gtest/gtest.h"
#include "libs/auth/token.h"
#include "libs/testing/test_tokens.h"

namespace switchboard::client {
namespace {

TEST(ServiceTokenTest, MintsAScopedServiceTokenAndRenewsItBeforeExpiry) {
  testing::TestTokens keys("sessions");
  FakeClock clock;
  clock.Set(absl::Now());
  ServiceToken token(&keys.service_signer("routing"), "routing", "sessions", &clock);
  const std::string first = token.Get();
  absl::StatusOr<auth::Principal> principal = keys.verifier().VerifyCaller(first, clock.Now());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, "routing");
  EXPECT_EQ(principal->role, auth::Role::kService);
  // Addressed to sessions only.
  EXPECT_EQ(keys.VerifierFor("presence")->VerifyCaller(first, clock.Now()).status().message(),
            "wrong audience");
  EXPECT_EQ(token.Get(), first);
  clock.Advance(ServiceToken::kLifetime - ServiceToken::kRenewBefore - absl::Seconds(1));
  EXPECT_EQ(token.Get(), first);
  clock.Advance(absl::Seconds(1));
  const std::string renewed = token.Get();
  EXPECT_NE(renewed, first);
  EXPECT_TRUE(keys.verifier().VerifyCaller(renewed, clock.Now() + absl::Minutes(9)).ok());
  EXPECT_FALSE(keys.verifier().VerifyCaller(first, clock.Now() + ServiceToken::kRenewBefore).ok());
}

TEST(PeerContextTest, UsesTheTimeoutWithoutAnIncomingCall) {
  auto context = PeerContext("t", absl::Seconds(3));
  const absl::Duration left = absl::FromChrono(context->deadline()) - absl::Now();
  EXPECT_GT(left, absl::Seconds(2));
  EXPECT_LE(left, absl::Seconds(3));
}

TEST(PeerContextTest, TheCallersDeadlineWinsWhenItIsSooner) {
  const absl::Time caller = absl::Now() + absl::Milliseconds(500);
  auto sooner = PeerContext("t", absl::Seconds(3), caller);
  EXPECT_LE(absl::FromChrono(sooner->deadline()), caller + absl::Milliseconds(1));
  EXPECT_GE(absl::FromChrono(sooner->deadline()), caller - absl::Milliseconds(1));

  auto later = PeerContext("t", absl::Seconds(3), absl::Now() + absl::Hours(1));
  EXPECT_LE(absl::FromChrono(later->deadline()) - absl::Now(), absl::Seconds(3));
  auto none = PeerContext("t", absl::Seconds(3), absl::InfiniteFuture());
  EXPECT_LE(absl::FromChrono(none->deadline()) - absl::Now(), absl::Seconds(3));
}

}  // namespace
}  // namespace switchboard::client
