#include "services/feedback/sqlite_store.h"

#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/events/outbox.h"
#include "libs/protoutil/time.h"
#include "libs/storage/time_column.h"
#include "services/feedback/store_sql.h"

namespace switchboard::feedback {
namespace {

using storage::BindAll;
using storage::FromMicros;

StoredFeedback FeedbackFromRow(const storage::Statement& row) {
  StoredFeedback stored;
  v1::Feedback& f = stored.feedback;
  f.set_feedback_id(row.ColumnText(0));
  f.set_session_id(row.ColumnText(1));
  f.set_customer_id(row.ColumnText(2));
  f.set_agent_id(row.ColumnText(3));
  f.set_channel(static_cast<common::v1::Channel>(row.ColumnInt(4)));
  f.set_category(static_cast<common::v1::Category>(row.ColumnInt(5)));
  f.mutable_ratings()->set_response_speed(static_cast<int32_t>(row.ColumnInt(6)));
  f.mutable_ratings()->set_professionalism(static_cast<int32_t>(row.ColumnInt(7)));
  f.mutable_ratings()->set_problem_resolution(static_cast<int32_t>(row.ColumnInt(8)));
  f.set_overall_satisfaction(static_cast<int32_t>(row.ColumnInt(9)));
  f.set_comment(row.ColumnText(10));
  protoutil::ToTimestamp(FromMicros(row.ColumnInt(11)), f.mutable_submitted_at());
  protoutil::ToTimestamp(FromMicros(row.ColumnInt(12)), f.mutable_session_resolved_at());
  stored.request_id = row.ColumnText(13);
  return stored;
}


absl::StatusOr<ComplaintRecord> ComplaintFromRow(const storage::Statement& row) {
  ComplaintRecord record;
  if (!record.complaint.ParseFromString(row.ColumnBlob(0))) {
    return absl::DataLossError("feedback.db: unreadable complaint");
  }
  record.request_id = row.ColumnText(1);
  record.routing = static_cast<RoutingAction>(row.ColumnInt(2));
  return record;
}

absl::StatusOr<std::optional<StoredFeedback>> SelectFeedback(storage::Database& db,
                                                             const std::string& session_id) {
  auto select = db.Prepare(
      absl::StrCat("SELECT ", kFeedbackColumns, " FROM feedback WHERE session_id = ?"));
  if (!select.ok()) return select.status();
  select->Bind(1, session_id);
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  StoredFeedback stored = FeedbackFromRow(*select);
  select->Reset();
  return stored;
}

absl::StatusOr<std::optional<ComplaintRecord>> SelectOneComplaint(storage::Database& db,
                                                                  absl::string_view where,
                                                                  const std::string& a,
                                                                  const std::string& b = "") {
  auto select =
      db.Prepare(absl::StrCat("SELECT ", kComplaintColumns, " FROM complaints WHERE ", where));
  if (!select.ok()) return select.status();
  select->Bind(1, a);
  if (!b.empty()) select->Bind(2, b);
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  absl::StatusOr<ComplaintRecord> record = ComplaintFromRow(*select);
  select->Reset();
  if (!record.ok()) return record.status();
  return *std::move(record);
}

absl::Status UpsertComplaint(storage::Database& db, const ComplaintRecord& record) {
  const v1::Complaint& c = record.complaint;
  auto upsert = db.Prepare(
      "INSERT INTO complaints(complaint_id, customer_id, session_id, agent_id, category, "
      "channel, state, assignee_id, filed_at_micros, request_id, routing, body) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(complaint_id) DO UPDATE SET "
      "state = excluded.state, assignee_id = excluded.assignee_id, "
      "routing = excluded.routing, body = excluded.body");
  if (!upsert.ok()) return upsert.status();
  return upsert->Bind(1, c.complaint_id())
      .Bind(2, c.customer_id())
      .Bind(3, c.session_id())
      .Bind(4, c.agent_id())
      .Bind(5, static_cast<int64_t>(c.category()))
      .Bind(6, static_cast<int64_t>(c.channel()))
      .Bind(7, static_cast<int64_t>(c.state()))
      .Bind(8, c.assignee_id())
      .Bind(9, MicrosOf(c.filed_at()))
      .Bind(10, record.request_id)
      .Bind(11, static_cast<int64_t>(record.routing))
      .BindBlob(12, c.SerializeAsString())
      .Run();
}

// The aggregate columns of a FeedbackSummary, in the order FillSummary reads
// them from column `first` on.
std::string SummaryColumns() {
  std::vector<std::string> columns = {"COUNT(*)"};
  for (const char* dim : {"response_speed", "professionalism", "problem_resolution", "overall"}) {
    columns.push_back(absl::StrCat("TOTAL(", dim, ")"));
    for (int score = 1; score <= 5; ++score) {
      columns.push_back(absl::StrCat("TOTAL(", dim, " = ", score, ")"));
    }
  }
  columns.push_back("TOTAL(overall >= 4)");
  columns.push_back("TOTAL(has_comment)");
  return absl::StrJoin(columns, ", ");
}

void FillSummary(const storage::Statement& row, int first, v1::FeedbackSummary* out) {
  const int64_t count = row.ColumnInt(first);
  out->set_feedback_count(count);
  int col = first + 1;
  for (v1::ScoreSummary* score :
       {out->mutable_response_speed(), out->mutable_professionalism(),
        out->mutable_problem_resolution(), out->mutable_overall_satisfaction()}) {
    const double sum = row.ColumnDouble(col++);
    score->set_mean(count > 0 ? sum / static_cast<double>(count) : 0.0);
    score->clear_distribution();
    for (int s = 1; s <= 5; ++s) {
      score->add_distribution(static_cast<int64_t>(row.ColumnDouble(col++)));
    }
  }
  const double satisfied = row.ColumnDouble(col++);
  out->set_csat_share(count > 0 ? satisfied / static_cast<double>(count) : 0.0);
  out->set_comment_count(static_cast<int64_t>(row.ColumnDouble(col++)));
}

std::string TotalSql(const Where& fw) {
  return absl::StrCat("SELECT ", SummaryColumns(), " FROM feedback WHERE ", fw.Sql());
}

}  // namespace

const std::vector<std::string>& FeedbackMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: ratings, complaints, request ids seen by UpdateComplaint.
      // The two covering indexes hold every column GetSummary aggregates, so
      // a summary reads the window's index entries only (by time, or by
      // agent then time); ListFeedback uses them and the customer index.
      "CREATE TABLE feedback("
      "  feedback_id TEXT PRIMARY KEY,"
      "  session_id TEXT NOT NULL UNIQUE,"
      "  customer_id TEXT NOT NULL,"
      "  agent_id TEXT NOT NULL,"
      "  channel INTEGER NOT NULL,"
      "  category INTEGER NOT NULL,"
      "  response_speed INTEGER NOT NULL,"
      "  professionalism INTEGER NOT NULL,"
      "  problem_resolution INTEGER NOT NULL,"
      "  overall INTEGER NOT NULL,"
      "  comment TEXT NOT NULL,"
      "  has_comment INTEGER NOT NULL,"
      "  submitted_at_micros INTEGER NOT NULL,"
      "  session_resolved_at_micros INTEGER NOT NULL,"
      "  request_id TEXT NOT NULL);"
      "CREATE INDEX feedback_by_time ON feedback(submitted_at_micros, agent_id, category, "
      "  channel, response_speed, professionalism, problem_resolution, overall, has_comment);"
      "CREATE INDEX feedback_by_agent ON feedback(agent_id, submitted_at_micros, category, "
      "  channel, response_speed, professionalism, problem_resolution, overall, has_comment);"
      "CREATE INDEX feedback_by_customer ON feedback(customer_id, submitted_at_micros);"
      "CREATE TABLE complaints("
      "  complaint_id TEXT PRIMARY KEY,"
      "  customer_id TEXT NOT NULL,"
      "  session_id TEXT NOT NULL,"
      "  agent_id TEXT NOT NULL,"
      "  category INTEGER NOT NULL,"
      "  channel INTEGER NOT NULL,"
      "  state INTEGER NOT NULL,"
      "  assignee_id TEXT NOT NULL,"
      "  filed_at_micros INTEGER NOT NULL,"
      "  request_id TEXT NOT NULL,"
      "  routing INTEGER NOT NULL,"  // RoutingAction still owed to routing
      "  body BLOB NOT NULL);"       // serialized switchboard.feedback.v1.Complaint
      "CREATE UNIQUE INDEX complaints_by_request ON complaints(customer_id, request_id) "
      "  WHERE request_id != '';"
      "CREATE INDEX complaints_by_customer ON complaints(customer_id, state);"
      "CREATE INDEX complaints_by_time ON complaints(filed_at_micros, agent_id, category, "
      "  channel);"
      "CREATE INDEX complaints_by_session ON complaints(session_id);"
      "CREATE INDEX complaints_by_assignee ON complaints(assignee_id, filed_at_micros);"
      "CREATE INDEX complaints_routing ON complaints(routing, filed_at_micros) "
      "  WHERE routing != 0;"
      "CREATE TABLE complaint_requests("
      "  complaint_id TEXT NOT NULL REFERENCES complaints(complaint_id),"
      "  request_id TEXT NOT NULL,"
      "  PRIMARY KEY(complaint_id, request_id)) WITHOUT ROWID;",
      // 2: the event outbox.
      events::kOutboxMigration,
      // 3: complaints per state, kept by triggers in the transaction of each
      // change, so that start-up reads four rows instead of counting every
      // complaint ever filed.
      "CREATE TABLE complaint_counts(state INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
      "INSERT INTO complaint_counts(state, n) VALUES (0, 0), (1, 0), (2, 0), (3, 0);"
      "UPDATE complaint_counts SET n = "
      "  (SELECT COUNT(*) FROM complaints WHERE complaints.state = complaint_counts.state);"
      "CREATE TRIGGER complaints_counted_on_insert AFTER INSERT ON complaints BEGIN"
      "  UPDATE complaint_counts SET n = n + 1 WHERE state = NEW.state;"
      "END;"
      "CREATE TRIGGER complaints_counted_on_update AFTER UPDATE OF state ON complaints"
      "  WHEN OLD.state != NEW.state BEGIN"
      "  UPDATE complaint_counts SET n = n - 1 WHERE state = OLD.state;"
      "  UPDATE complaint_counts SET n = n + 1 WHERE state = NEW.state;"
      "END;"
      "CREATE TRIGGER complaints_counted_on_delete AFTER DELETE ON complaints BEGIN"
      "  UPDATE complaint_counts SET n = n - 1 WHERE state = OLD.state;"
      "END;",
  };
  return *migrations;
}

