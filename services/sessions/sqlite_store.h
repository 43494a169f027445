#pragma once

#include <atomic>
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

// Fills the columns migration 4 added (state, agent, creation time,
// category, channel, the pending callback's session) on rows written before
// it, in batches, from each row's serialized session. Rows written since
// carry them already, so a current file costs one indexed probe. Call once
// at start, after migrating and before anything reads or writes.
// DATA_LOSS if a row cannot be parsed.
absl::Status CompleteSessionColumns(storage::Database& db);

// Writes `write` through `db` inside the caller's transaction, exactly as the
// store's writer does (same statements, same columns): for tools that load
// many sessions at once, such as the history benchmark's seeding.
absl::Status ApplyDirect(storage::Database& db, const SessionWrite& write,
                         const std::string& topic);

// Opens (creating if needed) sessions.db: migrations, then
// CompleteSessionColumns. How the server opens its writing connection.
absl::StatusOr<std::unique_ptr<storage::Database>> OpenSessionsDatabase(
    const storage::Database::Options& options);

// SessionStore on SQLite: sessions, their numbered events (messages and state
// changes) and the event outbox in one file. Every write goes through the
// service's GroupCommitter (one fsync for many callers). Reads use
// connections of their own (WAL lets them run while the writer commits),
// leased one per read from a small pool, so that a slow read (a page of
// ListSessions) does not hold up a point lookup. Thread-safe.
//
// Crash tests stop the process (libs/fault) at "sessions.commit.write" (a
// write running inside its open transaction) and "sessions.commit.done"
// (committed, nobody told yet).
class SqliteSessionStore : public SessionStore {
 public:
  // `committer` writes to a database migrated with SessionsMigrations() and
  // completed with CompleteSessionColumns; `readers` (at least one) are
  // other connections to the same file. Events go to `topic`.
  // `after_commit` runs after each successful commit (the relay's Notify).
  SqliteSessionStore(storage::GroupCommitter* committer,
                     std::vector<std::unique_ptr<storage::Database>> readers,
                     std::string topic, std::function<void()> after_commit);

  absl::StatusOr<std::vector<SessionRecord>> LoadOpen() override;
  absl::StatusOr<int64_t> CountClosed() override;
  absl::Status Admit() override;
  void Apply(SessionWrite write, std::function<void(absl::Status)> done) override;
  absl::StatusOr<std::optional<SessionRecord>> ReadSession(
      const std::string& session_id) override;
  absl::StatusOr<std::optional<StoredMessage>> FindMessage(
      const std::string& session_id, const std::string& client_message_id) override;
  absl::StatusOr<std::optional<std::string>> FindCreated(
      const std::string& customer_id, const std::string& request_id) override;
  absl::StatusOr<std::optional<std::string>> FindTokenBinding(
      const std::string& token_id) override;
  absl::StatusOr<std::vector<v1::Session>> ListSessions(const SessionQuery& query) override;
  absl::StatusOr<std::vector<v1::SessionEvent>> ReadEvents(
      const std::string& session_id, int64_t after, int64_t up_to, int limit) override;
  absl::StatusOr<std::vector<v1::Message>> ReadMessages(
      const std::string& session_id, int64_t after, int64_t before,
      bool newest_first, int limit) override;
  absl::StatusOr<std::optional<AttachmentRecord>> FindAttachment(
      const std::string& attachment_id) override;
  absl::StatusOr<std::optional<AttachmentRecord>> FindUpload(
      const std::string& session_id, const std::string& uploader_id,
      const std::string& upload_id) override;
  absl::StatusOr<std::vector<AttachmentRecord>> PendingScans(int limit) override;
  absl::StatusOr<std::pair<int, int64_t>> UploadedSince(const std::string& uploader_id,
                                                       absl::Time since) override;
  absl::StatusOr<std::vector<AttachmentRecord>> ExpiredAttachments(absl::Time closed_before,
                                                                   int limit) override;
  absl::StatusOr<bool> BlobInUse(const std::string& blob_key) override;
  absl::StatusOr<std::vector<AttachmentRecord>> ListAttachments(const std::string& after_id,
                                                                int limit) override;

 private:
  // A reader connection held for one read; returned to the pool on
  // destruction.
  class Lease {
   public:
    explicit Lease(SqliteSessionStore* store);
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    storage::Database& db() { return *db_; }

   private:
    SqliteSessionStore* const store_;
    storage::Database* db_;
  };

  storage::GroupCommitter* const committer_;
  // Set by the first failed write; every later write then fails (see
  // SessionStore::Apply). Read and set on the writer thread.
  std::atomic<bool> failed_{false};
  const std::string topic_;
  const std::function<void()> after_commit_;
  const std::vector<std::unique_ptr<storage::Database>> readers_;
  absl::Mutex readers_mu_;
  std::vector<storage::Database*> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
};

}  // namespace switchboard::sessions
