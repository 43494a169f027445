#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/feedback/model.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::feedback {

// Durable ratings and complaints. Every write commits its state change and
// its event (outbox) in one transaction, and its checks (one rating per
// session, open complaints per customer, a complaint's current state) run
// inside that transaction, so that concurrent callers cannot both pass them.
// Implementations: SqliteFeedbackStore, PostgresFeedbackStore (shared by
// replicas). Thread-safe; blocking (call from worker threads, never gRPC
// callback threads).
class FeedbackStore {
 public:
  virtual ~FeedbackStore() = default;

  // The admission check of a write a client asked for: OK, or
  // RESOURCE_EXHAUSTED with a retry-after when the store's write queue is
  // full. Call it before deciding the write (before any peer call).
  virtual absl::Status Admit() = 0;

  // The rating of `session_id`; nullopt if there is none.
  virtual absl::StatusOr<std::optional<StoredFeedback>> GetFeedback(
      const std::string& session_id) = 0;

  struct Inserted {
    StoredFeedback stored;  // `feedback` itself, or the session's first rating
    bool inserted = false;  // false: the session already had a rating
  };
  // Stores `feedback` with `event` unless its session already has a rating,
  // in which case nothing is written and the existing rating is returned.
  virtual absl::StatusOr<Inserted> InsertFeedback(const StoredFeedback& feedback,
                                                  const events::v1::Event& event) = 0;

  // Ratings matching `filter`, newest first (by submission time, then id),
  // after `cursor`, at most `limit`.
  virtual absl::StatusOr<std::vector<v1::Feedback>> ListFeedback(
      const FeedbackFilter& filter, const ListCursor& cursor, int limit) = 0;

  // The complaint; nullopt if unknown.
  virtual absl::StatusOr<std::optional<ComplaintRecord>> GetComplaint(
      const std::string& complaint_id) = 0;

  // The complaint `customer_id` filed with `request_id`; nullopt if none.
  virtual absl::StatusOr<std::optional<ComplaintRecord>> FindComplaintByRequest(
      const std::string& customer_id, const std::string& request_id) = 0;

  struct Filed {
    ComplaintRecord record;  // the new one, or the first with its request id
    bool inserted = false;
  };
  // Stores `record` (OPEN, routing kEnqueue) with `event`, unless the
  // customer already filed a complaint with the same non-empty request id
  // (returned, nothing written). ResourceExhausted when the customer
  // already has `max_unresolved` complaints not RESOLVED.
  virtual absl::StatusOr<Filed> InsertComplaint(const ComplaintRecord& record,
                                                int max_unresolved,
                                                const events::v1::Event& event) = 0;

  // Changes a complaint: returns the event to append, or nullopt when
  // nothing changes (a replayed request). `seen` tells whether the
  // request id was already applied to this complaint.
  using Mutation = std::function<absl::StatusOr<std::optional<events::v1::Event>>(
      ComplaintRecord& record, bool seen)>;
  // Read-modify-write of one complaint in one transaction: runs `mutate` on
  // the current record (NotFound if unknown); if it returns an event, saves
  // the record, the event and `request_id` (when not empty) as seen; an
  // error from `mutate` writes nothing. Returns the record as it is after.
  virtual absl::StatusOr<ComplaintRecord> UpdateComplaint(
      const std::string& complaint_id, const std::string& request_id,
      const Mutation& mutate) = 0;

  // Complaints matching `filter` by filing time (newest first unless
  // filter.oldest_first, then id), after `cursor`, at most `limit`.
  virtual absl::StatusOr<std::vector<ComplaintRecord>> ListComplaints(
      const ComplaintFilter& filter, const ListCursor& cursor, int limit) = 0;

  // Complaints owing routing a call, oldest first, at most `limit`.
  virtual absl::StatusOr<std::vector<ComplaintRecord>> PendingRouting(int limit) = 0;
  // Clears the routing action of `complaint_id` if it is still `done` (an
  // update may have replaced it meanwhile).
  virtual absl::Status RoutingDone(const std::string& complaint_id,
                                   RoutingAction done) = 0;

  // Complaints in each state now (index: v1::ComplaintState), for metrics;
  // reads kept counts, never the complaints themselves.
  virtual absl::StatusOr<std::array<int64_t, 4>> CountComplaintsByState() = 0;

  // GetSummary's figures, with SQL aggregates.
  virtual absl::StatusOr<SummaryPage> Summarize(const SummaryQuery& query) = 0;
};

}  // namespace switchboard::feedback
