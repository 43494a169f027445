#include "tools/loadgen/histogram.h"

#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace switchboard::loadgen {
namespace {

TEST(HistogramTest, BucketsTileTheRangeWithoutGapsOrOverlap) {
  for (int b = 0; b + 1 < Histogram::kBuckets; ++b) {
    ASSERT_EQ(Histogram::BucketHigh(b) + 1, Histogram::BucketLow(b + 1)) << b;
    ASSERT_LE(Histogram::BucketLow(b), Histogram::BucketHigh(b)) << b;
  }
  EXPECT_EQ(Histogram::BucketHigh(Histogram::kBuckets - 1), Histogram::kMaxTrackable);
}

TEST(HistogramTest, EveryValueLandsInTheBucketThatHoldsIt) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const int64_t v = static_cast<int64_t>(rng() % Histogram::kMaxTrackable);
    const int b = Histogram::BucketOf(v);
    ASSERT_LE(Histogram::BucketLow(b), v);
    ASSERT_GE(Histogram::BucketHigh(b), v);
  }
  for (int64_t v : {0, 1, 255, 256, 257, 511, 512, 1000000}) {
    const int b = Histogram::BucketOf(v);
    EXPECT_LE(Histogram::BucketLow(b), v);
    EXPECT_GE(Histogram::BucketHigh(b), v);
  }
}

TEST(HistogramTest, BucketWidthIsWithinOnePartIn128) {
  for (int b = Histogram::kExactBelow; b < Histogram::kBuckets; ++b) {
    const double low = static_cast<double>(Histogram::BucketLow(b));
    const double width = static_cast<double>(Histogram::BucketHigh(b)) - low + 1;
    ASSERT_LE(width / low, 1.0 / 128 + 1e-12) << b;
  }
}

TEST(HistogramTest, EmptyReportsZeros) {
  Histogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.mean(), 0);
  EXPECT_EQ(h.Percentile(0.99), 0);
}

TEST(HistogramTest, PercentilesOfAUniformRangeAreWithinPrecision) {
  Histogram h;
  for (int64_t v = 1; v <= 1000000; ++v) h.Record(v * 1000);  // 1 us .. 1 s
  EXPECT_EQ(h.count(), 1000000);
  EXPECT_EQ(h.min(), 1000);
  EXPECT_EQ(h.max(), 1000000000);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact = q * 1e9;
    EXPECT_NEAR(static_cast<double>(h.Percentile(q)), exact, exact / 128) << q;
    EXPECT_GE(static_cast<double>(h.Percentile(q)), exact) << "upper bound " << q;
  }
  EXPECT_EQ(h.Percentile(1.0), 1000000000);
  EXPECT_NEAR(h.mean(), 500000500.0, 1);
}

TEST(HistogramTest, ATailIsNotHiddenByTheBulk) {
  // 99.8% fast calls and 0.2% slow ones: p99 is fast, p99.9 must be slow.
  Histogram h;
  for (int i = 0; i < 998; ++i) h.Record(100'000);
  for (int i = 0; i < 2; ++i) h.Record(50'000'000);
  EXPECT_LT(h.Percentile(0.99), 101'000);
  EXPECT_GE(h.Percentile(0.999), 50'000'000 - 50'000'000 / 128);
}

TEST(HistogramTest, SmallValuesAreExactAndNegativesCountAsZero) {
  Histogram h;
  h.Record(-5);
  h.Record(3);
  h.Record(200);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.Percentile(0.5), 3);
  EXPECT_EQ(h.Percentile(1.0), 200);
}

TEST(HistogramTest, HugeValuesAreClampedAndCounted) {
  Histogram h;
  h.Record(int64_t{1} << 50);
  EXPECT_EQ(h.clamped(), 1);
  EXPECT_EQ(h.max(), Histogram::kMaxTrackable);
}

TEST(HistogramTest, MergeAddsCountsAndKeepsExtremes) {
  Histogram a, b;
  for (int i = 0; i < 100; ++i) a.Record(1000);
  for (int i = 0; i < 100; ++i) b.Record(9000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 200);
  EXPECT_EQ(a.min(), 1000);
  EXPECT_EQ(a.max(), 9000);
  EXPECT_LE(a.Percentile(0.5), 1000 + 1000 / 128);
  EXPECT_GE(a.Percentile(0.51), 9000 - 9000 / 128);
  a.Reset();
  EXPECT_EQ(a.count(), 0);
}

TEST(HistogramTest, NonEmptyBucketsListEveryValueOnceInOrder) {
  Histogram h;
  for (int64_t v : {5, 5, 300, 1000000, 1000001}) h.Record(v);
  const auto buckets = h.NonEmptyBuckets();
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0], std::make_pair(int64_t{5}, int64_t{2}));
  EXPECT_EQ(buckets[1].first, Histogram::BucketHigh(Histogram::BucketOf(300)));
  EXPECT_EQ(buckets[1].second, 1);
  EXPECT_EQ(buckets[2].first, Histogram::BucketHigh(Histogram::BucketOf(1000000)));
  EXPECT_EQ(buckets[2].second, 2);
  EXPECT_TRUE(Histogram().NonEmptyBuckets().empty());
}

TEST(HistogramTest, ConcurrentRecordsAreAllCounted) {
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 50000; ++i) h.Record(1000 * (t + 1));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.count(), 200000);
  EXPECT_EQ(h.min(), 1000);
  EXPECT_EQ(h.max(), 4000);
}

}  // namespace
}  // namespace switchboard::loadgen
