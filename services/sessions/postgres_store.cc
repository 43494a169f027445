#include "services/sessions/postgres_store.h"

#include <climits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/events/postgres_outbox.h"
#include "libs/fault/fault_point.h"
#include "libs/storage/time_column.h"
#include "services/sessions/store_sql.h"

namespace switchboard::sessions {
namespace {

using storage::NumberedParameters;
using storage::PostgresConnection;
using storage::PostgresParam;
using storage::PostgresRows;
using storage::ToMicros;

absl::Status WriteAll(PostgresConnection& db, const SessionWrite& write,
                      const std::string& topic) {
  for (const SqlStatement& statement : WriteStatements(write, IndexedColumns::kInTheUpsert)) {
    if (absl::Status s = storage::Run(db, statement); !s.ok()) return s;
  }
  for (const events::v1::Event& event : write.events) {
    if (absl::Status s = events::AppendToOutbox(db, topic, event); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SessionRecord>> RecordsOf(const PostgresRows& rows) {
  std::vector<SessionRecord> out;
  out.reserve(rows.size());
  for (int r = 0; r < rows.size(); ++r) {
    absl::StatusOr<SessionRecord> record = RecordFromRow(storage::PostgresRow(rows, r));
    if (!record.ok()) return record.status();
    out.push_back(*std::move(record));
  }
  return out;
}

absl::StatusOr<std::vector<AttachmentRecord>> AttachmentsOf(const PostgresRows& rows) {
  std::vector<AttachmentRecord> out;
  out.reserve(rows.size());
  for (int r = 0; r < rows.size(); ++r) {
    absl::StatusOr<AttachmentRecord> record = AttachmentFromRow(storage::PostgresRow(rows, r));
    if (!record.ok()) return record.status();
    out.push_back(*std::move(record));
  }
  return out;
}

absl::StatusOr<std::optional<AttachmentRecord>> FirstAttachment(
    absl::StatusOr<PostgresRows> rows) {
  if (!rows.ok()) return rows.status();
  absl::StatusOr<std::vector<AttachmentRecord>> records = AttachmentsOf(*rows);
  if (!records.ok()) return records.status();
  if (records->empty()) return std::nullopt;
  return std::move((*records)[0]);
}

// The partial indexes' conditions, written as literals in the queries that
// use them (PostgreSQL, like SQLite, uses a partial index only when the
// query's WHERE implies the index's, which a bound parameter does not).
constexpr int kPendingScan = v1::ATTACHMENT_STATE_PENDING_SCAN;
constexpr int kDeleted = v1::ATTACHMENT_STATE_DELETED;
static_assert(kPendingScan == 1 && kDeleted == 4, "the attachment indexes of migration 1");

}  // namespace

const std::vector<std::string>& PostgresSessionsMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: the schema SQLite's migrations 1 and 3 to 6 arrive at. Ids that
      // pages are ordered by compare as bytes (COLLATE "C"), as in SQLite,
      // whatever the database's locale.
      R"sql(
CREATE TABLE sessions (
  session_id TEXT COLLATE "C" PRIMARY KEY,
  customer_id TEXT NOT NULL,
  session BYTEA NOT NULL,  -- serialized switchboard.sessions.v1.Session
  create_request_id TEXT NOT NULL,
  request_ids TEXT NOT NULL,  -- newline-separated, newest last
  routing_pending INTEGER NOT NULL,
  routing_version BIGINT NOT NULL,
  enqueue BYTEA NOT NULL,  -- serialized routing.v1.EnqueueSessionRequest
  cancel_reason INTEGER NOT NULL,
  bot_since_micros BIGINT NOT NULL,
  bot_turns INTEGER NOT NULL,
  state_since_micros BIGINT NOT NULL,
  first_queued_at_micros BIGINT NOT NULL,
  customer_messages INTEGER NOT NULL,
  bot_messages INTEGER NOT NULL,
  agent_messages INTEGER NOT NULL,
  assignments INTEGER NOT NULL,
  resolved_by TEXT NOT NULL,
  pending_callback_id TEXT NOT NULL,
  bot_turn_sequence BIGINT NOT NULL,
  -- Fields of the serialized session that reads filter on.
  state INTEGER NOT NULL,
  agent_id TEXT NOT NULL,
  created_micros BIGINT NOT NULL,
  category INTEGER NOT NULL,
  channel INTEGER NOT NULL,
  pending_callback_session_id TEXT NOT NULL
);
CREATE INDEX sessions_by_customer_time ON sessions (customer_id, created_micros, session_id);
CREATE INDEX sessions_by_agent_time ON sessions (agent_id, created_micros, session_id)
  WHERE agent_id <> '';
CREATE INDEX sessions_by_state_time ON sessions (state, created_micros, session_id);
CREATE INDEX sessions_by_time ON sessions (created_micros, session_id);
CREATE INDEX sessions_routing_pending ON sessions (session_id) WHERE routing_pending <> 0;
CREATE INDEX sessions_by_request ON sessions (customer_id, create_request_id)
  WHERE create_request_id <> '';
CREATE TABLE session_events (
  session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (session_id),
  sequence BIGINT NOT NULL,
  is_message INTEGER NOT NULL,
  client_message_id TEXT NOT NULL,  -- empty unless a keyed message
  fingerprint BYTEA NOT NULL,
  event BYTEA NOT NULL,  -- serialized switchboard.sessions.v1.SessionEvent
  PRIMARY KEY (session_id, sequence)
);
CREATE INDEX session_messages ON session_events (session_id, is_message, sequence);
CREATE INDEX session_keys ON session_events (session_id, client_message_id)
  WHERE client_message_id <> '';
CREATE TABLE token_bindings (
  token_id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  customer_id TEXT NOT NULL,
  bound_micros BIGINT NOT NULL,
  expires_micros BIGINT NOT NULL
);
-- Files uploaded to sessions (their bytes are in the blob store). Partial
-- indexes cover what is not DELETED (state 4).
CREATE TABLE attachments (
  attachment_id TEXT COLLATE "C" PRIMARY KEY,
  session_id TEXT NOT NULL,
  uploader_id TEXT NOT NULL,
  upload_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  blob_key TEXT NOT NULL,
  size_bytes BIGINT NOT NULL,
  uploaded_micros BIGINT NOT NULL,
  updated_micros BIGINT NOT NULL,
  scan_attempts INTEGER NOT NULL,
  fingerprint BYTEA NOT NULL,
  attachment BYTEA NOT NULL  -- serialized switchboard.sessions.v1.Attachment
);
CREATE UNIQUE INDEX attachments_by_upload ON attachments (session_id, uploader_id, upload_id);
CREATE INDEX attachments_by_uploader ON attachments (uploader_id, uploaded_micros);
CREATE INDEX attachments_pending ON attachments (updated_micros) WHERE state = 1;
CREATE INDEX attachments_live ON attachments (session_id) WHERE state <> 4;
CREATE INDEX attachments_live_blobs ON attachments (blob_key) WHERE state <> 4;
)sql",
      events::kPostgresOutboxMigration,
      // 3: as SQLite's 7, messages are read along the primary key.
      "DROP INDEX session_messages;",
  };
  return *migrations;
}

PostgresSessionStore::PostgresSessionStore(
    storage::PostgresGroupCommitter* committer,
    std::vector<std::unique_ptr<PostgresConnection>> readers, std::string topic,
    std::function<void()> after_commit)
    : committer_(committer),
      topic_(std::move(topic)),
      after_commit_(std::move(after_commit)),
      readers_(std::move(readers)) {
  for (const auto& reader : readers_) idle_readers_.push_back(reader.get());
}

absl::StatusOr<PostgresRows> PostgresSessionStore::Query(
    absl::string_view sql, const std::vector<PostgresParam>& params) {
  PostgresConnection* db = nullptr;
  {
    absl::MutexLock lock(&readers_mu_);
    readers_mu_.Await(absl::Condition(
        +[](std::vector<PostgresConnection*>* idle) { return !idle->empty(); },
        &idle_readers_));
    db = idle_readers_.back();
    idle_readers_.pop_back();
  }
  absl::StatusOr<PostgresRows> rows = db->Query(NumberedParameters(sql), params);
  absl::MutexLock lock(&readers_mu_);
  idle_readers_.push_back(db);
  return rows;
}

absl::StatusOr<std::vector<SessionRecord>> PostgresSessionStore::LoadOpen() {
  absl::StatusOr<PostgresRows> open =
      Query(absl::StrCat("SELECT ", kSessionColumns, " FROM sessions WHERE state IN (?, ?, ?, ?)"),
            {int64_t{v1::SESSION_STATE_BOT}, int64_t{v1::SESSION_STATE_QUEUED},
             int64_t{v1::SESSION_STATE_ASSIGNED}, int64_t{v1::SESSION_STATE_RESOLVED}});
  if (!open.ok()) return open.status();
  absl::StatusOr<std::vector<SessionRecord>> out = RecordsOf(*open);
  if (!out.ok()) return out.status();
  absl::StatusOr<PostgresRows> pending =
      Query(absl::StrCat("SELECT ", kSessionColumns,
                         " FROM sessions WHERE routing_pending <> 0 AND state = ?"),
            {int64_t{v1::SESSION_STATE_CLOSED}});
  if (!pending.ok()) return pending.status();
  absl::StatusOr<std::vector<SessionRecord>> closing = RecordsOf(*pending);
  if (!closing.ok()) return closing.status();
  for (SessionRecord& r : *closing) out->push_back(std::move(r));
  return out;
}

absl::StatusOr<int64_t> PostgresSessionStore::CountClosed() {
  absl::StatusOr<PostgresRows> count =
      Query("SELECT count(*) FROM sessions WHERE state = ?", {int64_t{v1::SESSION_STATE_CLOSED}});
  if (!count.ok()) return count.status();
  return count->Int(0, 0);
}

absl::Status PostgresSessionStore::Admit() { return committer_->Admit(); }

void PostgresSessionStore::Apply(SessionWrite write, std::function<void(absl::Status)> done) {
  committer_->Submit(
      [this, write = std::move(write)](PostgresConnection& db) {
        // Writes run one at a time in order on the writer thread: a write
        // after a failed one (in the same batch or a later one) sees it.
        if (failed_) {
          return absl::UnavailableError("an earlier sessions write failed; not writing");
        }
        fault::Point("sessions.commit.write");
        absl::Status status = WriteAll(db, write, topic_);
        // ABORTED is PostgreSQL rolling the whole batch back (a deadlock):
        // the committer runs it again, and reports it if it gives up.
        if (!status.ok() && !absl::IsAborted(status)) failed_ = true;
        return status;
      },
      [this, done = std::move(done)](absl::Status status) {
        // A failed COMMIT fails the writes that had succeeded in its batch.
        if (!status.ok()) failed_ = true;
        if (status.ok()) fault::Point("sessions.commit.done");
        if (status.ok() && after_commit_) after_commit_();
        done(status);
      });
}

absl::StatusOr<std::optional<SessionRecord>> PostgresSessionStore::ReadSession(
    const std::string& session_id) {
  absl::StatusOr<PostgresRows> rows = Query(
      absl::StrCat("SELECT ", kSessionColumns, " FROM sessions WHERE session_id = ?"),
      {session_id});
  if (!rows.ok()) return rows.status();
  absl::StatusOr<std::vector<SessionRecord>> records = RecordsOf(*rows);
  if (!records.ok()) return records.status();
  if (records->empty()) return std::nullopt;
  return std::move((*records)[0]);
}

absl::StatusOr<std::optional<StoredMessage>> PostgresSessionStore::FindMessage(
    const std::string& session_id, const std::string& client_message_id) {
  absl::StatusOr<PostgresRows> rows =
      Query("SELECT fingerprint, event FROM session_events "
            "WHERE session_id = ? AND client_message_id = ? AND client_message_id <> ''",
            {session_id, client_message_id});
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::nullopt;
  v1::SessionEvent event;
  if (!event.ParseFromString(rows->Bytes(0, 1))) {
    return absl::DataLossError("sessions store: unreadable event of " + session_id);
  }
  return StoredMessage{std::move(*event.mutable_message()), rows->Bytes(0, 0)};
}

absl::StatusOr<std::optional<std::string>> PostgresSessionStore::FindCreated(
    const std::string& customer_id, const std::string& request_id) {
  absl::StatusOr<PostgresRows> rows =
      Query("SELECT session_id FROM sessions "
            "WHERE customer_id = ? AND create_request_id = ? AND create_request_id <> ''",
            {customer_id, request_id});
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::nullopt;
  return rows->Text(0, 0);
}

absl::StatusOr<std::optional<std::string>> PostgresSessionStore::FindTokenBinding(
    const std::string& token_id) {
  absl::StatusOr<PostgresRows> rows =
      Query("SELECT session_id FROM token_bindings WHERE token_id = ?", {token_id});
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::nullopt;
  return rows->Text(0, 0);
}

absl::StatusOr<std::vector<v1::Session>> PostgresSessionStore::ListSessions(
    const SessionQuery& query) {
  // One query whatever the states: PostgreSQL's planner picks the index
  // (SQLite's store merges one indexed query per state instead).
  const SessionFilter filter = ListSessionsFilter(query, v1::SESSION_STATE_UNSPECIFIED);
  std::vector<PostgresParam> params = storage::PostgresParams(filter.values);
  params.emplace_back(int64_t{query.limit});
  absl::StatusOr<PostgresRows> rows =
      Query(absl::StrCat("SELECT session_id, session FROM sessions WHERE ", filter.Where(),
                         " ORDER BY created_micros DESC, session_id DESC LIMIT ?"),
            params);
  if (!rows.ok()) return rows.status();
  std::vector<v1::Session> out(rows->size());
  for (int r = 0; r < rows->size(); ++r) {
    if (!out[r].ParseFromString(rows->Bytes(r, 1))) {
      return absl::DataLossError("sessions store: unreadable session " + rows->Text(r, 0));
    }
  }
  return out;
}

absl::StatusOr<std::vector<v1::SessionEvent>> PostgresSessionStore::ReadEvents(
    const std::string& session_id, int64_t after, int64_t up_to, int limit) {
  absl::StatusOr<PostgresRows> rows =
      Query("SELECT event FROM session_events WHERE session_id = ? AND sequence > ? "
            "AND sequence <= ? ORDER BY sequence LIMIT ?",
            {session_id, after, up_to, limit});
  if (!rows.ok()) return rows.status();
  std::vector<v1::SessionEvent> out(rows->size());
  for (int r = 0; r < rows->size(); ++r) {
    if (!out[r].ParseFromString(rows->Bytes(r, 0))) {
      return absl::DataLossError("sessions store: unreadable event of " + session_id);
    }
  }
  return out;
}

absl::StatusOr<std::vector<v1::Message>> PostgresSessionStore::ReadMessages(
    const std::string& session_id, int64_t after, int64_t before, bool newest_first,
    int limit) {
  absl::StatusOr<PostgresRows> rows = Query(
      absl::StrCat("SELECT event FROM session_events WHERE session_id = ? AND is_message = 1 "
                   "AND sequence > ? AND sequence < ? ORDER BY sequence",
                   newest_first ? " DESC" : "", " LIMIT ?"),
      {session_id, after, before <= 0 ? INT64_MAX : before, limit});
  if (!rows.ok()) return rows.status();
  std::vector<v1::Message> out;
  out.reserve(rows->size());
  for (int r = 0; r < rows->size(); ++r) {
    v1::SessionEvent event;
    if (!event.ParseFromString(rows->Bytes(r, 0))) {
      return absl::DataLossError("sessions store: unreadable message of " + session_id);
    }
    out.push_back(std::move(*event.mutable_message()));
  }
  return out;
}

absl::StatusOr<std::optional<AttachmentRecord>> PostgresSessionStore::FindAttachment(
    const std::string& attachment_id) {
  return FirstAttachment(Query(
      absl::StrCat("SELECT ", kAttachmentColumns, " FROM attachments a WHERE attachment_id = ?"),
      {attachment_id}));
}

absl::StatusOr<std::optional<AttachmentRecord>> PostgresSessionStore::FindUpload(
    const std::string& session_id, const std::string& uploader_id,
    const std::string& upload_id) {
  return FirstAttachment(
      Query(absl::StrCat("SELECT ", kAttachmentColumns,
                         " FROM attachments a "
                         "WHERE session_id = ? AND uploader_id = ? AND upload_id = ?"),
            {session_id, uploader_id, upload_id}));
}

absl::StatusOr<std::vector<AttachmentRecord>> PostgresSessionStore::PendingScans(int limit) {
  absl::StatusOr<PostgresRows> rows =
      Query(absl::StrCat("SELECT ", kAttachmentColumns, " FROM attachments a WHERE state = ",
                         kPendingScan, " ORDER BY updated_micros LIMIT ?"),
            {limit});
  if (!rows.ok()) return rows.status();
  return AttachmentsOf(*rows);
}

absl::StatusOr<std::pair<int, int64_t>> PostgresSessionStore::UploadedSince(
    const std::string& uploader_id, absl::Time since) {
  absl::StatusOr<PostgresRows> rows =
      Query("SELECT count(*), coalesce(sum(size_bytes), 0) FROM attachments "
            "WHERE uploader_id = ? AND uploaded_micros >= ?",
            {uploader_id, ToMicros(since)});
  if (!rows.ok()) return rows.status();
  return std::pair<int, int64_t>{static_cast<int>(rows->Int(0, 0)), rows->Int(0, 1)};
}

absl::StatusOr<std::vector<AttachmentRecord>> PostgresSessionStore::ExpiredAttachments(
    absl::Time closed_before, int limit) {
  absl::StatusOr<PostgresRows> rows =
      Query(absl::StrCat("SELECT ", kAttachmentColumns,
                         " FROM attachments a JOIN sessions s ON s.session_id = a.session_id "
                         "WHERE a.state <> ",
                         kDeleted, " AND s.state = ? AND s.state_since_micros < ? LIMIT ?"),
            {int64_t{v1::SESSION_STATE_CLOSED}, ToMicros(closed_before), limit});
  if (!rows.ok()) return rows.status();
  return AttachmentsOf(*rows);
}

absl::StatusOr<bool> PostgresSessionStore::BlobInUse(const std::string& blob_key) {
  absl::StatusOr<PostgresRows> rows = Query(
      absl::StrCat("SELECT 1 FROM attachments WHERE blob_key = ? AND state <> ", kDeleted,
                   " LIMIT 1"),
      {blob_key});
  if (!rows.ok()) return rows.status();
  return !rows->empty();
}

absl::StatusOr<std::vector<AttachmentRecord>> PostgresSessionStore::ListAttachments(
    const std::string& after_id, int limit) {
  absl::StatusOr<PostgresRows> rows = Query(
      absl::StrCat("SELECT ", kAttachmentColumns,
                   " FROM attachments a WHERE attachment_id > ? ORDER BY attachment_id LIMIT ?"),
      {after_id, limit});
  if (!rows.ok()) return rows.status();
  return AttachmentsOf(*rows);
}

}  // namespace switchboard::sessions