SqliteFeedbackStore::SqliteFeedbackStore(storage::GroupCommitter* committer, std::string path,
                                         std::string topic, std::function<void()> after_commit)
    : committer_(committer),
      path_(std::move(path)),
      topic_(std::move(topic)),
      after_commit_(std::move(after_commit)) {}

SqliteFeedbackStore::~SqliteFeedbackStore() = default;

absl::Status SqliteFeedbackStore::Admit() { return committer_->Admit(); }

absl::Status SqliteFeedbackStore::Read(
    const std::function<absl::Status(storage::Database&)>& read) {
  std::unique_ptr<storage::Database> db;
  {
    absl::MutexLock lock(&readers_mu_);
    if (!idle_readers_.empty()) {
      db = std::move(idle_readers_.back());
      idle_readers_.pop_back();
    }
  }
  if (db == nullptr) {
    absl::StatusOr<std::unique_ptr<storage::Database>> opened =
        storage::Database::Open({path_});
    if (!opened.ok()) return opened.status();
    db = *std::move(opened);
  }
  absl::Status status = read(*db);
  absl::MutexLock lock(&readers_mu_);
  idle_readers_.push_back(std::move(db));
  return status;
}

absl::Status SqliteFeedbackStore::Write(
    const std::function<absl::Status(storage::Database&)>& write, bool appends_event) {
  absl::Status status = committer_->Commit(write);
  if (status.ok() && appends_event && after_commit_) after_commit_();
  return status;
}

