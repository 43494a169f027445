#pragma once

#include <functional>
#include <string>
#include <vector>

#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "services/identity/store.h"

namespace switchboard::identity {

// The schema migrations of identity.db, oldest first (includes the outbox).
const std::vector<std::string>& IdentityMigrations();

// IdentityStore on SQLite: customers, challenges, enrollments and the event
// outbox in one file, every write through the service's GroupCommitter.
// Codes are stored only as keyed hashes and TOTP secrets only sealed (the
// logic hands them over that way). Thread-safe.
class SqliteIdentityStore : public IdentityStore {
 public:
  // `committer` writes to a database migrated with IdentityMigrations();
  // events go to `topic`. `after_commit` runs after each successful commit
  // (the outbox relay's Notify).
  SqliteIdentityStore(storage::GroupCommitter* committer, std::string topic,
                      std::function<void()> after_commit);

  absl::StatusOr<Contents> Load() override;
  void Apply(IdentityWrite write, std::function<void(absl::Status)> done) override;

 private:
  storage::GroupCommitter* const committer_;
  const std::string topic_;
  const std::function<void()> after_commit_;
};

}  // namespace switchboard::identity
