#pragma once

#include <functional>
#include <string>
#include <vector>

#include "libs/storage/postgres_group_commit.h"
#include "services/routing/store.h"

namespace switchboard::routing {

// The schema migrations of routing on PostgreSQL, oldest first (includes
// the outbox of libs/events/postgres_outbox.h).
const std::vector<std::string>& PostgresRoutingMigrations();

// RoutingStore on PostgreSQL: the tables of SqliteRoutingStore and the event
// outbox in one database, the same statements (store_sql.h), each write and
// its events in one transaction, every write through a
// PostgresGroupCommitter (one writer connection, writes committed and
// reported in Apply's order, as the router's OrderedCommits needs). Reads
// (Load, LoadSchedules, FindClosedOffer) go through the same writer, so they
// see every write whose `done` has run.
//
// One process only: the router decides offers and assignments in its own
// memory, loaded at start, so two processes on one database would each
// offer from their own copy (see docs/scaling.md); routing_server holds the
// host's one-process lock. Thread-safe.
class PostgresRoutingStore : public RoutingStore {
 public:
  // `committer` writes to a database migrated with
  // PostgresRoutingMigrations(); events go to `topic`. `after_commit` runs
  // after each successful commit (the outbox relay's Notify); may be empty.
  PostgresRoutingStore(storage::PostgresGroupCommitter* committer, std::string topic,
                       std::function<void()> after_commit);

  absl::StatusOr<Contents> Load() override;
  absl::StatusOr<ScheduleContents> LoadSchedules() override;
  absl::Status Admit() const override { return committer_->Admit(); }
  absl::StatusOr<std::optional<ClosedOfferRecord>> FindClosedOffer(
      const std::string& offer_id) override;
  void Apply(RoutingWrite write, std::function<void(absl::Status)> done) override;

 private:
  storage::PostgresGroupCommitter* const committer_;
  const std::string topic_;
  const std::function<void()> after_commit_;
};

}  // namespace switchboard::routing