absl::StatusOr<std::optional<StoredFeedback>> SqliteFeedbackStore::GetFeedback(
    const std::string& session_id) {
  std::optional<StoredFeedback> result;
  absl::Status status = Read([&](storage::Database& db) -> absl::Status {
    absl::StatusOr<std::optional<StoredFeedback>> found = SelectFeedback(db, session_id);
    if (!found.ok()) return found.status();
    result = *std::move(found);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<FeedbackStore::Inserted> SqliteFeedbackStore::InsertFeedback(
    const StoredFeedback& stored, const events::v1::Event& event) {
  Inserted result;
  absl::Status status = Write(
      [&](storage::Database& db) -> absl::Status {
        absl::StatusOr<std::optional<StoredFeedback>> existing =
            SelectFeedback(db, stored.feedback.session_id());
        if (!existing.ok()) return existing.status();
        if (existing->has_value()) {
          result.stored = **existing;
          result.inserted = false;
          return absl::OkStatus();
        }
        const v1::Feedback& f = stored.feedback;
        auto insert = db.Prepare(absl::StrCat("INSERT INTO feedback(", kFeedbackColumns,
                                              ", has_comment) VALUES "
                                              "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        if (!insert.ok()) return insert.status();
        absl::Status s = insert->Bind(1, f.feedback_id())
                             .Bind(2, f.session_id())
                             .Bind(3, f.customer_id())
                             .Bind(4, f.agent_id())
                             .Bind(5, static_cast<int64_t>(f.channel()))
                             .Bind(6, static_cast<int64_t>(f.category()))
                             .Bind(7, static_cast<int64_t>(f.ratings().response_speed()))
                             .Bind(8, static_cast<int64_t>(f.ratings().professionalism()))
                             .Bind(9, static_cast<int64_t>(f.ratings().problem_resolution()))
                             .Bind(10, static_cast<int64_t>(f.overall_satisfaction()))
                             .Bind(11, f.comment())
                             .Bind(12, MicrosOf(f.submitted_at()))
                             .Bind(13, f.has_session_resolved_at()
                                           ? MicrosOf(f.session_resolved_at())
                                           : INT64_MIN)
                             .Bind(14, stored.request_id)
                             .Bind(15, static_cast<int64_t>(!f.comment().empty()))
                             .Run();
        if (!s.ok()) return s;
        if (s = events::AppendToOutbox(db, topic_, event); !s.ok()) return s;
        result.stored = stored;
        result.inserted = true;
        return absl::OkStatus();
      },
      /*appends_event=*/true);
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<v1::Feedback>> SqliteFeedbackStore::ListFeedback(
    const FeedbackFilter& filter, const ListCursor& cursor, int limit) {
  const Select page = ListFeedbackSql(filter, cursor, limit);
  std::vector<v1::Feedback> result;
  absl::Status status = Read([&](storage::Database& db) -> absl::Status {
    auto select = db.Prepare(page.sql);
    if (!select.ok()) return select.status();
    BindAll(*select, page.params);
    while (true) {
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      result.push_back(FeedbackFromRow(*select).feedback);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<ComplaintRecord>> SqliteFeedbackStore::GetComplaint(
    const std::string& complaint_id) {
  std::optional<ComplaintRecord> result;
  absl::Status status = Read([&](storage::Database& db) -> absl::Status {
    auto found = SelectOneComplaint(db, "complaint_id = ?", complaint_id);
    if (!found.ok()) return found.status();
    result = *std::move(found);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::optional<ComplaintRecord>> SqliteFeedbackStore::FindComplaintByRequest(
    const std::string& customer_id, const std::string& request_id) {
  std::optional<ComplaintRecord> result;
  absl::Status status = Read([&](storage::Database& db) -> absl::Status {
    auto found = SelectOneComplaint(db, "customer_id = ? AND request_id = ? AND request_id != ''",
                                    customer_id, request_id);
    if (!found.ok()) return found.status();
    result = *std::move(found);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<FeedbackStore::Filed> SqliteFeedbackStore::InsertComplaint(
    const ComplaintRecord& record, int max_unresolved, const events::v1::Event& event) {
  Filed result;
  const std::string& customer_id = record.complaint.customer_id();
  absl::Status status = Write(
      [&](storage::Database& db) -> absl::Status {
        if (!record.request_id.empty()) {
          auto seen = SelectOneComplaint(
              db, "customer_id = ? AND request_id = ? AND request_id != ''", customer_id,
              record.request_id);
          if (!seen.ok()) return seen.status();
          if (seen->has_value()) {
            result.record = **seen;
            result.inserted = false;
            return absl::OkStatus();
          }
        }
        auto count = db.Prepare("SELECT COUNT(*) FROM complaints WHERE customer_id = ? AND "
                                "state != ?");
        if (!count.ok()) return count.status();
        count->Bind(1, customer_id).Bind(2, static_cast<int64_t>(v1::COMPLAINT_STATE_RESOLVED));
        absl::StatusOr<bool> row = count->Step();
        if (!row.ok()) return row.status();
        const int64_t unresolved = count->ColumnInt(0);
        count->Reset();
        if (unresolved >= max_unresolved) {
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
      /*appends_event=*/true);
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<ComplaintRecord> SqliteFeedbackStore::UpdateComplaint(
    const std::string& complaint_id, const std::string& request_id, const Mutation& mutate) {
  ComplaintRecord result;
  bool appended = false;
  absl::Status status = committer_->Commit([&](storage::Database& db) -> absl::Status {
    auto found = SelectOneComplaint(db, "complaint_id = ?", complaint_id);
    if (!found.ok()) return found.status();
    if (!found->has_value()) return absl::NotFoundError("no such complaint");
    ComplaintRecord record = **found;
    bool seen = false;
    if (!request_id.empty()) {
      auto select = db.Prepare(
          "SELECT 1 FROM complaint_requests WHERE complaint_id = ? AND request_id = ?");
      if (!select.ok()) return select.status();
      select->Bind(1, complaint_id).Bind(2, request_id);
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      seen = *row;
      select->Reset();
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
      auto insert =
          db.Prepare("INSERT INTO complaint_requests(complaint_id, request_id) VALUES (?, ?)");
      if (!insert.ok()) return insert.status();
      if (absl::Status s = insert->Bind(1, complaint_id).Bind(2, request_id).Run(); !s.ok()) {
        return s;
      }
    }
    appended = true;
    result = std::move(record);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (appended && after_commit_) after_commit_();
  return result;
}

absl::StatusOr<std::vector<ComplaintRecord>> SqliteFeedbackStore::ListComplaints(
    const ComplaintFilter& filter, const ListCursor& cursor, int limit) {
  const Select page = ListComplaintsSql(filter, cursor, limit);
  std::vector<ComplaintRecord> result;
  absl::Status status = Read([&](storage::Database& db) -> absl::Status {
    auto select = db.Prepare(page.sql);
    if (!select.ok()) return select.status();
    BindAll(*select, page.params);
    while (true) {
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      absl::StatusOr<ComplaintRecord> record = ComplaintFromRow(*select);
      if (!record.ok()) return record.status();
      result.push_back(*std::move(record));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<ComplaintRecord>> SqliteFeedbackStore::PendingRouting(int limit) {
  std::vector<ComplaintRecord> result;
  absl::Status status = Read([&](storage::Database& db) -> absl::Status {
    auto select = db.Prepare(absl::StrCat("SELECT ", kComplaintColumns,
                                          " FROM complaints WHERE routing != 0 "
                                          "ORDER BY filed_at_micros LIMIT ?"));
    if (!select.ok()) return select.status();
    select->Bind(1, static_cast<int64_t>(limit));
    while (true) {
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      absl::StatusOr<ComplaintRecord> record = ComplaintFromRow(*select);
      if (!record.ok()) return record.status();
      result.push_back(*std::move(record));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::Status SqliteFeedbackStore::RoutingDone(const std::string& complaint_id,
                                              RoutingAction done) {
  return committer_->Commit([&](storage::Database& db) -> absl::Status {
    auto update =
        db.Prepare("UPDATE complaints SET routing = 0 WHERE complaint_id = ? AND routing = ?");
    if (!update.ok()) return update.status();
    return update->Bind(1, complaint_id).Bind(2, static_cast<int64_t>(done)).Run();
  });
}

absl::StatusOr<std::array<int64_t, 4>> SqliteFeedbackStore::CountComplaintsByState() {
  std::array<int64_t, 4> counts{};
  absl::Status status = Read([&](storage::Database& db) -> absl::Status {
    auto select = db.Prepare("SELECT state, n FROM complaint_counts");
    if (!select.ok()) return select.status();
    while (true) {
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const int64_t state = select->ColumnInt(0);
      if (state >= 0 && state < 4) counts[state] = select->ColumnInt(1);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return counts;
}

absl::StatusOr<SummaryPage> SqliteFeedbackStore::Summarize(const SummaryQuery& query) {
  const Where fw = SummaryWhere(query, "submitted_at_micros");
  const Where cw = SummaryWhere(query, "filed_at_micros");
  SummaryPage page;
  absl::Status status = Read([&](storage::Database& db) -> absl::Status {
    {
      auto total = db.Prepare(TotalSql(fw));
      if (!total.ok()) return total.status();
      BindAll(*total, fw.params);
      absl::StatusOr<bool> row = total->Step();
      if (!row.ok()) return row.status();
      FillSummary(*total, 0, &page.total);
      total->Reset();
      auto complaints =
          db.Prepare(absl::StrCat("SELECT COUNT(*) FROM complaints WHERE ", cw.Sql()));
      if (!complaints.ok()) return complaints.status();
      BindAll(*complaints, cw.params);
      if (row = complaints->Step(); !row.ok()) return row.status();
      page.total.set_complaints_filed(complaints->ColumnInt(0));
      complaints->Reset();
    }
    if (query.group_by == v1::SUMMARY_GROUPING_UNSPECIFIED) return absl::OkStatus();
    const std::string key = GroupColumn(query.group_by);

    // The page's group keys: every key with a rating or a complaint.
    std::vector<SqlValue> params = fw.params;
    params.insert(params.end(), cw.params.begin(), cw.params.end());
    std::string after = "1 = 1";
    if (query.after_set) {
      after = "k > ?";
      absl::StatusOr<SqlValue> after_key = ParseGroupKey(query.group_by, query.after_key);
      if (!after_key.ok()) return after_key.status();
      params.push_back(*std::move(after_key));
    }
    params.emplace_back(static_cast<int64_t>(query.page_size + 1));
    auto keys = db.Prepare(absl::StrCat("SELECT k FROM (SELECT ", key, " AS k FROM feedback WHERE ",
                                        fw.Sql(), " UNION SELECT ", key,
                                        " FROM complaints WHERE ", cw.Sql(), ") WHERE ", after,
                                        " ORDER BY k LIMIT ?"));
    if (!keys.ok()) return keys.status();
    BindAll(*keys, params);
    const auto key_of = [&](const storage::Statement& row) {
      return query.group_by == v1::SUMMARY_GROUPING_AGENT ? SqlValue(row.ColumnText(0))
                                                          : SqlValue(row.ColumnInt(0));
    };
    std::vector<SqlValue> page_keys;
    while (true) {
      absl::StatusOr<bool> row = keys->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      page_keys.push_back(key_of(*keys));
    }
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
    auto ratings = db.Prepare(absl::StrCat("SELECT ", key, ", ", SummaryColumns(),
                                           " FROM feedback WHERE ", fw.Sql(), " AND ", range,
                                           " GROUP BY ", key));
    if (!ratings.ok()) return ratings.status();
    BindAll(*ratings, fparams);
    while (true) {
      absl::StatusOr<bool> row = ratings->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (v1::FeedbackSummary* summary = groups.Find(key_of(*ratings))) {
        FillSummary(*ratings, 1, summary);
      }
    }
    std::vector<SqlValue> cparams = cw.params;
    cparams.push_back(groups.keys().front());
    cparams.push_back(groups.keys().back());
    auto complaints = db.Prepare(absl::StrCat("SELECT ", key, ", COUNT(*) FROM complaints WHERE ",
                                              cw.Sql(), " AND ", range, " GROUP BY ", key));
    if (!complaints.ok()) return complaints.status();
    BindAll(*complaints, cparams);
    while (true) {
      absl::StatusOr<bool> row = complaints->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (v1::FeedbackSummary* summary = groups.Find(key_of(*complaints))) {
        summary->set_complaints_filed(complaints->ColumnInt(1));
      }
    }
    page.groups = groups.Take();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return page;
}

absl::StatusOr<std::string> SqliteFeedbackStore::ExplainSummary(const SummaryQuery& query) {
  const Where fw = SummaryWhere(query, "submitted_at_micros");
  std::string plan;
  absl::Status status = Read([&](storage::Database& db) -> absl::Status {
    auto explain = db.Prepare(absl::StrCat("EXPLAIN QUERY PLAN ", TotalSql(fw)));
    if (!explain.ok()) return explain.status();
    BindAll(*explain, fw.params);
    while (true) {
      absl::StatusOr<bool> row = explain->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      absl::StrAppend(&plan, explain->ColumnText(3), "\n");
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return plan;
}

}  // namespace switchboard::feedback
