#include "services/feedback/metrics.h"

#include <cctype>
#include <string>

namespace switchboard::feedback {

FeedbackMetrics::FeedbackMetrics(prometheus::Registry& registry) {
  auto& rating = prometheus::BuildHistogram()
                     .Name("switchboard_feedback_rating")
                     .Help("Scores of accepted ratings, 1 (very poor) to 5 (excellent), one "
                           "observation per rating and dimension: response_speed, "
                           "professionalism, problem_resolution, overall_satisfaction "
                           "(CSAT; 4 and 5 count as satisfied).")
                     .Register(registry);
  const prometheus::Histogram::BucketBoundaries scores = {1, 2, 3, 4, 5};
  response_speed = &rating.Add({{"dimension", "response_speed"}}, scores);
  professionalism = &rating.Add({{"dimension", "professionalism"}}, scores);
  problem_resolution = &rating.Add({{"dimension", "problem_resolution"}}, scores);
  overall_satisfaction = &rating.Add({{"dimension", "overall_satisfaction"}}, scores);

  auto& rejected = prometheus::BuildCounter()
                       .Name("switchboard_feedback_ratings_rejected_total")
                       .Help("Ratings refused after the sessions check, by reason: "
                             "not_resolved (the session was never resolved), duplicate (the "
                             "session already has a different rating).")
                       .Register(registry);
  rejected_not_resolved = &rejected.Add({{"reason", "not_resolved"}});
  rejected_duplicate = &rejected.Add({{"reason", "duplicate"}});

  auto& complaints_family =
      prometheus::BuildGauge()
          .Name("switchboard_feedback_complaints")
          .Help("Complaints in each state now: open (waiting for a supervisor), "
                "acknowledged (a supervisor has it), resolved (handled; final).")
          .Register(registry);
  for (int s = v1::COMPLAINT_STATE_OPEN; s <= v1::COMPLAINT_STATE_RESOLVED; ++s) {
    std::string name = v1::ComplaintState_Name(s).substr(sizeof("COMPLAINT_STATE_") - 1);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    complaints_by_state[s] = &complaints_family.Add({{"state", name}});
  }
  complaints_by_state[v1::COMPLAINT_STATE_UNSPECIFIED] =
      complaints_by_state[v1::COMPLAINT_STATE_OPEN];
  complaints_filed = &prometheus::BuildCounter()
                          .Name("switchboard_feedback_complaints_filed_total")
                          .Help("Complaints filed, not counting retried requests.")
                          .Register(registry)
                          .Add({});

  auto& unavailable = prometheus::BuildCounter()
                          .Name("switchboard_feedback_peer_unavailable_total")
                          .Help("Calls to a peer service (sessions, routing) that failed because "
                                "it was down, too slow or refused the call; a rating or "
                                "complaint needing sessions is then refused with UNAVAILABLE, "
                                "a routing call is retried later.")
                          .Register(registry);
  sessions_unavailable = &unavailable.Add({{"peer", "sessions"}});
  routing_unavailable = &unavailable.Add({{"peer", "routing"}});
  routing_pending = &prometheus::BuildGauge()
                         .Name("switchboard_feedback_routing_pending")
                         .Help("Complaints whose enqueue or cancel has not reached routing "
                               "yet (committed, retried in the background), as of the last "
                               "sweep.")
                         .Register(registry)
                         .Add({});
}

}  // namespace switchboard::feedback
