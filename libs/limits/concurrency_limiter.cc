#include "libs/limits/concurrency_limiter.h"

#include "absl/strings/str_cat.h"
#include "libs/limits/retry_after.h"

namespace switchboard::limits {

ConcurrencyLimiter::ConcurrencyLimiter(int max_per_key, std::string what)
    : max_per_key_(max_per_key), what_(std::move(what)) {}

absl::Status ConcurrencyLimiter::Acquire(const std::string& key) {
  absl::MutexLock lock(&mu_);
  int& held = held_[key];
  if (held >= max_per_key_) {
    return Exhausted(absl::StrCat("at most ", max_per_key_, " open ", what_,
                                  " per caller; close one first"),
                     absl::Seconds(1));
  }
  ++held;
  return absl::OkStatus();
}

void ConcurrencyLimiter::Release(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(key);
  if (it == held_.end()) return;
  if (--it->second <= 0) held_.erase(it);
}

int ConcurrencyLimiter::held(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(key);
  return it == held_.end() ? 0 : it->second;
}

}  // namespace switchboard::limits
