#pragma once

// Deadlines: when a session next needs the sweeper (its SLA falls due, an
// offer lapses, it has been idle too long), and a time-ordered index of
// those times so that a sweep touches only the sessions that are due.

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "services/sessions/model.h"

namespace switchboard::sessions {

struct IdleTimeouts {
  // BOT and ASSIGNED sessions without a message this long are closed.
  absl::Duration idle = absl::Minutes(30);
  // RESOLVED sessions are closed this long after resolution.
  absl::Duration resolved = absl::Hours(24);
};

// The earliest time at which something of `record` falls due, or
// InfiniteFuture when nothing will without a change to it:
// - its first-response SLA: just after `sla.due_at` (a breach is a due
//   time that has passed), while not breached and without a human reply;
// - its offer: `offer_expires_at` (at once if the session left QUEUED);
// - its idle close: the last message or state change plus the timeout of
//   its state (BOT, ASSIGNED, RESOLVED; QUEUED sessions wait for agents).
absl::Time NextDue(const SessionRecord& record, const IdleTimeouts& timeouts);

// Whether the session is idle past its timeout at `now` (see NextDue).
bool IdleAt(const SessionRecord& record, const IdleTimeouts& timeouts, absl::Time now);

// Sessions by the time they next fall due. One entry per session; memory is
// bounded by the sessions with something due. Not thread-safe (the Sessions
// facade guards it with its lock).
class DeadlineIndex {
 public:
  // Sets the session's due time; InfiniteFuture removes it.
  void Set(const std::string& session_id, absl::Time due);
  void Remove(const std::string& session_id);
  // Up to `limit` sessions due at `now` (due <= now), earliest first.
  std::vector<std::string> Due(absl::Time now, size_t limit) const;
  size_t size() const { return due_.size(); }

 private:
  std::set<std::pair<absl::Time, std::string>> by_time_;
  absl::flat_hash_map<std::string, absl::Time> due_;
};

}  // namespace switchboard::sessions
