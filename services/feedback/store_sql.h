#pragma once

// What the SQLite and PostgreSQL feedback stores build the same way: column
// lists, filters with '?' marks and their values, and the groups of a
// summary page. Backend-neutral: each store binds the values its own way.

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/timestamp.pb.h"
#include "libs/storage/shared_sql.h"
#include "services/feedback/model.h"

namespace switchboard::feedback {

// A value bound to a '?' of the SQL below (text and integers only).
using storage::SqlValue;

// Conditions written with '?' and their values, built together so they
// stay in step.
struct Where {
  std::vector<std::string> conditions;
  std::vector<SqlValue> params;

  void Add(std::string condition) { conditions.push_back(std::move(condition)); }
  void Add(std::string condition, SqlValue value) {
    conditions.push_back(std::move(condition));
    params.push_back(std::move(value));
  }
  // The conditions joined with AND; a condition that always holds if none.
  std::string Sql() const;
};

int64_t MicrosOf(const google::protobuf::Timestamp& ts);

// The columns FeedbackFromRow and ComplaintFromRow of each store read, in
// that order.
inline constexpr char kFeedbackColumns[] =
    "feedback_id, session_id, customer_id, agent_id, channel, category, response_speed, "
    "professionalism, problem_resolution, overall, comment, submitted_at_micros, "
    "session_resolved_at_micros, request_id";
inline constexpr char kComplaintColumns[] = "body, request_id, routing";

// A statement written with '?' marks and the values it binds, in order.
struct Select {
  std::string sql;
  std::vector<SqlValue> params;
};

// ListFeedback's page: newest first (submission time, then id), after
// `cursor`, at most `limit`, selecting kFeedbackColumns.
Select ListFeedbackSql(const FeedbackFilter& filter, const ListCursor& cursor, int limit);

// ListComplaints' page in filing order (`filter.oldest_first`), after
// `cursor`, at most `limit`, selecting kComplaintColumns.
Select ListComplaintsSql(const ComplaintFilter& filter, const ListCursor& cursor, int limit);

// The window and filters of a summary over `time_column`.
Where SummaryWhere(const SummaryQuery& q, absl::string_view time_column);

// A summary of no ratings: zero counts, and five zero buckets per score.
void EmptySummary(v1::FeedbackSummary* out);

// The column a summary groups by; "" for SUMMARY_GROUPING_UNSPECIFIED.
const char* GroupColumn(v1::SummaryGrouping g);

// A group key as bound to SQL: agent ids are text, categories and channels
// numbers (InvalidArgument for anything else, rather than a silent 0).
absl::StatusOr<SqlValue> ParseGroupKey(v1::SummaryGrouping g, const std::string& key);

// The text of `key` in a page token (ParseGroupKey reads it back).
std::string GroupKeyText(const SqlValue& key);

// The groups of one summary page: one per key, in the keys' order, each
// starting empty; the stores fill them from their GROUP BY rows.
class SummaryGroups {
 public:
  SummaryGroups(v1::SummaryGrouping g, std::vector<SqlValue> keys);

  // The summary of `key`'s group; nullptr if `key` is not on this page.
  v1::FeedbackSummary* Find(const SqlValue& key);
  const std::vector<SqlValue>& keys() const { return keys_; }
  std::vector<v1::SummaryGroup> Take() { return std::move(groups_); }

 private:
  std::vector<SqlValue> keys_;
  std::vector<v1::SummaryGroup> groups_;
};

}  // namespace switchboard::feedback
