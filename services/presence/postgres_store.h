#pragma once

#include <functional>
#include <string>
#include <vector>

#include "libs/storage/postgres_group_commit.h"
#include "services/presence/store.h"

namespace switchboard::presence {

// The schema migrations of presence on PostgreSQL, oldest first (includes
// the outbox of libs/events/postgres_outbox.h).
const std::vector<std::string>& PostgresPresenceMigrations();

// PresenceStore on PostgreSQL: the tables of SqlitePresenceStore and the
// event outbox in one database, each write and its events in one
// transaction, every write through a PostgresGroupCommitter (one writer
// connection, writes committed and reported in Apply's order, as the
// presence logic's OrderedCommits needs).
//
// One process only: the presence logic decides in its own memory, loaded at
// start, so two processes on one database would each trust their own copy
// (see docs/scaling.md). Thread-safe.
class PostgresPresenceStore : public PresenceStore {
 public:
  // `committer` writes to a database migrated with
  // PostgresPresenceMigrations(); events go to `topic`. `after_commit` runs
  // after each successful commit (the outbox relay's Notify).
  PostgresPresenceStore(storage::PostgresGroupCommitter* committer, std::string topic,
                        std::function<void()> after_commit);

  absl::StatusOr<Contents> Load() override;
  absl::Status Admit() const override { return committer_->Admit(); }
  void Apply(PresenceWrite write, std::function<void(absl::Status)> done) override;

 private:
  storage::PostgresGroupCommitter* const committer_;
  const std::string topic_;
  const std::function<void()> after_commit_;
};

}  // namespace switchboard::presence
