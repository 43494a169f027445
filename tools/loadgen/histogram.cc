#include "tools/loadgen/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace switchboard::loadgen {
namespace {

// Index of the highest set bit (value > 0).
int HighBit(uint64_t value) { return 63 - __builtin_clzll(value); }

void AtomicMin(std::atomic<int64_t>& target, int64_t value) {
  int64_t seen = target.load(std::memory_order_relaxed);
  while (value < seen &&
         !target.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

void AtomicMax(std::atomic<int64_t>& target, int64_t value) {
  int64_t seen = target.load(std::memory_order_relaxed);
  while (value > seen &&
         !target.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

}  // namespace

Histogram::Histogram() { Reset(); }

void Histogram::Reset() {
  for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
  total_.store(0, std::memory_order_relaxed);
  sum_.store(0, std::memory_order_relaxed);
  min_.store(std::numeric_limits<int64_t>::max(), std::memory_order_relaxed);
  max_.store(0, std::memory_order_relaxed);
  clamped_.store(0, std::memory_order_relaxed);
}

int Histogram::BucketOf(int64_t value) {
  if (value < kExactBelow) return static_cast<int>(std::max<int64_t>(value, 0));
  if (value > kMaxTrackable) value = kMaxTrackable;
  // value is in [2^k, 2^(k+1)) with k >= 8; the top 8 bits pick the
  // sub-bucket (128..255), the octave k-8 picks the row.
  const int shift = HighBit(static_cast<uint64_t>(value)) - 7;
  const int sub = static_cast<int>(value >> shift) - kSubBuckets;
  return static_cast<int>(kExactBelow) + (shift - 1) * kSubBuckets + sub;
}

int64_t Histogram::BucketLow(int bucket) {
  if (bucket < kExactBelow) return bucket;
  const int row = (bucket - static_cast<int>(kExactBelow)) / kSubBuckets;
  const int sub = (bucket - static_cast<int>(kExactBelow)) % kSubBuckets;
  const int shift = row + 1;
  return static_cast<int64_t>(kSubBuckets + sub) << shift;
}

int64_t Histogram::BucketHigh(int bucket) {
  if (bucket < kExactBelow) return bucket;
  const int shift = (bucket - static_cast<int>(kExactBelow)) / kSubBuckets + 1;
  return BucketLow(bucket) + (int64_t{1} << shift) - 1;
}

void Histogram::Record(int64_t value) {
  if (value < 0) value = 0;
  if (value > kMaxTrackable) {
    clamped_.fetch_add(1, std::memory_order_relaxed);
    value = kMaxTrackable;
  }
  counts_[BucketOf(value)].fetch_add(1, std::memory_order_relaxed);
  total_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  AtomicMin(min_, value);
  AtomicMax(max_, value);
}

void Histogram::Merge(const Histogram& other) {
  if (other.count() == 0) return;
  for (int i = 0; i < kBuckets; ++i) {
    const int64_t c = other.counts_[i].load(std::memory_order_relaxed);
    if (c != 0) counts_[i].fetch_add(c, std::memory_order_relaxed);
  }
  total_.fetch_add(other.count(), std::memory_order_relaxed);
  sum_.fetch_add(other.sum_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  clamped_.fetch_add(other.clamped(), std::memory_order_relaxed);
  AtomicMin(min_, other.min());
  AtomicMax(max_, other.max());
}

int64_t Histogram::count() const { return total_.load(std::memory_order_relaxed); }

int64_t Histogram::min() const {
  return count() == 0 ? 0 : min_.load(std::memory_order_relaxed);
}

int64_t Histogram::max() const { return max_.load(std::memory_order_relaxed); }

double Histogram::mean() const {
  const int64_t n = count();
  return n == 0 ? 0 : static_cast<double>(sum_.load(std::memory_order_relaxed)) / n;
}

int64_t Histogram::Percentile(double quantile) const {
  const int64_t n = count();
  if (n == 0) return 0;
  quantile = std::clamp(quantile, 0.0, 1.0);
  const int64_t rank =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(quantile * n)));
  int64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i].load(std::memory_order_relaxed);
    if (seen >= rank) return std::clamp(BucketHigh(i), min(), max());
  }
  return max();
}

std::vector<std::pair<int64_t, int64_t>> Histogram::NonEmptyBuckets() const {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int i = 0; i < kBuckets; ++i) {
    const int64_t c = counts_[i].load(std::memory_order_relaxed);
    if (c != 0) out.emplace_back(BucketHigh(i), c);
  }
  return out;
}

}  // namespace switchboard::loadgen
