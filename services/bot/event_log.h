#pragma once

#include <functional>

#include "absl/status/status.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::bot {

// Where the bot's events go: bot.turn_completed and bot.knowledge_base_reload.
// The bot keeps no other durable state (dialogue contexts live in memory),
// so its store is an event log. Implementations: SqliteEventLog (the
// transactional outbox), PostgresEventLog (the outbox replicas share),
// MemoryEventLog.
class EventLog {
 public:
  virtual ~EventLog() = default;
  // Commits `event` (already sealed). Events commit in the order Append is
  // called (on PostgreSQL: per session, the event's key); `done` then runs
  // with the outcome, on a thread of the log's or the caller's, and must
  // not block.
  virtual void Append(events::v1::Event event, std::function<void(absl::Status)> done) = 0;
};

}  // namespace switchboard::bot

#include <vector>

#include "absl/synchronization/mutex.h"

namespace switchboard::bot {

// EventLog in memory: commits at once, on the caller's thread, and keeps the
// events (tests, the evaluation tool and the benchmark, which need no
// outbox). Thread-safe.
class MemoryEventLog : public EventLog {
 public:
  // Keeps at most `keep` most recent events (0 keeps none).
  explicit MemoryEventLog(size_t keep = 10'000) : keep_(keep) {}
  void Append(events::v1::Event event, std::function<void(absl::Status)> done) override {
    {
      absl::MutexLock lock(&mu_);
      if (keep_ > 0) {
        if (events_.size() >= keep_) events_.erase(events_.begin());
        events_.push_back(std::move(event));
      }
    }
    done(absl::OkStatus());
  }
  std::vector<events::v1::Event> events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  const size_t keep_;
  mutable absl::Mutex mu_;
  std::vector<events::v1::Event> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::bot
