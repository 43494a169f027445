#include "services/feedback/postgres_store.h"

#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/events/postgres_outbox.h"
#include "libs/protoutil/time.h"
#include "libs/storage/time_column.h"
#include "services/feedback/store_sql.h"

namespace switchboard::feedback {
namespace {

using storage::FromMicros;
using storage::NumberedParameters;
using storage::PostgresConnection;
using storage::PostgresParams;
using storage::PostgresParam;
using storage::PostgresRows;

// `sql` with each '?' replaced by $1, $2, ... in order (no SQL here has a
// '?' inside a literal).

StoredFeedback FeedbackFromRow(const PostgresRows& rows, int r) {
  StoredFeedback stored;
  v1::Feedback& f = stored.feedback;
  f.set_feedback_id(rows.Text(r, 0));
  f.set_session_id(rows.Text(r, 1));
  f.set_customer_id(rows.Text(r, 2));
  f.set_agent_id(rows.Text(r, 3));
  f.set_channel(static_cast<common::v1::Channel>(rows.Int(r, 4)));
  f.set_category(static_cast<common::v1::Category>(rows.Int(r, 5)));
  f.mutable_ratings()->set_response_speed(static_cast<int32_t>(rows.Int(r, 6)));
  f.mutable_ratings()->set_professionalism(static_cast<int32_t>(rows.Int(r, 7)));
  f.mutable_ratings()->set_problem_resolution(static_cast<int32_t>(rows.Int(r, 8)));
  f.set_overall_satisfaction(static_cast<int32_t>(rows.Int(r, 9)));
  f.set_comment(rows.Text(r, 10));
  protoutil::ToTimestamp(FromMicros(rows.Int(r, 11)), f.mutable_submitted_at());
  protoutil::ToTimestamp(FromMicros(rows.Int(r, 12)), f.mutable_session_resolved_at());
  stored.request_id = rows.Text(r, 13);
  return stored;
}


absl::StatusOr<ComplaintRecord> ComplaintFromRow(const PostgresRows& rows, int r) {
  ComplaintRecord record;
  if (!record.complaint.ParseFromString(rows.Bytes(r, 0))) {
    return absl::DataLossError("feedback database: unreadable complaint");
  }
  record.request_id = rows.Text(r, 1);
  record.routing = static_cast<RoutingAction>(rows.Int(r, 2));
  return record;
}

absl::StatusOr<std::vector<ComplaintRecord>> ComplaintsFrom(const PostgresRows& rows) {
  std::vector<ComplaintRecord> result;
  for (int r = 0; r < rows.size(); ++r) {
    absl::StatusOr<ComplaintRecord> record = ComplaintFromRow(rows, r);
    if (!record.ok()) return record.status();
    result.push_back(*std::move(record));
  }
  return result;
}

absl::StatusOr<std::optional<StoredFeedback>> SelectFeedback(PostgresConnection& db,
                                                             const std::string& session_id) {
  absl::StatusOr<PostgresRows> rows = db.Query(
      absl::StrCat("SELECT ", kFeedbackColumns, " FROM feedback WHERE session_id = $1"),
      {session_id});
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::nullopt;
  return FeedbackFromRow(*rows, 0);
}

// `where` uses $1 (and $2); `lock` may be " FOR UPDATE".
absl::StatusOr<std::optional<ComplaintRecord>> SelectOneComplaint(
    PostgresConnection& db, absl::string_view where, std::vector<PostgresParam> params,
    absl::string_view lock = "") {
  absl::StatusOr<PostgresRows> rows = db.Query(
      absl::StrCat("SELECT ", kComplaintColumns, " FROM complaints WHERE ", where, lock),
      params);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::nullopt;
  absl::StatusOr<ComplaintRecord> record = ComplaintFromRow(*rows, 0);
  if (!record.ok()) return record.status();
  return *std::move(record);
}

absl::Status UpsertComplaint(PostgresConnection& db, const ComplaintRecord& record) {
  const v1::Complaint& c = record.complaint;
  return db
      .Query("INSERT INTO complaints(complaint_id, customer_id, session_id, agent_id, category, "
             "channel, state, assignee_id, filed_at_micros, request_id, routing, body) "
             "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
             "ON CONFLICT (complaint_id) DO UPDATE SET state = excluded.state, "
             "assignee_id = excluded.assignee_id, routing = excluded.routing, "
             "body = excluded.body",
             {c.complaint_id(), c.customer_id(), c.session_id(), c.agent_id(),
              static_cast<int64_t>(c.category()), static_cast<int64_t>(c.channel()),
              static_cast<int64_t>(c.state()), c.assignee_id(), MicrosOf(c.filed_at()),
              record.request_id, static_cast<int64_t>(record.routing),
              PostgresParam::Bytes(c.SerializeAsString())})
      .status();
}

// The aggregate columns of a FeedbackSummary (all BIGINT), in the order
// FillSummary reads them from column `first` on.
std::string SummaryColumns() {
  std::vector<std::string> columns = {"COUNT(*)"};
  for (const char* dim : {"response_speed", "professionalism", "problem_resolution", "overall"}) {
    columns.push_back(absl::StrCat("COALESCE(SUM(", dim, "), 0)"));
    for (int score = 1; score <= 5; ++score) {
      columns.push_back(absl::StrCat("COUNT(*) FILTER (WHERE ", dim, " = ", score, ")"));
    }
  }
  columns.push_back("COUNT(*) FILTER (WHERE overall >= 4)");
  columns.push_back("COALESCE(SUM(has_comment), 0)");
  return absl::StrJoin(columns, ", ");
}

void FillSummary(const PostgresRows& rows, int r, int first, v1::FeedbackSummary* out) {
  const int64_t count = rows.Int(r, first);
  out->set_feedback_count(count);
  int col = first + 1;
  for (v1::ScoreSummary* score :
       {out->mutable_response_speed(), out->mutable_professionalism(),
        out->mutable_problem_resolution(), out->mutable_overall_satisfaction()}) {
    const double sum = static_cast<double>(rows.Int(r, col++));
    score->set_mean(count > 0 ? sum / static_cast<double>(count) : 0.0);
    score->clear_distribution();
    for (int s = 1; s <= 5; ++s) score->add_distribution(rows.Int(r, col++));
  }
  const double satisfied = static_cast<double>(rows.Int(r, col++));
  out->set_csat_share(count > 0 ? satisfied / static_cast<double>(count) : 0.0);
  out->set_comment_count(rows.Int(r, col++));
}


}  // namespace

const std::vector<std::string>& PostgresFeedbackMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: the tables and indexes of SQLite's FeedbackMigrations, in
      // PostgreSQL's types; complaint counts kept by triggers; the outbox.
      R"sql(
CREATE TABLE feedback (
  feedback_id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL UNIQUE,  -- one rating per session, across replicas
  customer_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  channel INTEGER NOT NULL,
  category INTEGER NOT NULL,
  response_speed INTEGER NOT NULL,
  professionalism INTEGER NOT NULL,
  problem_resolution INTEGER NOT NULL,
  overall INTEGER NOT NULL,
  comment TEXT NOT NULL,
  has_comment INTEGER NOT NULL,
  submitted_at_micros BIGINT NOT NULL,
  session_resolved_at_micros BIGINT NOT NULL,
  request_id TEXT NOT NULL
);
CREATE INDEX feedback_by_time ON feedback (submitted_at_micros, agent_id, category,
  channel, response_speed, professionalism, problem_resolution, overall, has_comment);
CREATE INDEX feedback_by_agent ON feedback (agent_id, submitted_at_micros, category,
  channel, response_speed, professionalism, problem_resolution, overall, has_comment);
CREATE INDEX feedback_by_customer ON feedback (customer_id, submitted_at_micros);
CREATE TABLE complaints (
  complaint_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  category INTEGER NOT NULL,
  channel INTEGER NOT NULL,
  state INTEGER NOT NULL,
  assignee_id TEXT NOT NULL,
  filed_at_micros BIGINT NOT NULL,
  request_id TEXT NOT NULL,
  routing INTEGER NOT NULL,  -- RoutingAction still owed to routing
  body BYTEA NOT NULL        -- serialized switchboard.feedback.v1.Complaint
);
CREATE UNIQUE INDEX complaints_by_request ON complaints (customer_id, request_id)
  WHERE request_id <> '';
CREATE INDEX complaints_by_customer ON complaints (customer_id, state);
CREATE INDEX complaints_by_time ON complaints (filed_at_micros, agent_id, category, channel);
CREATE INDEX complaints_by_session ON complaints (session_id);
CREATE INDEX complaints_by_assignee ON complaints (assignee_id, filed_at_micros);
CREATE INDEX complaints_routing ON complaints (routing, filed_at_micros) WHERE routing <> 0;
CREATE TABLE complaint_requests (
  complaint_id TEXT NOT NULL REFERENCES complaints (complaint_id),
  request_id TEXT NOT NULL,
  PRIMARY KEY (complaint_id, request_id)
);
-- One row per customer who filed a complaint: InsertComplaint locks it, so
-- the open-complaint cap and the request id check of one customer run one
-- transaction at a time, on whichever replica.
CREATE TABLE complaint_customers (customer_id TEXT PRIMARY KEY);
CREATE TABLE complaint_counts (state INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO complaint_counts (state, n) VALUES (0, 0), (1, 0), (2, 0), (3, 0);
-- One UPDATE per change, so that two transactions moving complaints between
-- the same states lock the count rows in one order (no deadlock).
CREATE FUNCTION complaints_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE complaint_counts SET n = n + 1 WHERE state = NEW.state;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE complaint_counts SET n = n - 1 WHERE state = OLD.state;
  ELSIF OLD.state <> NEW.state THEN
    UPDATE complaint_counts SET n = n + CASE WHEN state = NEW.state THEN 1 ELSE -1 END
      WHERE state IN (OLD.state, NEW.state);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER complaints_counted AFTER INSERT OR UPDATE OF state OR DELETE ON complaints
  FOR EACH ROW EXECUTE FUNCTION complaints_counted();
)sql",
      events::kPostgresOutboxMigration,
  };
  return *migrations;
}

