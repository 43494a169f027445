#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace switchboard::limits {

// A token bucket per principal: each may spend `burst` at once and then
// `per_second` on average (the rate of expensive reads, for example). A
// refusal is RESOURCE_EXHAUSTED with a retry-after of when the next token
// arrives.
//
// Memory is bounded by the principals active within the last
// burst / per_second: a bucket that has refilled completely is the same as
// no bucket, so it is forgotten. Never more than `max_keys` buckets exist;
// past that, buckets are pruned and, if none can be, the call is refused
// (a flood of distinct principals must not grow memory either).
//
// Thread-safe. Times come from the caller, so tests use a fake clock.
class RateLimiter {
 public:
  struct Options {
    double per_second = 10;
    double burst = 20;
    // Names what is limited, in errors ("ListSessions calls").
    std::string what = "calls";
    int max_keys = 100'000;
  };
  explicit RateLimiter(Options options);

  // Spends one token of `key` at `now`: OK, or RESOURCE_EXHAUSTED.
  absl::Status Allow(const std::string& key, absl::Time now);

  // Buckets held (for tests and gauges).
  int keys() const;

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated = absl::InfinitePast();
  };
  // Forgets buckets that are full again at `now`.
  void Prune(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const absl::Duration refill_;  // from empty to full
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  absl::Time last_prune_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace switchboard::limits
