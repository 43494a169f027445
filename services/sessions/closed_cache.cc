#include "services/sessions/closed_cache.h"

namespace switchboard::sessions {

std::optional<SessionRecord> ClosedSessionCache::Get(const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(session_id);
  if (it == by_id_.end()) return std::nullopt;
  order_.splice(order_.begin(), order_, it->second);
  return *it->second;
}

void ClosedSessionCache::Put(SessionRecord record) {
  if (capacity_ == 0) return;
  absl::MutexLock lock(&mu_);
  const std::string id = record.session.session_id();
  auto it = by_id_.find(id);
  if (it != by_id_.end()) {
    *it->second = std::move(record);
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  order_.push_front(std::move(record));
  by_id_[id] = order_.begin();
  if (order_.size() > capacity_) {
    by_id_.erase(order_.back().session.session_id());
    order_.pop_back();
  }
}

size_t ClosedSessionCache::size() const {
  absl::MutexLock lock(&mu_);
  return order_.size();
}

}  // namespace switchboard::sessions
