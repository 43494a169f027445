#include "libs/events/postgres_outbox.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/events/outbox.h"

namespace switchboard::events {
namespace {

// The advisory lock class of outbox keys (two-int4 advisory locks never
// collide with the one-bigint lock of PostgresConnection::Migrate).
constexpr int kKeyLockClass = 0x6f627800;  // "obx\0"

// See postgres_outbox.h: the oldest unlocked rows, less those that an
// earlier row of their key, outside this claim (locked by another relay),
// must precede. A CTE read
// twice is materialized once, so both uses see the same claimed ids.
constexpr char kClaim[] = R"sql(
WITH claimed AS MATERIALIZED (
  SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
)
SELECT o.id, o.topic, o.key, o.event_id, o.type, o.value
FROM outbox o JOIN claimed USING (id)
WHERE NOT EXISTS (
  SELECT 1 FROM outbox earlier
  WHERE earlier.key = o.key AND earlier.id < o.id
    AND earlier.id NOT IN (SELECT id FROM claimed))
ORDER BY o.id
)sql";

}  // namespace

const char kPostgresOutboxMigration[] = R"sql(
CREATE TABLE outbox (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic TEXT NOT NULL,
  key TEXT NOT NULL,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  value BYTEA NOT NULL,
  created_at_micros BIGINT NOT NULL
);
CREATE INDEX outbox_key_id ON outbox (key, id);
)sql";

absl::Status AppendToOutbox(storage::PostgresConnection& db, absl::string_view topic,
                            const v1::Event& event) {
  absl::StatusOr<OutboxRow> row = MakeOutboxRow(topic, event);
  if (!row.ok()) return row.status();
  return AppendRowToOutbox(db, *row);
}

absl::Status AppendRowToOutbox(storage::PostgresConnection& db, const OutboxRow& row) {
  auto append = [&]() -> absl::Status {
    // Held until the transaction ends: the next append for this key takes
    // its id only after this one is committed (see postgres_outbox.h).
    // Advisory locks are the database's, not the schema's: the schema is
    // part of the lock, or services sharing a database (whose outboxes use
    // the same keys, session ids) would wait on, and deadlock with, each
    // other.
    absl::Status locked =
        db.Query("SELECT pg_advisory_xact_lock($1::int4, "
                 "hashtext(current_schema()::text || '/' || $2::text))",
                 {kKeyLockClass, row.key})
            .status();
    if (!locked.ok()) return locked;
    return db
        .Query(
            "INSERT INTO outbox(topic, key, event_id, type, value, created_at_micros) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            {row.topic, row.key, row.event_id, row.type,
             storage::PostgresParam::Bytes(row.value), row.created_at_micros})
        .status();
  };
  // Outside a transaction the lock would end with its own statement.
  if (db.InTransactionNow()) return append();
  return db.InTransaction(append);
}

absl::StatusOr<std::vector<OutboxRecord>> PostgresOutboxStore::Claim(int limit) {
  if (absl::Status begun = db_->Begin(); !begun.ok()) return begun;
  absl::StatusOr<storage::PostgresRows> rows = db_->Query(kClaim, {limit});
  if (!rows.ok()) {
    db_->Rollback();
    return rows.status();
  }
  std::vector<OutboxRecord> records;
  records.reserve(rows->size());
  for (int i = 0; i < rows->size(); ++i) {
    OutboxRecord record;
    record.outbox_id = rows->Int(i, 0);
    record.topic = rows->Text(i, 1);
    record.key = rows->Text(i, 2);
    record.event_id = rows->Text(i, 3);
    record.type = rows->Text(i, 4);
    record.value = rows->Bytes(i, 5);
    records.push_back(std::move(record));
  }
  return records;
}

absl::Status PostgresOutboxStore::Finish(const std::vector<int64_t>& published) {
  if (!published.empty()) {
    // A connection lost since Claim fails here (the server has released the
    // claim, and other relays publish the rows again): it is not silently
    // re-established for a delete outside the claim.
    absl::Status deleted =
        db_->Query("DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                   {absl::StrCat("{", absl::StrJoin(published, ","), "}")})
            .status();
    if (!deleted.ok()) {
      db_->Rollback();
      return deleted;
    }
  }
  return db_->Commit();
}

absl::StatusOr<OutboxStore::Stats> PostgresOutboxStore::ReadStats() {
  absl::StatusOr<storage::PostgresRows> rows =
      db_->Query("SELECT COUNT(*), MIN(created_at_micros) FROM outbox");
  if (!rows.ok()) return rows.status();
  Stats stats;
  stats.depth = rows->Int(0, 0);
  if (stats.depth > 0 && !rows->IsNull(0, 1)) {
    stats.oldest = absl::FromUnixMicros(rows->Int(0, 1));
  }
  return stats;
}

}  // namespace switchboard::events
