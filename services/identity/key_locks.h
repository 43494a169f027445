#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace switchboard::identity {

// Serializes work per key (identity: per customer) across threads: while one
// thread holds a key, others asking for it wait; other keys are unaffected.
// Memory is one entry per key held or waited for, so it is bounded by the
// work in progress, never by how many keys were ever seen.
//
//   KeyLocks::Hold hold = locks.Lock(customer_id);
//   ... read, decide, commit and wait, all for this customer alone ...
//
// Thread-safe. Not reentrant: a thread must not Lock a key it holds.
class KeyLocks {
 public:
  // Holds one key until destroyed.
  class Hold {
   public:
    Hold(Hold&& other) noexcept;
    Hold& operator=(Hold&&) = delete;
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold();

   private:
    friend class KeyLocks;
    Hold(KeyLocks* locks, std::string key) : locks_(locks), key_(std::move(key)) {}
    KeyLocks* locks_;
    std::string key_;
  };

  KeyLocks() = default;
  KeyLocks(const KeyLocks&) = delete;
  KeyLocks& operator=(const KeyLocks&) = delete;

  // Waits until no other thread holds `key`, then holds it.
  Hold Lock(const std::string& key);
  // Lock, unless `max_users` threads already hold or wait for `key`: then
  // nullopt at once (so that one key cannot tie up every thread).
  std::optional<Hold> LockUnlessBusy(const std::string& key, int max_users);

  // Keys held or waited for now.
  size_t size() const;
  // Threads holding or waiting for `key` now.
  int users(const std::string& key) const;

 private:
  struct Entry {
    // Threads holding or waiting for the key.
    int users = 0;
    bool held = false;
  };
  void Unlock(const std::string& key);

  mutable absl::Mutex mu_;
  // node_hash_map: an Entry stays put while waiters point at it.
  absl::node_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::identity
