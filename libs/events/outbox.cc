#include "libs/events/outbox.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace switchboard::events {

const char kOutboxMigration[] = R"sql(
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL,
  key TEXT NOT NULL,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  value BLOB NOT NULL,
  created_at_micros INTEGER NOT NULL
);
)sql";

absl::StatusOr<OutboxRow> MakeOutboxRow(absl::string_view topic,
                                        const v1::Event& event) {
  if (topic.empty()) {
    return absl::InvalidArgumentError("AppendToOutbox: topic is empty");
  }
  if (event.event_id().empty() || event.type().empty() ||
      event.entity_id().empty()) {
    return absl::InvalidArgumentError(
        "AppendToOutbox: the event is not sealed (call events::Seal first)");
  }
  OutboxRow row;
  if (!event.SerializeToString(&row.value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AppendToOutbox: cannot serialize event ", event.event_id()));
  }
  row.topic = std::string(topic);
  row.key = event.entity_id();
  row.event_id = event.event_id();
  row.type = event.type();
  row.created_at_micros = event.occurred_at().seconds() * 1'000'000 +
                          event.occurred_at().nanos() / 1'000;
  return row;
}

absl::Status AppendToOutbox(storage::Database& db, absl::string_view topic,
                            const v1::Event& event) {
  absl::StatusOr<OutboxRow> row = MakeOutboxRow(topic, event);
  if (!row.ok()) return row.status();
  return AppendRowToOutbox(db, *row);
}

absl::Status AppendRowToOutbox(storage::Database& db, const OutboxRow& row) {
  absl::StatusOr<storage::Statement> insert = db.Prepare(
      "INSERT INTO outbox(topic, key, event_id, type, value, "
      "created_at_micros) VALUES (?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  return insert->Bind(1, row.topic)
      .Bind(2, row.key)
      .Bind(3, row.event_id)
      .Bind(4, row.type)
      .BindBlob(5, row.value)
      .Bind(6, row.created_at_micros)
      .Run();
}

}  // namespace switchboard::events
