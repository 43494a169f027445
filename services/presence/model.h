#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "switchboard/events/v1/event.pb.h"
#include "switchboard/presence/v1/presence_service.pb.h"

namespace switchboard::presence {

// An agent as the presence logic keeps it. The profile is the API's message:
// it is what supervisors set, what is stored, and what events carry; the
// `load` of each of its capacities is kept current, and each `capacity` is
// at most its `max_capacity`.
struct AgentRecord {
  std::string agent_id;
  v1::AgentStatus status = v1::AGENT_STATUS_OFFLINE;
  v1::AgentProfile profile;
  // The supervisor who last set the profile ("" if none did) and when.
  std::string profile_set_by;
  absl::Time profile_set_at = absl::InfinitePast();
  // InfinitePast while OFFLINE.
  absl::Time lease_expires_at = absl::InfinitePast();
  absl::Time status_changed_at = absl::UnixEpoch();
  absl::Time idle_since = absl::UnixEpoch();
  int64_t revision = 0;
};

// Capacity held at an agent for one session.
struct ReservationRecord {
  std::string agent_id;
  std::string session_id;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  bool assigned = false;
  absl::Time created_at = absl::UnixEpoch();
  // Ignored once assigned.
  absl::Time expires_at = absl::InfiniteFuture();
  // The caller's id of the offer or assignment holding it (0: none given);
  // see ReconcileReservations in presence_service.proto.
  int64_t holder_id = 0;
};

// A committed change that watchers see.
struct AgentChange {
  AgentRecord agent;
  v1::AgentStatus previous_status = v1::AGENT_STATUS_UNSPECIFIED;
  v1::ChangeReason reason = v1::CHANGE_REASON_UNSPECIFIED;
};

// A new reservation's precondition, which the store checks in the write's
// transaction, under the agent's row lock on PostgreSQL: once the write's
// reservations are in, the agent holds at most `capacity` on `channel`.
// The presence logic decides the same in memory; the store's check keeps
// the limit when its memory is not the only writer (two store instances on
// one database).
struct CapacityGuard {
  std::string agent_id;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  int capacity = 0;
};

// Everything one operation changes, committed atomically with its events.
struct PresenceWrite {
  std::vector<AgentRecord> agents;
  std::vector<ReservationRecord> upserted_reservations;
  std::vector<ReservationRecord> deleted_reservations;
  std::vector<events::v1::Event> events;
  // Checked after the changes above; one that fails fails the whole write.
  std::vector<CapacityGuard> capacity_guards;

  bool empty() const {
    return agents.empty() && upserted_reservations.empty() &&
           deleted_reservations.empty() && events.empty();
  }
};

}  // namespace switchboard::presence
