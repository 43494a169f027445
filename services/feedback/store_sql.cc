#include "services/feedback/store_sql.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/protoutil/time.h"
#include "libs/storage/time_column.h"

namespace switchboard::feedback {

std::string Where::Sql() const {
  // "1 = 1": SQLite and PostgreSQL both read it (PostgreSQL refuses a bare 1).
  return conditions.empty() ? "1 = 1" : absl::StrJoin(conditions, " AND ");
}

int64_t MicrosOf(const google::protobuf::Timestamp& ts) {
  return storage::ToMicros(protoutil::FromTimestamp(ts));
}

Select ListFeedbackSql(const FeedbackFilter& filter, const ListCursor& cursor, int limit) {
  Where w;
  if (!filter.customer_id.empty()) w.Add("customer_id = ?", filter.customer_id);
  if (!filter.agent_id.empty()) w.Add("agent_id = ?", filter.agent_id);
  if (filter.category != common::v1::CATEGORY_UNSPECIFIED) {
    w.Add("category = ?", static_cast<int64_t>(filter.category));
  }
  if (filter.channel != common::v1::CHANNEL_UNSPECIFIED) {
    w.Add("channel = ?", static_cast<int64_t>(filter.channel));
  }
  if (filter.start != absl::InfinitePast()) {
    w.Add("submitted_at_micros >= ?", storage::ToMicros(filter.start));
  }
  if (filter.end != absl::InfiniteFuture()) {
    w.Add("submitted_at_micros < ?", storage::ToMicros(filter.end));
  }
  if (filter.max_overall > 0) w.Add("overall <= ?", static_cast<int64_t>(filter.max_overall));
  if (filter.with_comment_only) w.Add("has_comment = 1");
  if (cursor.set) {
    w.Add("(submitted_at_micros < ? OR (submitted_at_micros = ? AND feedback_id < ?))",
          storage::ToMicros(cursor.time));
    w.params.emplace_back(storage::ToMicros(cursor.time));
    w.params.emplace_back(cursor.id);
  }
  w.params.emplace_back(static_cast<int64_t>(limit));
  return {absl::StrCat("SELECT ", kFeedbackColumns, " FROM feedback WHERE ", w.Sql(),
                       " ORDER BY submitted_at_micros DESC, feedback_id DESC LIMIT ?"),
          std::move(w.params)};
}

Select ListComplaintsSql(const ComplaintFilter& filter, const ListCursor& cursor, int limit) {
  Where w;
  if (!filter.states.empty()) {
    std::vector<std::string> marks(filter.states.size(), "?");
    w.conditions.push_back(absl::StrCat("state IN (", absl::StrJoin(marks, ", "), ")"));
    for (v1::ComplaintState s : filter.states) w.params.emplace_back(static_cast<int64_t>(s));
  }
  if (!filter.customer_id.empty()) w.Add("customer_id = ?", filter.customer_id);
  if (!filter.session_id.empty()) w.Add("session_id = ?", filter.session_id);
  if (!filter.assignee_id.empty()) w.Add("assignee_id = ?", filter.assignee_id);
  if (filter.category != common::v1::CATEGORY_UNSPECIFIED) {
    w.Add("category = ?", static_cast<int64_t>(filter.category));
  }
  if (filter.filed_after != absl::InfinitePast()) {
    w.Add("filed_at_micros >= ?", storage::ToMicros(filter.filed_after));
  }
  if (filter.filed_before != absl::InfiniteFuture()) {
    w.Add("filed_at_micros < ?", storage::ToMicros(filter.filed_before));
  }
  const char* cmp = filter.oldest_first ? ">" : "<";
  const char* dir = filter.oldest_first ? "ASC" : "DESC";
  if (cursor.set) {
    w.Add(absl::StrCat("(filed_at_micros ", cmp, " ? OR (filed_at_micros = ? AND complaint_id ",
                       cmp, " ?))"),
          storage::ToMicros(cursor.time));
    w.params.emplace_back(storage::ToMicros(cursor.time));
    w.params.emplace_back(cursor.id);
  }
  w.params.emplace_back(static_cast<int64_t>(limit));
  return {absl::StrCat("SELECT ", kComplaintColumns, " FROM complaints WHERE ", w.Sql(),
                       " ORDER BY filed_at_micros ", dir, ", complaint_id ", dir, " LIMIT ?"),
          std::move(w.params)};
}

Where SummaryWhere(const SummaryQuery& q, absl::string_view time_column) {
  Where w;
  w.Add(absl::StrCat(time_column, " >= ?"), storage::ToMicros(q.start));
  w.Add(absl::StrCat(time_column, " < ?"), storage::ToMicros(q.end));
  if (!q.agent_id.empty()) w.Add("agent_id = ?", q.agent_id);
  if (q.category != common::v1::CATEGORY_UNSPECIFIED) {
    w.Add("category = ?", static_cast<int64_t>(q.category));
  }
  if (q.channel != common::v1::CHANNEL_UNSPECIFIED) {
    w.Add("channel = ?", static_cast<int64_t>(q.channel));
  }
  return w;
}

void EmptySummary(v1::FeedbackSummary* out) {
  for (v1::ScoreSummary* score :
       {out->mutable_response_speed(), out->mutable_professionalism(),
        out->mutable_problem_resolution(), out->mutable_overall_satisfaction()}) {
    for (int s = 1; s <= 5; ++s) score->add_distribution(0);
  }
}

const char* GroupColumn(v1::SummaryGrouping g) {
  switch (g) {
    case v1::SUMMARY_GROUPING_AGENT:
      return "agent_id";
    case v1::SUMMARY_GROUPING_CATEGORY:
      return "category";
    case v1::SUMMARY_GROUPING_CHANNEL:
      return "channel";
    default:
      return "";
  }
}

absl::StatusOr<SqlValue> ParseGroupKey(v1::SummaryGrouping g, const std::string& key) {
  if (g == v1::SUMMARY_GROUPING_AGENT) return key;
  int64_t value = 0;
  if (!absl::SimpleAtoi(key, &value)) {
    return absl::InvalidArgumentError(
        "page_token: not a token from a previous GetSummary response with these filters");
  }
  return value;
}

std::string GroupKeyText(const SqlValue& key) {
  return std::holds_alternative<int64_t>(key) ? absl::StrCat(std::get<int64_t>(key))
                                              : std::get<std::string>(key);
}

SummaryGroups::SummaryGroups(v1::SummaryGrouping g, std::vector<SqlValue> keys)
    : keys_(std::move(keys)), groups_(keys_.size()) {
  for (size_t i = 0; i < keys_.size(); ++i) {
    v1::SummaryGroup& group = groups_[i];
    EmptySummary(group.mutable_summary());
    const SqlValue& k = keys_[i];
    switch (g) {
      case v1::SUMMARY_GROUPING_AGENT:
        group.set_agent_id(std::get<std::string>(k));
        break;
      case v1::SUMMARY_GROUPING_CATEGORY:
        group.set_category(static_cast<common::v1::Category>(std::get<int64_t>(k)));
        break;
      default:
        group.set_channel(static_cast<common::v1::Channel>(std::get<int64_t>(k)));
        break;
    }
  }
}

v1::FeedbackSummary* SummaryGroups::Find(const SqlValue& key) {
  // A page holds at most a few hundred groups: a walk beats an index here.
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i] == key) return groups_[i].mutable_summary();
  }
  return nullptr;
}

}  // namespace switchboard::feedback
