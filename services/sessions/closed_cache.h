#pragma once

#include <list>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "services/sessions/model.h"

namespace switchboard::sessions {

// The most recently used CLOSED sessions, so that reading a closed session
// again (a customer's history page, a rating) does not go to the store each
// time. CLOSED is final, so an entry never goes stale. At most `capacity`
// entries; the least recently used one goes first. Thread-safe.
class ClosedSessionCache {
 public:
  explicit ClosedSessionCache(size_t capacity) : capacity_(capacity) {}

  // A copy of the session, which becomes the most recently used.
  std::optional<SessionRecord> Get(const std::string& session_id);
  // Adds or replaces the session (it must be CLOSED).
  void Put(SessionRecord record);
  size_t size() const;

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  // Most recently used first.
  std::list<SessionRecord> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::list<SessionRecord>::iterator> by_id_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::sessions
