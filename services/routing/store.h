#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/routing/model.h"

namespace switchboard::routing {

// Durable routing state: queue entries (waiting, offered, assigned), agents'
// settings, releases owed to presence, the holder-id ceiling, closed
// offers (for idempotent replies) and schedules. Implementations:
// SqliteRoutingStore, PostgresRoutingStore.
class RoutingStore {
 public:
  // Open work only: closed offers stay on disk (FindClosedOffer).
  struct Contents {
    std::vector<EntryRecord> entries;
    std::vector<SettingsRecord> settings;
    std::vector<OwedRelease> owed_releases;
    // 0 when none was ever written.
    int64_t holder_ceiling = 0;
  };

  // Schedules (hours of operation).
  struct ScheduleContents {
    std::vector<v1::Schedule> schedules;
    // The schedule version counter; 0 when no schedule was ever written.
    int64_t version = 0;
  };

  virtual ~RoutingStore() = default;

  // Reads the open work (at start).
  virtual absl::StatusOr<Contents> Load() = 0;

  // Reads the schedules (at start).
  virtual absl::StatusOr<ScheduleContents> LoadSchedules() = 0;

  // The admission check for a write a client asked for: OK, or
  // RESOURCE_EXHAUSTED with a retry-after when the store's backlog is full.
  // Called before the write is decided; Apply itself never refuses.
  virtual absl::Status Admit() const = 0;

  // The closed offer `offer_id`, if it was closed within the retention
  // period; nullopt if not. Reflects every write whose `done` has run.
  // Blocking.
  virtual absl::StatusOr<std::optional<ClosedOfferRecord>> FindClosedOffer(
      const std::string& offer_id) = 0;

  // Commits `write` (state and events in one transaction). Writes commit in
  // the order Apply is called; `done` then runs with the outcome, in the
  // same order, on a thread of the store's. `done` must not block.
  virtual void Apply(RoutingWrite write, std::function<void(absl::Status)> done) = 0;
};

}  // namespace switchboard::routing
