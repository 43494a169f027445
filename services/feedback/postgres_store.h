#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "libs/storage/postgres.h"
#include "libs/storage/postgres_pool.h"
#include "services/feedback/store.h"

namespace switchboard::feedback {

// The schema migrations of feedback on PostgreSQL, oldest first (includes
// the outbox of libs/events/postgres_outbox.h).
const std::vector<std::string>& PostgresFeedbackMigrations();

// FeedbackStore on a PostgreSQL database that several feedback replicas
// share: ratings, complaints, complaint counts and the event outbox in one
// database, each write and its event in one transaction.
//
// The checks hold across processes because the database enforces them, not
// a lock in this process (see each write in postgres_store.cc): one rating
// per session by a unique constraint (INSERT ... ON CONFLICT DO NOTHING),
// the open-complaint cap by a per-customer row lock, a complaint's
// read-modify-write by SELECT ... FOR UPDATE. A transaction that deadlocks
// or fails serialization is retried whole (`mutate` may then run again, on
// the record as it is then).
//
// Connections: a storage::PostgresPool on `uri`, one per concurrent caller.
//
// Thread-safe; blocking.
class PostgresFeedbackStore : public FeedbackStore {
 public:
  // `uri` is a database migrated with PostgresFeedbackMigrations(); events
  // go to `topic`. `after_commit` (may be empty) runs after each commit that
  // appended an event (this process's relay's Notify).
  PostgresFeedbackStore(std::string uri, std::string topic, std::function<void()> after_commit);
  ~PostgresFeedbackStore() override;

  // OK: the callers' concurrency is bounded by the RPC workers and each
  // write waits for PostgreSQL's own locks, so there is no write queue here
  // to overflow.
  absl::Status Admit() override;

  absl::StatusOr<std::optional<StoredFeedback>> GetFeedback(
      const std::string& session_id) override;
  absl::StatusOr<Inserted> InsertFeedback(const StoredFeedback& feedback,
                                          const events::v1::Event& event) override;
  absl::StatusOr<std::vector<v1::Feedback>> ListFeedback(const FeedbackFilter& filter,
                                                         const ListCursor& cursor,
                                                         int limit) override;
  absl::StatusOr<std::optional<ComplaintRecord>> GetComplaint(
      const std::string& complaint_id) override;
  absl::StatusOr<std::optional<ComplaintRecord>> FindComplaintByRequest(
      const std::string& customer_id, const std::string& request_id) override;
  absl::StatusOr<Filed> InsertComplaint(const ComplaintRecord& record, int max_unresolved,
                                        const events::v1::Event& event) override;
  absl::StatusOr<ComplaintRecord> UpdateComplaint(const std::string& complaint_id,
                                                  const std::string& request_id,
                                                  const Mutation& mutate) override;
  absl::StatusOr<std::vector<ComplaintRecord>> ListComplaints(const ComplaintFilter& filter,
                                                              const ListCursor& cursor,
                                                              int limit) override;
  absl::StatusOr<std::vector<ComplaintRecord>> PendingRouting(int limit) override;
  absl::Status RoutingDone(const std::string& complaint_id, RoutingAction done) override;
  absl::StatusOr<std::array<int64_t, 4>> CountComplaintsByState() override;
  absl::StatusOr<SummaryPage> Summarize(const SummaryQuery& query) override;

 private:
  using Body = storage::PostgresPool::Body;
  // Runs `body` on a pooled connection, outside a transaction.
  absl::Status Read(const Body& body) { return pool_.Run(body); }
  // Runs `body` in a transaction, retried while PostgreSQL aborts it
  // (deadlock, serialization failure); then `after_commit_` if it appended
  // an event (`*appended`, set by `body`).
  absl::Status Write(const Body& body, const bool* appended);

  const std::string topic_;
  const std::function<void()> after_commit_;
  storage::PostgresPool pool_;
};

}  // namespace switchboard::feedback
