#include "services/bot/sqlite_event_log.h"

#include "libs/events/outbox.h"

namespace switchboard::bot {

const std::vector<std::string>& BotMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: the event outbox.
      events::kOutboxMigration,
  };
  return *migrations;
}

SqliteEventLog::SqliteEventLog(storage::GroupCommitter* committer, std::string topic,
                               std::function<void()> after_commit)
    : committer_(committer), topic_(std::move(topic)), after_commit_(std::move(after_commit)) {}

void SqliteEventLog::Append(events::v1::Event event, std::function<void(absl::Status)> done) {
  committer_->Submit(
      [this, event = std::move(event)](storage::Database& db) {
        return events::AppendToOutbox(db, topic_, event);
      },
      [this, done = std::move(done)](absl::Status status) {
        if (status.ok() && after_commit_) after_commit_();
        done(status);
      });
}

}  // namespace switchboard::bot
