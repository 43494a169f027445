#include "libs/events/sqlite_outbox_store.h"

#include <algorithm>
#include <string>
#include <utility>

namespace switchboard::events {

absl::StatusOr<std::vector<OutboxRecord>> SqliteOutboxStore::Claim(int limit) {
  absl::StatusOr<storage::Statement> select = reader_->Prepare(
      "SELECT id, topic, key, event_id, type, value FROM outbox "
      "ORDER BY id LIMIT ?");
  if (!select.ok()) return select.status();
  select->Bind(1, static_cast<int64_t>(std::max(1, limit)));
  std::vector<OutboxRecord> records;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return records;
    OutboxRecord record;
    record.outbox_id = select->ColumnInt(0);
    record.topic = select->ColumnText(1);
    record.key = select->ColumnText(2);
    record.event_id = select->ColumnText(3);
    record.type = select->ColumnText(4);
    record.value = select->ColumnBlob(5);
    records.push_back(std::move(record));
  }
}

absl::Status SqliteOutboxStore::Finish(const std::vector<int64_t>& published) {
  if (published.empty()) return absl::OkStatus();
  auto remove_published = [&published](storage::Database& db) -> absl::Status {
    absl::StatusOr<storage::Statement> remove =
        db.Prepare("DELETE FROM outbox WHERE id = ?");
    if (!remove.ok()) return remove.status();
    for (int64_t id : published) {
      absl::Status status = remove->Bind(1, id).Run();
      if (!status.ok()) return status;
      remove->Reset();
    }
    return absl::OkStatus();
  };
  // Deferred: a delete an OS crash undoes only publishes those events again.
  return committer_->Commit(remove_published, storage::GroupCommitter::Durability::kDeferred);
}

absl::StatusOr<OutboxStore::Stats> SqliteOutboxStore::ReadStats() {
  absl::StatusOr<storage::Statement> stats =
      reader_->Prepare("SELECT COUNT(*), MIN(created_at_micros) FROM outbox");
  if (!stats.ok()) return stats.status();
  absl::StatusOr<bool> row = stats->Step();
  if (!row.ok()) return row.status();
  Stats out;
  if (*row) {
    out.depth = stats->ColumnInt(0);
    if (out.depth > 0 && !stats->ColumnIsNull(1)) {
      out.oldest = absl::FromUnixMicros(stats->ColumnInt(1));
    }
  }
  stats->Reset();
  return out;
}

}  // namespace switchboard::events
