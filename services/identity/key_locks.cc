#include "services/identity/key_locks.h"

#include <utility>

namespace switchboard::identity {

KeyLocks::Hold::Hold(Hold&& other) noexcept
    : locks_(std::exchange(other.locks_, nullptr)), key_(std::move(other.key_)) {}

KeyLocks::Hold::~Hold() {
  if (locks_ != nullptr) locks_->Unlock(key_);
}

KeyLocks::Hold KeyLocks::Lock(const std::string& key) {
  absl::MutexLock lock(&mu_);
  Entry& entry = entries_[key];
  ++entry.users;
  mu_.Await(absl::Condition(+[](Entry* e) { return !e->held; }, &entry));
  entry.held = true;
  return Hold(this, key);
}

std::optional<KeyLocks::Hold> KeyLocks::LockUnlessBusy(const std::string& key,
                                                       int max_users) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.users >= max_users) return std::nullopt;
  Entry& entry = it != entries_.end() ? it->second : entries_[key];
  ++entry.users;
  mu_.Await(absl::Condition(+[](Entry* e) { return !e->held; }, &entry));
  entry.held = true;
  return Hold(this, key);
}

void KeyLocks::Unlock(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  it->second.held = false;
  if (--it->second.users == 0) entries_.erase(it);
}

size_t KeyLocks::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

int KeyLocks::users(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? 0 : it->second.users;
}

}  // namespace switchboard::identity
