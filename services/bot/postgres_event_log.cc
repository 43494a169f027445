#include "services/bot/postgres_event_log.h"

#include "libs/events/postgres_outbox.h"

namespace switchboard::bot {

const std::vector<std::string>& PostgresBotMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: the event outbox.
      events::kPostgresOutboxMigration,
      // 2: dialogue contexts that replicas share (PostgresDialogueStore).
      "CREATE TABLE dialogues("
      "  session_id TEXT COLLATE \"C\" PRIMARY KEY,"
      "  context BYTEA NOT NULL,"
      "  last_used_micros BIGINT);"
      "CREATE INDEX dialogues_by_use ON dialogues(last_used_micros);",
  };
  return *migrations;
}

PostgresEventLog::PostgresEventLog(std::string uri, std::string topic,
                                   std::function<void()> after_commit)
    : topic_(std::move(topic)), after_commit_(std::move(after_commit)), pool_(std::move(uri)) {}

void PostgresEventLog::Append(events::v1::Event event, std::function<void(absl::Status)> done) {
  absl::Status status = pool_.InTransaction([&](storage::PostgresConnection& db) {
    return events::AppendToOutbox(db, topic_, event);
  });
  if (status.ok() && after_commit_) after_commit_();
  done(status);
}

}  // namespace switchboard::bot
