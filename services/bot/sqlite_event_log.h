#pragma once

#include <functional>
#include <string>
#include <vector>

#include "libs/storage/group_commit.h"
#include "services/bot/event_log.h"

namespace switchboard::bot {

// The schema migrations of bot.db, oldest first (only the outbox).
const std::vector<std::string>& BotMigrations();

// EventLog on SQLite: events go to the outbox of bot.db through the
// service's GroupCommitter (one fsync for many turns). Thread-safe.
class SqliteEventLog : public EventLog {
 public:
  // `committer` writes to a database migrated with BotMigrations(); events
  // go to `topic`. `after_commit` runs after each successful commit (the
  // outbox relay's Notify).
  SqliteEventLog(storage::GroupCommitter* committer, std::string topic,
                 std::function<void()> after_commit);

  void Append(events::v1::Event event, std::function<void(absl::Status)> done) override;

 private:
  storage::GroupCommitter* const committer_;
  const std::string topic_;
  const std::function<void()> after_commit_;
};

}  // namespace switchboard::bot
