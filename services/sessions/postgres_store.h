#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/storage/postgres.h"
#include "libs/storage/postgres_group_commit.h"
#include "services/sessions/store.h"

namespace switchboard::sessions {

// The schema migrations of sessions on PostgreSQL, oldest first: the tables
// and indexes of SessionsMigrations() in their final form (serialized
// protos as BYTEA), then the outbox of libs/events/postgres_outbox.h.
const std::vector<std::string>& PostgresSessionsMigrations();

// SessionStore on PostgreSQL, for ONE sessions process: the same tables,
// rows and statements as SqliteSessionStore (store_sql.h), with the same
// Apply contract. Every write goes through the service's
// PostgresGroupCommitter: many callers' writes in one transaction, committed
// in call order, their `done` run in that order on its writer thread. Reads
// use connections of their own (PostgreSQL's snapshots let them run while
// the writer commits), leased one per read from a fixed pool.
//
// Not for several replicas: the sequence numbers of a session's events are
// decided in the process's memory, so two processes writing one database
// would interleave them (see docs/scaling.md for what replicas need).
//
// Crash points as SqliteSessionStore: "sessions.commit.write" and
// "sessions.commit.done". Thread-safe.
class PostgresSessionStore : public SessionStore {
 public:
  // `committer` writes to a database migrated with
  // PostgresSessionsMigrations(); `readers` (at least one) are other
  // connections to it. Events go to `topic`. `after_commit` runs after each
  // successful commit (the relay's Notify).
  PostgresSessionStore(storage::PostgresGroupCommitter* committer,
                       std::vector<std::unique_ptr<storage::PostgresConnection>> readers,
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
  // Runs `sql` ('?' marks) with `params` on a leased reader connection.
  absl::StatusOr<storage::PostgresRows> Query(absl::string_view sql,
                                              const std::vector<storage::PostgresParam>& params);

  storage::PostgresGroupCommitter* const committer_;
  // Set by the first failed write; every later write then fails (see
  // SessionStore::Apply). Read and set on the writer thread.
  std::atomic<bool> failed_{false};
  const std::string topic_;
  const std::function<void()> after_commit_;
  const std::vector<std::unique_ptr<storage::PostgresConnection>> readers_;
  absl::Mutex readers_mu_;
  std::vector<storage::PostgresConnection*> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
};

}  // namespace switchboard::sessions
