#pragma once

#include <functional>
#include <string>
#include <vector>

#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "services/presence/store.h"

namespace switchboard::presence {

// The schema migrations of presence.db, oldest first (includes the outbox).
const std::vector<std::string>& PresenceMigrations();

// PresenceStore on SQLite: agents, reservations and the event outbox in one
// file, every write through the service's GroupCommitter (one fsync for many
// callers). Thread-safe.
class SqlitePresenceStore : public PresenceStore {
 public:
  // `committer` writes to a database migrated with PresenceMigrations();
  // events go to `topic`. `after_commit` runs after each successful commit
  // (the outbox relay's Notify).
  SqlitePresenceStore(storage::GroupCommitter* committer, std::string topic,
                      std::function<void()> after_commit);

  absl::StatusOr<Contents> Load() override;
  absl::Status Admit() const override { return committer_->Admit(); }
  void Apply(PresenceWrite write, std::function<void(absl::Status)> done) override;

 private:
  storage::GroupCommitter* const committer_;
  const std::string topic_;
  const std::function<void()> after_commit_;
};

}  // namespace switchboard::presence
