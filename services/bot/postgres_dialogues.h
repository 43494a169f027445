#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "libs/storage/postgres_pool.h"
#include "services/bot/dialogues.h"

namespace switchboard::bot {

// Dialogue contexts in a PostgreSQL table that bot replicas share (migration
// 2 of PostgresBotMigrations), so that a session's turns may land on any
// replica: a follow-up keeps its topic, the not-understood turns that hand
// a customer over count across replicas, and a retried turn gets its first
// answer wherever it lands.
//
// Each With is one transaction: the session's row is created if missing
// and locked (an upsert that returns it), `fn` decides on the decoded
// context, the new context is written and, from WithRecord, the turn's
// event appended to the bot's outbox before the commit. Turns of one
// session thus take turns on its row, whichever replica runs them, none
// overwrites another's context, and a turn's context and event commit
// together. A row idle past `idle_expiry` counts as missing and is deleted
// by ExpireIdle, which any replica may run. Thread-safe; blocking (a
// connection per concurrent caller).
class PostgresDialogueStore : public DialogueStore {
 public:
  // `uri` is a database migrated with PostgresBotMigrations(); events go
  // to `topic`. `after_commit` (may be empty) runs after each commit that
  // appended an event (this process's relay's Notify).
  PostgresDialogueStore(std::string uri, absl::Duration idle_expiry, std::string topic,
                        std::function<void()> after_commit);

  absl::Status WithRecord(const std::string& session_id, absl::Time now,
                          absl::FunctionRef<void(Dialogue& dialogue, bool existed)> fn,
                          const events::v1::Event* record) override;
  bool records_events() const override { return true; }
  absl::StatusOr<bool> Erase(const std::string& session_id, absl::Time now) override;
  absl::StatusOr<int> ExpireIdle(absl::Time now) override;
  // Rows in the table (every replica's) as of the last ExpireIdle.
  int size() const override { return held_.load(); }

 private:
  const absl::Duration idle_expiry_;
  const std::string topic_;
  const std::function<void()> after_commit_;
  storage::PostgresPool pool_;
  std::atomic<int> held_{0};
};

}  // namespace switchboard::bot
