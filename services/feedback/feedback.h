#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/clock/clock.h"
#include "services/feedback/metrics.h"
#include "services/feedback/peers.h"
#include "services/feedback/store.h"
#include "switchboard/feedback/v1/feedback_service.pb.h"

namespace switchboard::feedback {

struct FeedbackOptions {
  // A customer may have at most this many complaints not yet RESOLVED.
  int max_unresolved_complaints = 10;
  // Complaints handed to routing per sweep.
  int routing_batch = 100;
};

// Who is calling, as the adapter authenticated them.
struct Caller {
  auth::Role role = auth::Role::kCustomer;
  std::string id;
};

// The feedback logic: ratings of resolved sessions, complaints and their
// lifecycle, and the aggregates supervisors read. The rules are those of
// feedback_service.proto; each method's errors are the RPC's.
//
// Nothing is kept in memory: every check that must be atomic (one rating per
// session, open complaints per customer, a complaint's state) runs inside
// the store's transaction, so that any number of replicas and threads can
// serve at once.
//
// Retries: a client write is admitted (FeedbackStore::Admit) before anything
// is decided, so a full write queue answers RESOURCE_EXHAUSTED with a
// retry-after at once. A retried write (same request id, or the same rating)
// finds the first one inside its own transaction, queued after the first's:
// it is answered OK only once the first is durable, and if the first commit
// failed, the retry stores its own.
//
// Peers: a rating or a complaint about a session is accepted only after
// sessions confirms the session (its customer, that it was resolved); if
// sessions cannot answer, the call fails with UNAVAILABLE and nothing is
// stored. Routing is told about complaints after they are committed: the
// complaint row carries a durable "owes routing an enqueue/cancel" mark that
// SyncRouting clears once routing acknowledges, so a complaint filed while
// routing is down is queued when it comes back and is never lost.
//
// Thread-safe. Blocking (store and peer calls): call from worker threads.
class Feedback {
 public:
  // None owned; all must outlive this object. `routing_kick` (may be empty)
  // is called after a commit that leaves work for SyncRouting, so that the
  // sweeper runs at once instead of at its next tick.
  Feedback(FeedbackStore* store, SessionsPort* sessions, RoutingPort* routing,
           Clock* clock, FeedbackMetrics* metrics, FeedbackOptions options,
           std::function<void()> routing_kick = nullptr);

  // Sets the complaint gauges from the store. Call once at start.
  absl::Status Load();

  // `deadline` bounds the calls to sessions (the incoming call's deadline).
  absl::StatusOr<v1::SubmitFeedbackResponse> SubmitFeedback(
      const Caller& caller, const v1::SubmitFeedbackRequest& request, absl::Time deadline);
  absl::StatusOr<v1::GetFeedbackResponse> GetFeedback(const Caller& caller,
                                                      const v1::GetFeedbackRequest& request);
  absl::StatusOr<v1::ListFeedbackResponse> ListFeedback(
      const Caller& caller, const v1::ListFeedbackRequest& request);

  absl::StatusOr<v1::FileComplaintResponse> FileComplaint(
      const Caller& caller, const v1::FileComplaintRequest& request, absl::Time deadline);
  absl::StatusOr<v1::UpdateComplaintResponse> UpdateComplaint(
      const Caller& caller, const v1::UpdateComplaintRequest& request);
  absl::StatusOr<v1::GetComplaintResponse> GetComplaint(
      const Caller& caller, const v1::GetComplaintRequest& request);
  absl::StatusOr<v1::ListComplaintsResponse> ListComplaints(
      const Caller& caller, const v1::ListComplaintsRequest& request);

  absl::StatusOr<v1::GetSummaryResponse> GetSummary(const Caller& caller,
                                                    const v1::GetSummaryRequest& request);

  // Hands routing the enqueues and cancels it is owed (oldest first, up to
  // routing_batch), clearing each mark once routing acknowledges. Stops at
  // the first failure that means routing is unreachable (the rest waits for
  // the next sweep). Returns how many were delivered. Called periodically
  // (and on kicks) by the service.
  absl::StatusOr<int> SyncRouting();

 private:
  absl::StatusOr<SessionInfo> CheckedSession(const std::string& session_id,
                                             const std::string& customer_id,
                                             absl::Time deadline);
  void Kick();

  FeedbackStore* const store_;
  SessionsPort* const sessions_;
  RoutingPort* const routing_;
  Clock* const clock_;
  FeedbackMetrics* const metrics_;
  const FeedbackOptions options_;
  const std::function<void()> routing_kick_;
};

// What a caller may see of a complaint: customers get notes and the
// assignee cleared.
v1::Complaint ComplaintView(const Caller& caller, const v1::Complaint& complaint);

}  // namespace switchboard::feedback
