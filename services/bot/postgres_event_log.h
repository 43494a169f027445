#pragma once

#include <functional>
#include <string>
#include <vector>

#include "libs/storage/postgres_pool.h"
#include "services/bot/event_log.h"

namespace switchboard::bot {

// The schema migrations of the bot on PostgreSQL, oldest first: the outbox
// of libs/events/postgres_outbox.h, then the dialogue contexts of
// PostgresDialogueStore.
const std::vector<std::string>& PostgresBotMigrations();

// EventLog on a PostgreSQL database that several bot replicas share: each
// event is one transaction in the shared outbox, committed on the calling
// thread, after which `done` runs there. Events of one session (their key)
// commit in the order their Appends ran (the outbox's key lock); nothing
// orders different sessions' events, nor needs to. Thread-safe; blocking.
class PostgresEventLog : public EventLog {
 public:
  // `uri` is a database migrated with PostgresBotMigrations(); events go to
  // `topic`. `after_commit` (may be empty) runs after each commit (this
  // process's relay's Notify).
  PostgresEventLog(std::string uri, std::string topic, std::function<void()> after_commit);

  void Append(events::v1::Event event, std::function<void(absl::Status)> done) override;

 private:
  const std::string topic_;
  const std::function<void()> after_commit_;
  storage::PostgresPool pool_;
};

}  // namespace switchboard::bot
