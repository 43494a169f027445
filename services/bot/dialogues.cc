#include "services/bot/dialogues.h"

#include <algorithm>

#include "absl/hash/hash.h"

namespace switchboard::bot {

MemoryDialogueStore::MemoryDialogueStore(Options options)
    : options_(options),
      per_shard_(static_cast<size_t>(std::max(1, (options.max_dialogues + kShards - 1) / kShards))) {}

MemoryDialogueStore::Shard& MemoryDialogueStore::ShardOf(const std::string& session_id) {
  return shards_[absl::Hash<std::string>()(session_id) % kShards];
}

absl::Status MemoryDialogueStore::WithRecord(const std::string& session_id, absl::Time now,
                                             absl::FunctionRef<void(Dialogue&, bool)> fn,
                                             const events::v1::Event*) {
  Shard& shard = ShardOf(session_id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.index.find(session_id);
  bool existed = false;
  if (it != shard.index.end()) {
    auto node = it->second;
    if (now - node->second.last_seen < options_.idle_expiry) {
      existed = true;
    } else {
      node->second = Dialogue();
    }
    shard.lru.splice(shard.lru.begin(), shard.lru, node);
  } else {
    shard.lru.emplace_front(session_id, Dialogue());
    shard.index[session_id] = shard.lru.begin();
    while (shard.lru.size() > per_shard_) {
      shard.index.erase(shard.lru.back().first);
      shard.lru.pop_back();
    }
  }
  Dialogue& dialogue = shard.lru.front().second;
  dialogue.last_seen = now;
  fn(dialogue, existed);
  return absl::OkStatus();
}

absl::StatusOr<bool> MemoryDialogueStore::Erase(const std::string& session_id, absl::Time now) {
  Shard& shard = ShardOf(session_id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.index.find(session_id);
  if (it == shard.index.end()) return false;
  const bool live = now - it->second->second.last_seen < options_.idle_expiry;
  shard.lru.erase(it->second);
  shard.index.erase(it);
  return live;
}

absl::StatusOr<int> MemoryDialogueStore::ExpireIdle(absl::Time now) {
  int expired = 0;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    while (!shard.lru.empty() &&
           now - shard.lru.back().second.last_seen >= options_.idle_expiry) {
      shard.index.erase(shard.lru.back().first);
      shard.lru.pop_back();
      ++expired;
    }
  }
  return expired;
}

int MemoryDialogueStore::size() const {
  int total = 0;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    total += static_cast<int>(shard.lru.size());
  }
  return total;
}

}  // namespace switchboard::bot
