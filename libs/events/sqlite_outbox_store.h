#pragma once

// The OutboxStore of a service's SQLite file: reads through a connection of
// its own and deletes through the service's GroupCommitter (the file's only
// writer). One relay per file (one process owns it), so a claim needs no
// locking: Claim reads the oldest rows, Finish deletes the published ones.

#include <cstdint>
#include <memory>
#include <vector>

#include "libs/events/outbox_store.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"

namespace switchboard::events {

class SqliteOutboxStore : public OutboxStore {
 public:
  // `reader` is a connection of its own to the service's database file
  // (with kOutboxMigration applied); `committer` writes to the same file,
  // is not owned and must outlive the store.
  SqliteOutboxStore(std::unique_ptr<storage::Database> reader,
                    storage::GroupCommitter* committer)
      : reader_(std::move(reader)), committer_(committer) {}

  absl::StatusOr<std::vector<OutboxRecord>> Claim(int limit) override;
  absl::Status Finish(const std::vector<int64_t>& published) override;
  absl::StatusOr<Stats> ReadStats() override;

 private:
  std::unique_ptr<storage::Database> reader_;
  storage::GroupCommitter* const committer_;
};

}  // namespace switchboard::events
