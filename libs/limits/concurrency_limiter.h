#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace switchboard::limits {

// Caps how many of something (open streams, say) each principal holds at
// once, so that one client cannot take a server's memory from everyone
// else. Memory is bounded by the principals holding something right now:
// a principal's count is forgotten when it drops to zero.
//
//   ConcurrencyLimiter streams(32, "StreamSessionEvents streams");
//   if (absl::Status s = streams.Acquire(caller_id); !s.ok()) return s;
//   ...                        // when the stream ends:
//   streams.Release(caller_id);
//
// Thread-safe.
class ConcurrencyLimiter {
 public:
  // At most `max_per_key` held per key; `what` names the resource in errors.
  ConcurrencyLimiter(int max_per_key, std::string what);

  // Takes one unit for `key`: OK, or RESOURCE_EXHAUSTED (with a retry-after)
  // when `key` already holds max_per_key. Each OK needs one Release.
  absl::Status Acquire(const std::string& key);
  void Release(const std::string& key);

  // Units `key` holds now.
  int held(const std::string& key) const;

 private:
  const int max_per_key_;
  const std::string what_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::limits
