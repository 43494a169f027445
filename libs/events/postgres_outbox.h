#pragma once

// The transactional outbox (outbox.h) on PostgreSQL, where several replicas
// of a service write one database and each may run a Relay.
//
// Writers: AppendToOutbox(PostgresConnection&, ...) inside the transaction
// of the change it reports, as on SQLite.
//
// Order per key. Ids come from an identity column when a row is inserted,
// but rows become visible when their transaction commits, so without care
// two replicas appending for one key could commit in the opposite order of
// their ids and a relay could publish the later event first. AppendToOutbox
// therefore takes a transaction-scoped advisory lock on the key before it
// inserts: appends for one key are serialized up to their commits, so per
// key, id order is commit order. Different keys do not wait for each other
// (but for a rare hash collision of two keys, which only serializes them),
// nor do outboxes in different schemas of one database (the lock names the
// schema: services sharing a database key their events by the same ids).
// A transaction that appends for several keys holds several such locks:
// two of them taking the same keys in opposite orders can deadlock, which
// PostgreSQL breaks by aborting one (ABORTED, retry the transaction);
// appending in a fixed key order avoids it.
//
// Relays: PostgresOutboxStore claims rows per key with FOR UPDATE SKIP
// LOCKED, rather than electing a single leader with an advisory lock, so
// that relays share the work (a leader would publish everything while the
// others wait). A claim takes the oldest unlocked rows and keeps those that
// no earlier row of the same key, held by another relay, precedes; the
// others stay for a later pass. The claim is a transaction held open while the sink publishes;
// Finish deletes the confirmed rows and commits. If a relay dies, its locks
// go with its connection, and another relay publishes the rows again (at
// least once, in order per key; a publish still in flight from a relay
// whose connection was cut can land after the new relay's, as with any
// at-least-once delivery).
//
// Threading: like storage::PostgresConnection, one thread at a time per
// connection.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "libs/events/outbox.h"
#include "libs/events/outbox_store.h"
#include "libs/storage/postgres.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::events {

// The migration creating the PostgreSQL outbox table (the columns of
// kOutboxMigration, value as BYTEA) and its (key, id) index for claims; each
// service lists it once among its PostgreSQL migrations (never edit it).
extern const char kPostgresOutboxMigration[];

// Inserts `event` (sealed with Seal) to be published on `topic`, keyed by
// its entity_id, after taking the key's advisory lock (see above). Call it
// inside the transaction of the change it reports; outside one it runs in a
// transaction of its own. INVALID_ARGUMENT as AppendToOutbox on SQLite;
// storage errors as PostgresConnection reports them.
absl::Status AppendToOutbox(storage::PostgresConnection& db, absl::string_view topic,
                            const v1::Event& event);

// Inserts `row` as it is (see AppendRowToOutbox in outbox.h), under its
// key's lock like AppendToOutbox.
absl::Status AppendRowToOutbox(storage::PostgresConnection& db, const OutboxRow& row);

// A relay's OutboxStore on PostgreSQL, over a connection of its own (not the
// writers'), since a claim holds a transaction open while the sink
// publishes.
class PostgresOutboxStore : public OutboxStore {
 public:
  explicit PostgresOutboxStore(std::unique_ptr<storage::PostgresConnection> db)
      : db_(std::move(db)) {}

  absl::StatusOr<std::vector<OutboxRecord>> Claim(int limit) override;
  absl::Status Finish(const std::vector<int64_t>& published) override;
  absl::StatusOr<Stats> ReadStats() override;

 private:
  std::unique_ptr<storage::PostgresConnection> db_;
};

}  // namespace switchboard::events
