#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "services/feedback/store.h"

namespace switchboard::feedback {

// The schema migrations of feedback.db, oldest first (includes the outbox).
const std::vector<std::string>& FeedbackMigrations();

// FeedbackStore on SQLite: ratings, complaints and the event outbox in one
// file. Writes (and the checks they depend on) run through the service's
// GroupCommitter, one fsync for many callers; reads use a small pool of
// reader connections (WAL lets them run while the writer commits).
//
// GetSummary's figures are SQL aggregates (COUNT, SUM over the score
// columns) over covering indexes on submission time and on agent, so a
// summary reads index entries of the window only, never whole rows.
//
// Thread-safe.
class SqliteFeedbackStore : public FeedbackStore {
 public:
  // `committer` writes to the database at `path`, migrated with
  // FeedbackMigrations(); events go to `topic`. `after_commit` (may be
  // empty) runs after each commit that appended an event (the relay's
  // Notify).
  SqliteFeedbackStore(storage::GroupCommitter* committer, std::string path, std::string topic,
                      std::function<void()> after_commit);
  ~SqliteFeedbackStore() override;

  // The GroupCommitter's Admit.
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

  // SQLite's EXPLAIN QUERY PLAN of the aggregate Summarize runs for `query`'s
  // total, one plan step per line; for tests that check the indexes are used.
  absl::StatusOr<std::string> ExplainSummary(const SummaryQuery& query);

 private:
  // Runs `read` on a reader connection of the pool.
  absl::Status Read(const std::function<absl::Status(storage::Database&)>& read);
  absl::Status Write(const std::function<absl::Status(storage::Database&)>& write,
                     bool appends_event);

  storage::GroupCommitter* const committer_;
  const std::string path_;
  const std::string topic_;
  const std::function<void()> after_commit_;

  absl::Mutex readers_mu_;
  std::vector<std::unique_ptr<storage::Database>> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
};

}  // namespace switchboard::feedback
