#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/limits/concurrency_limiter.h"
#include "libs/limits/rate_limiter.h"
#include "libs/limits/retry_after.h"

namespace switchboard::limits {
namespace {

TEST(RetryAfterTest, RoundsUpToWholeSecondsAndNeverZero) {
  EXPECT_EQ(RetryAfterSeconds(WithRetryAfter(absl::ResourceExhaustedError("x"),
                                             absl::Milliseconds(1))),
            1);
  EXPECT_EQ(RetryAfterSeconds(Exhausted("x", absl::Milliseconds(2500))), 3);
  EXPECT_EQ(RetryAfterSeconds(absl::ResourceExhaustedError("x")), std::nullopt);
  EXPECT_TRUE(absl::IsResourceExhausted(Exhausted("x", absl::Seconds(1))));
}

TEST(ConcurrencyLimiterTest, CapsEachKeyAloneAndForgetsIdleKeys) {
  ConcurrencyLimiter limiter(2, "streams");
  EXPECT_TRUE(limiter.Acquire("a").ok());
  EXPECT_TRUE(limiter.Acquire("a").ok());
  absl::Status third = limiter.Acquire("a");
  EXPECT_TRUE(absl::IsResourceExhausted(third));
  EXPECT_NE(third.message().find("at most 2 open streams"), absl::string_view::npos);
  EXPECT_TRUE(RetryAfterSeconds(third).has_value());
  EXPECT_TRUE(limiter.Acquire("b").ok());  // another principal is not affected
  limiter.Release("a");
  EXPECT_TRUE(limiter.Acquire("a").ok());
  limiter.Release("a");
  limiter.Release("a");
  limiter.Release("a");  // one too many: harmless
  EXPECT_EQ(limiter.held("a"), 0);
  EXPECT_EQ(limiter.held("b"), 1);
}

TEST(RateLimiterTest, SpendsTheBurstThenRefillsAtTheRate) {
  RateLimiter limiter({.per_second = 2, .burst = 3, .what = "reads"});
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Allow("a", t0).ok()) << i;
  absl::Status refused = limiter.Allow("a", t0);
  EXPECT_TRUE(absl::IsResourceExhausted(refused));
  EXPECT_EQ(RetryAfterSeconds(refused), 1);
  EXPECT_TRUE(limiter.Allow("b", t0).ok());
  EXPECT_TRUE(limiter.Allow("a", t0 + absl::Milliseconds(500)).ok());
  EXPECT_FALSE(limiter.Allow("a", t0 + absl::Milliseconds(600)).ok());
}

TEST(RateLimiterTest, ForgetsPrincipalsWhoseBucketRefilled) {
  RateLimiter limiter({.per_second = 10, .burst = 10, .what = "reads"});
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(limiter.Allow(absl::StrCat("customer-", i), t0).ok());
  }
  EXPECT_EQ(limiter.keys(), 1000);
  ASSERT_TRUE(limiter.Allow("late", t0 + absl::Seconds(2)).ok());
  EXPECT_EQ(limiter.keys(), 1);
}

TEST(RateLimiterTest, AFloodOfDistinctPrincipalsCannotGrowMemoryPastTheCap) {
  RateLimiter limiter({.per_second = 1, .burst = 5, .what = "reads", .max_keys = 100});
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  int refused = 0;
  for (int i = 0; i < 1000; ++i) {
    if (!limiter.Allow(absl::StrCat("k", i), t0).ok()) ++refused;
  }
  EXPECT_EQ(limiter.keys(), 100);
  EXPECT_EQ(refused, 900);
}

}  // namespace
}  // namespace switchboard::limits
