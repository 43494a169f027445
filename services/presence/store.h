#pragma once

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "services/presence/model.h"

namespace switchboard::presence {

// The error of a write whose capacity guard does not hold (both stores).
inline absl::Status CapacityExceeded(const CapacityGuard& guard) {
  return absl::FailedPreconditionError(absl::StrCat(
      "agent ", guard.agent_id, " would hold more than ", guard.capacity, " ",
      common::v1::Channel_Name(guard.channel), " sessions; the write was not committed"));
}

// Durable presence state. Implementations: SqlitePresenceStore (the
// default) and PostgresPresenceStore (--database=postgresql://...).
class PresenceStore {
 public:
  struct Contents {
    std::vector<AgentRecord> agents;
    std::vector<ReservationRecord> reservations;
  };

  virtual ~PresenceStore() = default;

  // Reads everything (at start). Presence's state is open work only: agents
  // are staff (bounded by headcount) and reservations are bounded by their
  // capacities.
  virtual absl::StatusOr<Contents> Load() = 0;

  // The admission check for a write a client asked for: OK, or
  // RESOURCE_EXHAUSTED with a retry-after when the store's backlog is full.
  // Called before the write is decided; Apply itself never refuses.
  virtual absl::Status Admit() const = 0;

  // Commits `write` (state and events in one transaction). Writes commit in
  // the order Apply is called; `done` then runs with the outcome, in the
  // same order, on a thread of the store's. `done` must not block. A write
  // whose capacity guard does not hold commits nothing and fails with
  // FAILED_PRECONDITION naming the agent and channel.
  virtual void Apply(PresenceWrite write,
                     std::function<void(absl::Status)> done) = 0;
};

}  // namespace switchboard::presence