PostgresFeedbackStore::PostgresFeedbackStore(std::string uri, std::string topic,
                                             std::function<void()> after_commit)
    : topic_(std::move(topic)), after_commit_(std::move(after_commit)), pool_(std::move(uri)) {}

PostgresFeedbackStore::~PostgresFeedbackStore() = default;

absl::Status PostgresFeedbackStore::Admit() { return absl::OkStatus(); }

absl::Status PostgresFeedbackStore::Write(const Body& body, const bool* appended) {
  absl::Status status = pool_.InTransaction(body);
  if (status.ok() && *appended && after_commit_) after_commit_();
  return status;
}

absl::StatusOr<std::optional<StoredFeedback>> PostgresFeedbackStore::GetFeedback(
    const std::string& session_id) {
  std::optional<StoredFeedback> result;
  absl::Status status = Read([&](PostgresConnection& db) -> absl::Status {
    absl::StatusOr<std::optional<StoredFeedback>> found = SelectFeedback(db, session_id);
    if (!found.ok()) return found.status();
    result = *std::move(found);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<FeedbackStore::Inserted> PostgresFeedbackStore::InsertFeedback(
    const StoredFeedback& stored, const events::v1::Event& event) {
  Inserted result;
  absl::Status status = Write(
      [&](PostgresConnection& db) -> absl::Status {
        result = Inserted();
        const v1::Feedback& f = stored.feedback;
        // The unique session_id decides between concurrent raters on any
        // replica: a second insert waits for the first to commit, then
        // inserts nothing, and the SELECT below (a new snapshot) sees the
        // winner's row.
        absl::StatusOr<PostgresRows> inserted = db.Query(
            absl::StrCat("INSERT INTO feedback(", kFeedbackColumns,
                         ", has_comment) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                         "$12, $13, $14, $15) ON CONFLICT (session_id) DO NOTHING"),
            {f.feedback_id(), f.session_id(), f.customer_id(), f.agent_id(),
             static_cast<int64_t>(f.channel()), static_cast<int64_t>(f.category()),
             static_cast<int64_t>(f.ratings().response_speed()),
             static_cast<int64_t>(f.ratings().professionalism()),
             static_cast<int64_t>(f.ratings().problem_resolution()),
             static_cast<int64_t>(f.overall_satisfaction()), f.comment(),
             MicrosOf(f.submitted_at()),
             f.has_session_resolved_at() ? MicrosOf(f.session_resolved_at()) : INT64_MIN,
             stored.request_id, static_cast<int64_t>(!f.comment().empty())});
        if (!inserted.ok()) return inserted.status();
        if (inserted->changed() == 0) {
          absl::StatusOr<std::optional<StoredFeedback>> existing =
              SelectFeedback(db, f.session_id());
          if (!existing.ok()) return existing.status();
          if (!existing->has_value()) return absl::InternalError("feedback: rating vanished");
          result.stored = **existing;
          return absl::OkStatus();
        }
        if (absl::Status s = events::AppendToOutbox(db, topic_, event); !s.ok()) return s;
        result.stored = stored;
        result.inserted = true;
        return absl::OkStatus();
      },
      &result.inserted);
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<v1::Feedback>> PostgresFeedbackStore::ListFeedback(
    const FeedbackFilter& filter, const ListCursor& cursor, int limit) {
  const Select page = ListFeedbackSql(filter, cursor, limit);
  std::vector<v1::Feedback> result;
  absl::Status status = Read([&](PostgresConnection& db) -> absl::Status {
    absl::StatusOr<PostgresRows> rows =
        db.Query(NumberedParameters(page.sql), PostgresParams(page.params));
    if (!rows.ok()) return rows.status();
    for (int r = 0; r < rows->size(); ++r) result.push_back(FeedbackFromRow(*rows, r).feedback);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<ComplaintRecord>> PostgresFeedbackStore::GetComplaint(
    const std::string& complaint_id) {
  std::optional<ComplaintRecord> result;
  absl::Status status = Read([&](PostgresConnection& db) -> absl::Status {
    auto found = SelectOneComplaint(db, "complaint_id = $1", {complaint_id});
    if (!found.ok()) return found.status();
    result = *std::move(found);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<ComplaintRecord>> PostgresFeedbackStore::FindComplaintByRequest(
    const std::string& customer_id, const std::string& request_id) {
  std::optional<ComplaintRecord> result;
  absl::Status status = Read([&](PostgresConnection& db) -> absl::Status {
    auto found = SelectOneComplaint(
        db, "customer_id = $1 AND request_id = $2 AND request_id <> ''", {customer_id, request_id});
    if (!found.ok()) return found.status();
    result = *std::move(found);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<FeedbackStore::Filed> PostgresFeedbackStore::InsertComplaint(
    const ComplaintRecord& record, int max_unresolved, const events::v1::Event& event) {
  Filed result;
  const std::string& customer_id = record.complaint.customer_id();
  absl::Status status = Write(
      [&](PostgresConnection& db) -> absl::Status {
        result = Filed();
        // The customer's row lock (taken by the upsert, held to commit)
        // serializes this customer's filings across replicas: READ
        // COMMITTED alone would let two of them count the same open
        // complaints and both pass the cap. Each statement after it reads
        // a snapshot taken after the previous holder committed.
        absl::Status locked =
            db.Query("INSERT INTO complaint_customers(customer_id) VALUES ($1) "
                     "ON CONFLICT (customer_id) DO UPDATE SET customer_id = excluded.customer_id",
                     {customer_id})
                .status();
        if (!locked.ok()) return locked;
        if (!record.request_id.empty()) {
          auto seen =
              SelectOneComplaint(db, "customer_id = $1 AND request_id = $2 AND request_id <> ''",
                                 {customer_id, record.request_id});
          if (!seen.ok()) return seen.status();
          if (seen->has_value()) {
            result.record = **seen;
            return absl::OkStatus();
          }
        }
        absl::StatusOr<PostgresRows> count = db.Query(
            "SELECT COUNT(*) FROM complaints WHERE customer_id = $1 AND state <> $2",
            {customer_id, static_cast<int64_t>(v1::COMPLAINT_STATE_RESOLVED)});
        if (!count.ok()) return count.status();
        if (count->Int(0, 0) >= max_unresolved) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "the customer already has ", max_unresolved,
              " complaints not yet resolved; wait for one to be resolved"));
        }
        if (absl::Status s = UpsertComplaint(db, record); !s.ok()) return s;
        if (absl::Status s = events::AppendToOutbox(db, topic_, event); !s.ok()) return s;
        result.record = record;
        result.inserted = true;
        return absl::OkStatus();
      },
      &result.inserted);
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<ComplaintRecord> PostgresFeedbackStore::UpdateComplaint(
    const std::string& complaint_id, const std::string& request_id, const Mutation& mutate) {
  ComplaintRecord result;
  bool appended = false;
  absl::Status status = Write(
      [&](PostgresConnection& db) -> absl::Status {
        appended = false;
        // FOR UPDATE: concurrent updates of one complaint, on any replica,
        // run one after the other, each on the state the previous one left
        // (and its request ids, written under the same lock).
        auto found = SelectOneComplaint(db, "complaint_id = $1", {complaint_id}, " FOR UPDATE");
        if (!found.ok()) return found.status();
        if (!found->has_value()) return absl::NotFoundError("no such complaint");
        ComplaintRecord record = **found;
        bool seen = false;
        if (!request_id.empty()) {
          absl::StatusOr<PostgresRows> rows = db.Query(
              "SELECT 1 FROM complaint_requests WHERE complaint_id = $1 AND request_id = $2",
              {complaint_id, request_id});
          if (!rows.ok()) return rows.status();
          seen = !rows->empty();
        }
        absl::StatusOr<std::optional<events::v1::Event>> event = mutate(record, seen);
        if (!event.ok()) return event.status();
        if (!event->has_value()) {
          result = **found;
          return absl::OkStatus();
        }
        if (absl::Status s = UpsertComplaint(db, record); !s.ok()) return s;
        if (absl::Status s = events::AppendToOutbox(db, topic_, **event); !s.ok()) return s;
        if (!request_id.empty()) {
          absl::Status s = db.Query("INSERT INTO complaint_requests(complaint_id, request_id) "
                                    "VALUES ($1, $2)",
                                    {complaint_id, request_id})
                               .status();
          if (!s.ok()) return s;
        }
        appended = true;
        result = std::move(record);
        return absl::OkStatus();
      },
      &appended);
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<ComplaintRecord>> PostgresFeedbackStore::ListComplaints(
    const ComplaintFilter& filter, const ListCursor& cursor, int limit) {
  const Select page = ListComplaintsSql(filter, cursor, limit);
  std::vector<ComplaintRecord> result;
  absl::Status status = Read([&](PostgresConnection& db) -> absl::Status {
    absl::StatusOr<PostgresRows> rows =
        db.Query(NumberedParameters(page.sql), PostgresParams(page.params));
    if (!rows.ok()) return rows.status();
    absl::StatusOr<std::vector<ComplaintRecord>> records = ComplaintsFrom(*rows);
    if (!records.ok()) return records.status();
    result = *std::move(records);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<ComplaintRecord>> PostgresFeedbackStore::PendingRouting(int limit) {
  std::vector<ComplaintRecord> result;
  absl::Status status = Read([&](PostgresConnection& db) -> absl::Status {
    absl::StatusOr<PostgresRows> rows =
        db.Query(absl::StrCat("SELECT ", kComplaintColumns,
                              " FROM complaints WHERE routing <> 0 "
                              "ORDER BY filed_at_micros LIMIT $1"),
                 {static_cast<int64_t>(limit)});
    if (!rows.ok()) return rows.status();
    absl::StatusOr<std::vector<ComplaintRecord>> records = ComplaintsFrom(*rows);
    if (!records.ok()) return records.status();
    result = *std::move(records);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::Status PostgresFeedbackStore::RoutingDone(const std::string& complaint_id,
                                                RoutingAction done) {
  // One statement: the row lock it takes makes the compare-and-clear atomic
  // against an update on another replica.
  return Read([&](PostgresConnection& db) {
    return db
        .Query("UPDATE complaints SET routing = 0 WHERE complaint_id = $1 AND routing = $2",
               {complaint_id, static_cast<int64_t>(done)})
        .status();
  });
}

absl::StatusOr<std::array<int64_t, 4>> PostgresFeedbackStore::CountComplaintsByState() {
  std::array<int64_t, 4> counts{};
  absl::Status status = Read([&](PostgresConnection& db) -> absl::Status {
    absl::StatusOr<PostgresRows> rows = db.Query("SELECT state, n FROM complaint_counts");
    if (!rows.ok()) return rows.status();
    for (int r = 0; r < rows->size(); ++r) {
      const int64_t state = rows->Int(r, 0);
      if (state >= 0 && state < 4) counts[state] = rows->Int(r, 1);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return counts;
}

absl::StatusOr<SummaryPage> PostgresFeedbackStore::Summarize(const SummaryQuery& query) {
  const Where fw = SummaryWhere(query, "submitted_at_micros");
  const Where cw = SummaryWhere(query, "filed_at_micros");
  const bool by_agent = query.group_by == v1::SUMMARY_GROUPING_AGENT;
  SummaryPage page;
  absl::Status status = Read([&](PostgresConnection& db) -> absl::Status {
    absl::StatusOr<PostgresRows> total = db.Query(
        NumberedParameters(
            absl::StrCat("SELECT ", SummaryColumns(), " FROM feedback WHERE ", fw.Sql())),
        PostgresParams(fw.params));
    if (!total.ok()) return total.status();
    FillSummary(*total, 0, 0, &page.total);
    absl::StatusOr<PostgresRows> filed =
        db.Query(NumberedParameters(
                     absl::StrCat("SELECT COUNT(*) FROM complaints WHERE ", cw.Sql())),
                 PostgresParams(cw.params));
    if (!filed.ok()) return filed.status();
    page.total.set_complaints_filed(filed->Int(0, 0));
    if (query.group_by == v1::SUMMARY_GROUPING_UNSPECIFIED) return absl::OkStatus();
    const std::string key = GroupColumn(query.group_by);

    // The page's group keys: every key with a rating or a complaint.
    std::vector<SqlValue> params = fw.params;
    params.insert(params.end(), cw.params.begin(), cw.params.end());
    std::string after = "TRUE";
    if (query.after_set) {
      after = "k > ?";
      absl::StatusOr<SqlValue> after_key = ParseGroupKey(query.group_by, query.after_key);
      if (!after_key.ok()) return after_key.status();
      params.push_back(*std::move(after_key));
    }
    params.push_back(static_cast<int64_t>(query.page_size + 1));
    absl::StatusOr<PostgresRows> keys = db.Query(
        NumberedParameters(absl::StrCat("SELECT k FROM (SELECT ", key, " AS k FROM feedback WHERE ",
                                        fw.Sql(), " UNION SELECT ", key, " FROM complaints WHERE ",
                                        cw.Sql(), ") AS keys WHERE ", after,
                                        " ORDER BY k LIMIT ?")),
        PostgresParams(params));
    if (!keys.ok()) return keys.status();
    const auto key_of = [&](const PostgresRows& rows, int r) {
      return by_agent ? SqlValue(rows.Text(r, 0)) : SqlValue(rows.Int(r, 0));
    };
    std::vector<SqlValue> page_keys;
    for (int r = 0; r < keys->size(); ++r) page_keys.push_back(key_of(*keys, r));
    if (static_cast<int>(page_keys.size()) > query.page_size) {
      page_keys.resize(query.page_size);
      page.more = true;
    }
    if (page_keys.empty()) return absl::OkStatus();
    if (page.more) page.last_key = GroupKeyText(page_keys.back());

    SummaryGroups groups(query.group_by, std::move(page_keys));
    const std::string range = absl::StrCat(key, " >= ? AND ", key, " <= ?");
    std::vector<SqlValue> fparams = fw.params;
    fparams.push_back(groups.keys().front());
    fparams.push_back(groups.keys().back());
    absl::StatusOr<PostgresRows> ratings =
        db.Query(NumberedParameters(absl::StrCat("SELECT ", key, ", ", SummaryColumns(),
                                                 " FROM feedback WHERE ", fw.Sql(), " AND ",
                                                 range, " GROUP BY ", key)),
                 PostgresParams(fparams));
    if (!ratings.ok()) return ratings.status();
    for (int r = 0; r < ratings->size(); ++r) {
      if (v1::FeedbackSummary* summary = groups.Find(key_of(*ratings, r))) {
        FillSummary(*ratings, r, 1, summary);
      }
    }
    std::vector<SqlValue> cparams = cw.params;
    cparams.push_back(groups.keys().front());
    cparams.push_back(groups.keys().back());
    absl::StatusOr<PostgresRows> complaints =
        db.Query(NumberedParameters(absl::StrCat("SELECT ", key,
                                                 ", COUNT(*) FROM complaints WHERE ", cw.Sql(),
                                                 " AND ", range, " GROUP BY ", key)),
                 PostgresParams(cparams));
    if (!complaints.ok()) return complaints.status();
    for (int r = 0; r < complaints->size(); ++r) {
      if (v1::FeedbackSummary* summary = groups.Find(key_of(*complaints, r))) {
        summary->set_complaints_filed(complaints->Int(r, 1));
      }
    }
    page.groups = groups.Take();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return page;
}

}  // namespace switchboard::feedback
