#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace switchboard::loadgen {

// A latency histogram in the style of HdrHistogram: log-linear buckets, so
// every recorded value lands in a bucket no wider than 1/128 of its lower
// bound (relative error below 0.8%) from 1 ns up to about 18 minutes, in a
// fixed 4.5k-bucket array. Values below 256 are exact. Larger values are
// clamped to the top bucket (and counted in `clamped`).
//
// Record is lock-free (relaxed atomics) and may be called from any thread;
// the readers (Percentile, Merge, ...) should run once recording has stopped
// or accept a slightly stale view.
class Histogram {
 public:
  // Sub-buckets per power of two above kExactBelow: the relative precision.
  static constexpr int kSubBuckets = 128;
  // Values below this are their own bucket.
  static constexpr int64_t kExactBelow = 2 * kSubBuckets;
  // Powers of two covered above kExactBelow (256 ns .. 2^41 ns).
  static constexpr int kOctaves = 33;
  static constexpr int kBuckets = kExactBelow + kOctaves * kSubBuckets;
  static constexpr int64_t kMaxTrackable = (int64_t{1} << 41) - 1;

  Histogram();
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Records one value (nanoseconds, or any non-negative integer); negative
  // values count as 0.
  void Record(int64_t value);
  // Adds every count of `other` to this one.
  void Merge(const Histogram& other);
  void Reset();

  int64_t count() const;
  int64_t min() const;  // 0 when empty
  int64_t max() const;  // 0 when empty
  double mean() const;  // 0 when empty
  int64_t clamped() const { return clamped_.load(std::memory_order_relaxed); }

  // The smallest bucket upper bound at or below which at least `quantile`
  // (0..1] of the values lie, clamped to [min, max] so that p100 is the exact
  // maximum. 0 when empty.
  int64_t Percentile(double quantile) const;

  // Every bucket holding a value, lowest first: (the bucket's highest value,
  // its count). What a report needs to draw the whole distribution.
  std::vector<std::pair<int64_t, int64_t>> NonEmptyBuckets() const;

  // Bucket arithmetic (exposed for tests): the bucket of a value, and the
  // lowest and highest value a bucket holds.
  static int BucketOf(int64_t value);
  static int64_t BucketLow(int bucket);
  static int64_t BucketHigh(int bucket);

 private:
  std::array<std::atomic<int64_t>, kBuckets> counts_;
  std::atomic<int64_t> total_{0};
  std::atomic<int64_t> sum_{0};
  std::atomic<int64_t> min_;
  std::atomic<int64_t> max_{0};
  std::atomic<int64_t> clamped_{0};
};

}  // namespace switchboard::loadgen
