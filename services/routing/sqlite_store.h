#pragma once

#include <functional>
#include <string>
#include <vector>

#include "libs/storage/group_commit.h"
#include "services/routing/store.h"

namespace switchboard::routing {

// The schema migrations of routing.db, oldest first (includes the outbox).
const std::vector<std::string>& RoutingMigrations();

// RoutingStore on SQLite: entries, settings, owed releases, closed offers
// (indexed by time for pruning), schedules and the event outbox in one file, every
// write through the service's GroupCommitter. Thread-safe.
class SqliteRoutingStore : public RoutingStore {
 public:
  // `committer` writes to a database migrated with RoutingMigrations();
  // events go to `topic`. `after_commit` runs after each successful commit
  // (the outbox relay's Notify); may be empty.
  SqliteRoutingStore(storage::GroupCommitter* committer, std::string topic,
                     std::function<void()> after_commit);

  absl::StatusOr<Contents> Load() override;
  absl::StatusOr<ScheduleContents> LoadSchedules() override;
  absl::Status Admit() const override { return committer_->Admit(); }
  absl::StatusOr<std::optional<ClosedOfferRecord>> FindClosedOffer(
      const std::string& offer_id) override;
  void Apply(RoutingWrite write, std::function<void(absl::Status)> done) override;

 private:
  storage::GroupCommitter* const committer_;
  const std::string topic_;
  const std::function<void()> after_commit_;
};

}  // namespace switchboard::routing
