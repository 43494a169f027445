#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "absl/time/time.h"
#include "switchboard/events/v1/event.pb.h"
#include "switchboard/routing/v1/routing_service.pb.h"

namespace switchboard::routing {

// One queue: (kind, channel, category, language primary subtag). Complaint
// queues have no channel and no language.
struct QueueId {
  v1::EntryKind kind = v1::ENTRY_KIND_UNSPECIFIED;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
  std::string language;

  auto Tie() const { return std::tie(kind, channel, category, language); }
  bool operator<(const QueueId& other) const { return Tie() < other.Tie(); }
  bool operator==(const QueueId& other) const { return Tie() == other.Tie(); }
};

// A queue entry as routing keeps it: the API's QueueEntry (without
// `position`, which is computed) plus what routing needs to decide and to
// survive a restart. Lives in the store until it leaves routing (cancelled,
// or a complaint accepted); an accepted session stays ASSIGNED so that its
// capacity can be released and its session re-queued if the agent lapses.
struct EntryRecord {
  // "session:<id>" or "complaint:<id>"; see EntryKey.
  std::string key;
  v1::QueueEntry entry;
  // Order within the queue and priority: lower goes first. Tail entries take
  // their enqueue time in microseconds; head entries one less than the
  // current head.
  int64_t order = 0;
  // Agents never offered this entry during this wait (decliners, the
  // transferring agent).
  std::vector<std::string> excluded;
  // Agents whose offer timed out during this wait: tried again only once
  // every other eligible agent has been tried.
  std::vector<std::string> timed_out;

  // The open offer (OFFERED).
  std::string offer_id;
  absl::Time offered_at = absl::InfinitePast();
  absl::Time offer_expires_at = absl::InfinitePast();
  bool auto_accept = false;

  // The assignment (ASSIGNED).
  std::string assigned_agent_id;
  std::string accepted_offer_id;
  absl::Time accepted_at = absl::InfinitePast();

  // Routing took the session back from this lapsed agent and has not yet
  // told sessions (RequeueSession); it is not offered until it has.
  std::string requeued_from;
};

// An agent's routing settings.
struct SettingsRecord {
  std::string agent_id;
  v1::AgentSettings settings;
  absl::Time updated_at = absl::InfinitePast();
};

// Everything one operation changes, committed atomically with its events.
struct RoutingWrite {
  std::vector<EntryRecord> upserted_entries;
  std::vector<std::string> deleted_entries;  // keys
  std::vector<SettingsRecord> settings;
  std::vector<events::v1::Event> events;

  bool empty() const {
    return upserted_entries.empty() && deleted_entries.empty() &&
           settings.empty() && events.empty();
  }
};

inline std::string EntryKey(v1::EntryKind kind, const std::string& id) {
  return (kind == v1::ENTRY_KIND_COMPLAINT ? "complaint:" : "session:") + id;
}

}  // namespace switchboard::routing
