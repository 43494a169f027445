#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "switchboard/common/v1/common.pb.h"
#include "switchboard/feedback/v1/feedback_service.pb.h"

namespace switchboard::feedback {

// A session as feedback needs it from the sessions service.
struct SessionInfo {
  std::string session_id;
  std::string customer_id;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
  // RESOLVED or CLOSED after being resolved.
  bool resolved = false;
  // Still RESOLVED (not yet CLOSED): feedback then asks sessions to close it.
  bool open_resolved = false;
  // When it was last resolved; InfinitePast if never.
  absl::Time resolved_at = absl::InfinitePast();
  // The agent who has it now, or (once resolved) the agent who resolved it;
  // empty when only the bot handled it.
  std::string agent_id;
};

// What a complaint still owes routing. Kept on the complaint row, so that a
// complaint is committed first and reaches routing later, even if routing is
// down when it is filed.
enum class RoutingAction : int {
  kNone = 0,
  // routing.EnqueueComplaint not yet acknowledged.
  kEnqueue = 1,
  // routing.CancelComplaint not yet acknowledged (acknowledged or resolved).
  kCancel = 2,
};

// A rating as stored: the API message and the request id it came with.
struct StoredFeedback {
  v1::Feedback feedback;
  std::string request_id;  // "" if none
};

// A complaint as stored: the API message plus what the API does not show.
struct ComplaintRecord {
  v1::Complaint complaint;
  // The FileComplaint request id ("" if none); unique per customer.
  std::string request_id;
  RoutingAction routing = RoutingAction::kNone;
};

// Filters of ListFeedback (the caller's restrictions already applied).
struct FeedbackFilter {
  std::string customer_id;  // "" for any
  std::string agent_id;     // "" for any
  common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  absl::Time start = absl::InfinitePast();  // inclusive
  absl::Time end = absl::InfiniteFuture();  // exclusive
  int max_overall = 0;                      // 0 for any
  bool with_comment_only = false;
};

// Position after the last item of a page, newest first (or oldest first).
struct ListCursor {
  bool set = false;
  absl::Time time = absl::InfinitePast();
  std::string id;
};

// Filters of ListComplaints (the caller's restrictions already applied).
struct ComplaintFilter {
  std::vector<v1::ComplaintState> states;  // empty for any
  std::string customer_id;
  std::string session_id;
  std::string assignee_id;
  common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
  absl::Time filed_after = absl::InfinitePast();   // inclusive
  absl::Time filed_before = absl::InfiniteFuture();  // exclusive
  bool oldest_first = false;
};

// What GetSummary aggregates: ratings submitted (and complaints filed) in
// [start, end) matching the filters.
struct SummaryQuery {
  std::string agent_id;  // "" for any
  common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  absl::Time start;
  absl::Time end;
  v1::SummaryGrouping group_by = v1::SUMMARY_GROUPING_UNSPECIFIED;
  int page_size = 100;
  // Groups after this key (exclusive); "" with !after_set for the first page.
  bool after_set = false;
  std::string after_key;
};

struct SummaryPage {
  v1::FeedbackSummary total;
  std::vector<v1::SummaryGroup> groups;
  // Key of the last group when more follow; "" on the last page.
  bool more = false;
  std::string last_key;
};

}  // namespace switchboard::feedback
