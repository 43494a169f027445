#include "libs/limits/rate_limiter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/limits/retry_after.h"

namespace switchboard::limits {

RateLimiter::RateLimiter(Options options)
    : options_(std::move(options)),
      refill_(absl::Seconds(options_.burst / options_.per_second)) {}

absl::Status RateLimiter::Allow(const std::string& key, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (now - last_prune_ >= refill_ ||
      static_cast<int>(buckets_.size()) >= options_.max_keys) {
    Prune(now);
  }
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (static_cast<int>(buckets_.size()) >= options_.max_keys) {
      return Exhausted(absl::StrCat("too many callers of ", options_.what,
                                    " at once; try again shortly"),
                       refill_);
    }
    it = buckets_.emplace(key, Bucket{options_.burst, now}).first;
  }
  Bucket& bucket = it->second;
  const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - bucket.updated));
  bucket.tokens = std::min(options_.burst, bucket.tokens + elapsed * options_.per_second);
  bucket.updated = std::max(bucket.updated, now);
  if (bucket.tokens < 1) {
    return Exhausted(absl::StrCat("more than ", options_.per_second, " ", options_.what,
                                  " per second; slow down"),
                     absl::Seconds((1 - bucket.tokens) / options_.per_second));
  }
  bucket.tokens -= 1;
  return absl::OkStatus();
}

int RateLimiter::keys() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(buckets_.size());
}

void RateLimiter::Prune(absl::Time now) {
  last_prune_ = now;
  absl::erase_if(buckets_, [&](const auto& entry) {
    const Bucket& b = entry.second;
    return b.tokens + absl::ToDoubleSeconds(now - b.updated) * options_.per_second >=
           options_.burst;
  });
}

}  // namespace switchboard::limits
