#pragma once

#include <cstdint>
#include <optional>
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
  // The accept intent: the agent accepted the open offer before its
  // deadline and routing is confirming it in presence and assigning it in
  // sessions. Written before either call, so that a crash in between is
  // driven to completion (or rolled back) after a restart; the offer no
  // longer expires.
  bool accepting = false;

  // The holder id of the capacity the open offer or the assignment holds in
  // presence (sessions only; 0 for entries written before holder ids).
  int64_t holder_id = 0;

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

// Capacity routing still owes presence: the offer or assignment holding it
// ended, and presence has not yet confirmed the release. Written in the same
// transaction as the change that ended it, deleted once presence confirms.
// One per (agent, session): a later one with a higher holder id covers an
// earlier one.
struct OwedRelease {
  std::string agent_id;
  std::string session_id;
  // Release only capacity held at or below this holder id.
  int64_t holder_id = 0;
  absl::Time owed_since = absl::InfinitePast();
};

// A closed offer (or an accepted one), kept for idempotent AcceptOffer and
// DeclineOffer replies until the retention period passes.
struct ClosedOfferRecord {
  std::string offer_id;
  std::string agent_id;
  v1::Offer offer;
  // Set when the offer was accepted.
  std::optional<v1::Assignment> assignment;
  absl::Time closed_at = absl::InfinitePast();
};

// Everything one operation changes, committed atomically with its events.
struct RoutingWrite {
  std::vector<EntryRecord> upserted_entries;
  std::vector<std::string> deleted_entries;  // keys
  std::vector<SettingsRecord> settings;
  std::vector<events::v1::Event> events;
  std::vector<OwedRelease> owed_releases;
  // Releases presence confirmed: each deletes the owed release of its agent
  // and session if that one's holder id is at or below its own.
  std::vector<OwedRelease> settled_releases;
  std::vector<ClosedOfferRecord> closed_offers;
  // Deletes up to this many closed offers closed before
  // `prune_closed_offers_before` (oldest first).
  absl::Time prune_closed_offers_before = absl::InfinitePast();
  int prune_closed_offers_limit = 0;
  // Raises the holder-id ceiling: ids up to it may be issued after a restart
  // only above it.
  std::optional<int64_t> holder_ceiling;
  // Schedules created or replaced (by id), deleted (ids), and the
  // schedule version counter's new value.
  std::vector<v1::Schedule> schedules;
  std::vector<std::string> deleted_schedules;
  std::optional<int64_t> schedule_version;

  bool empty() const {
    return upserted_entries.empty() && deleted_entries.empty() && settings.empty() &&
           events.empty() && owed_releases.empty() && settled_releases.empty() &&
           closed_offers.empty() && prune_closed_offers_limit == 0 &&
           !holder_ceiling.has_value() && schedules.empty() && deleted_schedules.empty() &&
           !schedule_version.has_value();
  }
};

inline std::string EntryKey(v1::EntryKind kind, const std::string& id) {
  return (kind == v1::ENTRY_KIND_COMPLAINT ? "complaint:" : "session:") + id;
}

}  // namespace switchboard::routing
