#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "services/sessions/store.h"

namespace switchboard::sessions {

// The schema migrations of sessions.db, oldest first (includes the outbox).
const std::vector<std::string>& SessionsMigrations();

// SessionStore on SQLite: sessions, their numbered events (messages and state
// changes) and the event outbox in one file. Every write goes through the
// service's GroupCommitter (one fsync for many callers); reads use a
// connection of their own (WAL lets them run while the writer commits) and
// see committed data only. Thread-safe.
class SqliteSessionStore : public SessionStore {
 public:
  // `committer` writes to a database migrated with SessionsMigrations();
  // `reader` is another connection to the same file. Events go to `topic`.
  // `after_commit` runs after each successful commit (the relay's Notify).
  SqliteSessionStore(storage::GroupCommitter* committer,
                     std::unique_ptr<storage::Database> reader, std::string topic,
                     std::function<void()> after_commit);

  absl::StatusOr<Contents> Load() override;
  void Apply(SessionWrite write, std::function<void(absl::Status)> done) override;
  absl::StatusOr<std::vector<v1::SessionEvent>> ReadEvents(
      const std::string& session_id, int64_t after, int64_t up_to, int limit) override;
  absl::StatusOr<std::vector<v1::Message>> ReadMessages(
      const std::string& session_id, int64_t after, int64_t before,
      bool newest_first, int limit) override;

 private:
  storage::GroupCommitter* const committer_;
  const std::string topic_;
  const std::function<void()> after_commit_;
  absl::Mutex reader_mu_;
  std::unique_ptr<storage::Database> reader_ ABSL_GUARDED_BY(reader_mu_);
};

}  // namespace switchboard::sessions
