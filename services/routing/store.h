#pragma once

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/routing/model.h"

namespace switchboard::routing {

// Durable routing state: queue entries (waiting, offered, assigned) and
// agents' settings. Implementations: SqliteRoutingStore.
class RoutingStore {
 public:
  struct Contents {
    std::vector<EntryRecord> entries;
    std::vector<SettingsRecord> settings;
  };

  virtual ~RoutingStore() = default;

  // Reads everything (at start).
  virtual absl::StatusOr<Contents> Load() = 0;

  // Commits `write` (state and events in one transaction). Writes commit in
  // the order Apply is called; `done` then runs with the outcome, in the
  // same order, on a thread of the store's. `done` must not block.
  virtual void Apply(RoutingWrite write, std::function<void(absl::Status)> done) = 0;
};

}  // namespace switchboard::routing
