#pragma once

// The transactional outbox: a service writes each event into its own
// database in the same transaction as the state change it reports, so that
// the change and its event commit together or not at all. The Relay
// (relay.h) later publishes the rows and deletes them.
//
// Example (inside a GroupCommitter write):
//   [&](storage::Database& db) -> absl::Status {
//     absl::Status s = store.SaveAgent(db, agent);
//     if (!s.ok()) return s;
//     return AppendToOutbox(db, TopicFor("presence"), event);  // sealed
//   }
//
// Threading: like storage::Database, one thread at a time per connection.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/storage/database.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::events {

// The migration creating the outbox table; each service lists it once among
// its storage migrations (never edit it: add a new migration instead).
//   id                 increasing (AUTOINCREMENT: never reused), the
//                      publishing order
//   topic, key         where the event goes and its record key (entity_id)
//   event_id, type     copied from the event, for logs and consumers' headers
//   value              the serialized v1::Event
//   created_at_micros  the event's occurred_at, in Unix microseconds; for
//                      the outbox age metric
extern const char kOutboxMigration[];

// Inserts `event` (already sealed with Seal) into the outbox, to be
// published on `topic` keyed by its entity_id. Call it inside the
// transaction (GroupCommitter write or Database::InTransaction) of the
// change it reports. INVALID_ARGUMENT if the event is not sealed (no
// event_id, type or entity_id) or the topic is empty; storage errors as
// storage::Database reports them.
absl::Status AppendToOutbox(storage::Database& db, absl::string_view topic,
                            const v1::Event& event);

// One outbox row as both backends store it (this file's SQLite table and
// postgres_outbox.h's).
struct OutboxRow {
  std::string topic;
  std::string key;
  std::string event_id;
  std::string type;
  std::string value;
  int64_t created_at_micros = 0;
};

// The row for `event` on `topic`, with AppendToOutbox's checks
// (INVALID_ARGUMENT for an unsealed event or an empty topic).
absl::StatusOr<OutboxRow> MakeOutboxRow(absl::string_view topic,
                                        const v1::Event& event);

// Inserts `row` as it is: for rows that are not Events (e.g. identity's
// sealed code deliveries). As AppendToOutbox, inside the write's
// transaction.
absl::Status AppendRowToOutbox(storage::Database& db, const OutboxRow& row);

}  // namespace switchboard::events
