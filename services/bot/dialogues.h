#pragma once

#include <array>
#include <deque>
#include <list>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "switchboard/bot/v1/bot_service.pb.h"
#include "switchboard/common/v1/common.pb.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::bot {

// A session's dialogue context: what the previous turns were about, and the
// last answers (so that a retried turn gets its first answer).
struct Dialogue {
  // The last intent answered or escalated about (small talk leaves it), its
  // confidence then, and its category (or the last category believed).
  std::string previous_intent;
  float previous_confidence = 0;
  common::v1::Category previous_category = common::v1::CATEGORY_UNSPECIFIED;
  int not_understood_turns = 0;
  std::vector<common::v1::CollectedDetail> details;
  // turn_id -> answer, oldest first.
  std::deque<std::pair<std::string, v1::AnswerResponse>> turns;
  absl::Time last_seen;
};

// Where dialogue contexts live. Implementations: MemoryDialogueStore (one
// process's memory), PostgresDialogueStore (a table that bot replicas share).
// Thread-safe.
class DialogueStore {
 public:
  virtual ~DialogueStore() = default;

  // Runs `fn` on the session's dialogue, a fresh one (`existed` false) if
  // there is none or it was idle past the expiry, and keeps what `fn` left
  // in it as used at `now`. Turns of one session run one at a time. `fn`
  // must be deterministic in the dialogue it gets: a store may run it again
  // on a fresh copy (PostgreSQL retrying a transaction it rolled back).
  // Errors (nothing of the change is kept): UNAVAILABLE when the store could
  // not be reached or refused the change; DATA_LOSS when the session's kept
  // context does not decode (Erase clears it).
  absl::Status With(const std::string& session_id, absl::Time now,
                    absl::FunctionRef<void(Dialogue& dialogue, bool existed)> fn) {
    return WithRecord(session_id, now, fn, nullptr);
  }

  // With, and when the store records_events(), the event `fn` left in
  // `*record` (sealed; left without a payload, none) commits with the
  // change: both or neither (an event the outbox refuses fails the change
  // with its error). Stores that do not record events ignore `record`: the
  // caller records it after With, in its EventLog.
  virtual absl::Status WithRecord(const std::string& session_id, absl::Time now,
                                  absl::FunctionRef<void(Dialogue& dialogue, bool existed)> fn,
                                  const events::v1::Event* record) = 0;

  // Whether WithRecord commits the event with the change.
  virtual bool records_events() const { return false; }

  // Forgets the session's dialogue; true if there was one (not expired).
  virtual absl::StatusOr<bool> Erase(const std::string& session_id, absl::Time now) = 0;

  // Forgets dialogues idle past the expiry; returns how many.
  virtual absl::StatusOr<int> ExpireIdle(absl::Time now) = 0;

  // Dialogues held (including expired ones not yet swept; on a shared store,
  // as of the last ExpireIdle).
  virtual int size() const = 0;
};

// Dialogue contexts in memory, bounded in count (least recently used go
// first) and in idle time. Sharded by session id so that turns of different
// sessions rarely contend; a shard's lock is held only for the caller's
// in-memory work (microseconds), never for I/O. Never fails; records no
// events.
class MemoryDialogueStore : public DialogueStore {
 public:
  struct Options {
    // Most sessions remembered; the least recently used are forgotten.
    int max_dialogues = 100'000;
    // A dialogue idle this long is forgotten.
    absl::Duration idle_expiry = absl::Minutes(30);
  };
  explicit MemoryDialogueStore(Options options);

  absl::Status WithRecord(const std::string& session_id, absl::Time now,
                          absl::FunctionRef<void(Dialogue& dialogue, bool existed)> fn,
                          const events::v1::Event* record) override;
  absl::StatusOr<bool> Erase(const std::string& session_id, absl::Time now) override;
  absl::StatusOr<int> ExpireIdle(absl::Time now) override;
  int size() const override;

 private:
  static constexpr int kShards = 64;
  struct Shard {
    mutable absl::Mutex mu;
    // Most recently used first.
    std::list<std::pair<std::string, Dialogue>> lru ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, std::list<std::pair<std::string, Dialogue>>::iterator>
        index ABSL_GUARDED_BY(mu);
  };
  Shard& ShardOf(const std::string& session_id);

  const Options options_;
  const size_t per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace switchboard::bot
