#include "libs/client/peer.h"

#include "gtest/gtest.h"
#include "libs/auth/token.h"

namespace switchboard::client {
namespace {

TEST(ServiceTokenTest, MintsAServiceTokenAndRenewsItBeforeExpiry) {
  auth::TokenCodec codec(std::string(32, 'k'));
  FakeClock clock;
  clock.Set(absl::Now());
  ServiceToken token(&codec, "routing", &clock);
  const std::string first = token.Get();
  absl::StatusOr<auth::Principal> principal = auth::VerifyAccessToken(codec, first, clock.Now());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, "routing");
  EXPECT_EQ(principal->role, auth::Role::kService);
  EXPECT_EQ(token.Get(), first);
  clock.Advance(absl::Minutes(55));
  const std::string renewed = token.Get();
  EXPECT_NE(renewed, first);
  EXPECT_TRUE(auth::VerifyAccessToken(codec, renewed, clock.Now() + absl::Minutes(30)).ok());
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
