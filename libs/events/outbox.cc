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

absl::Status AppendToOutbox(storage::Database& db, absl::string_view topic,
                            const v1::Event& event) {
  if (topic.empty()) {
    return absl::InvalidArgumentError("AppendToOutbox: topic is empty");
  }
  if (event.event_id().empty() || event.type().empty() ||
      event.entity_id().empty()) {
    return absl::InvalidArgumentError(
        "AppendToOutbox: the event is not sealed (call events::Seal first)");
  }
  std::string value;
  if (!event.SerializeToString(&value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AppendToOutbox: cannot serialize event ", event.event_id()));
  }
  const int64_t created_at_micros =
      event.occurred_at().seconds() * 1'000'000 +
      event.occurred_at().nanos() / 1'000;

  absl::StatusOr<storage::Statement> insert = db.Prepare(
      "INSERT INTO outbox(topic, key, event_id, type, value, "
      "created_at_micros) VALUES (?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  return insert->Bind(1, topic)
      .Bind(2, event.entity_id())
      .Bind(3, event.event_id())
      .Bind(4, event.type())
      .BindBlob(5, value)
      .Bind(6, created_at_micros)
      .Run();
}

}  // namespace switchboard::events
