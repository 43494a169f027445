#include "services/sessions/sqlite_store.h"

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "libs/events/outbox.h"
#include "libs/fault/fault_point.h"
#include "libs/protoutil/time.h"
#include "libs/storage/time_column.h"
#include "services/sessions/store_sql.h"

namespace switchboard::sessions {
namespace {

using storage::ToMicros;

// Rows backfilled per transaction by CompleteSessionColumns.
constexpr int kBackfillBatch = 2000;

int64_t CreatedMicros(const v1::Session& s) {
  return absl::ToUnixMicros(protoutil::FromTimestamp(s.created_at()));
}

absl::Status ReadRecords(storage::Statement& select, std::vector<SessionRecord>& out) {
  while (true) {
    absl::StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    absl::StatusOr<SessionRecord> r = RecordFromRow(storage::SqliteRow(select));
    if (!r.ok()) return r.status();
    out.push_back(std::move(*r));
  }
}

absl::Status WriteAll(storage::Database& db, const SessionWrite& write,
                      const std::string& topic) {
  for (const SqlStatement& statement : WriteStatements(write, IndexedColumns::kSeparateUpdates)) {
    if (absl::Status s = storage::Run(db, statement); !s.ok()) return s;
  }
  for (const events::v1::Event& event : write.events) {
    if (absl::Status s = events::AppendToOutbox(db, topic, event); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The query of one ListSessions read, on the index that narrows it most.
// `state` (if not UNSPECIFIED) replaces query.states: a page over several
// states is merged from one indexed query per state.
absl::StatusOr<std::vector<std::pair<std::pair<int64_t, std::string>, v1::Session>>>
QuerySessions(storage::Database& db, const SessionQuery& query, v1::SessionState state) {
  const SessionFilter filter = ListSessionsFilter(query, state);
  auto select = db.Prepare(absl::StrCat(
      "SELECT created_micros, session_id, session FROM sessions INDEXED BY ", filter.index,
      " WHERE ", filter.Where(), " ORDER BY created_micros DESC, session_id DESC LIMIT ?"));
  if (!select.ok()) return select.status();
  storage::BindAll(*select, filter.values);
  select->Bind(static_cast<int>(filter.values.size()) + 1, static_cast<int64_t>(query.limit));
  std::vector<std::pair<std::pair<int64_t, std::string>, v1::Session>> out;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto& [key, session] = out.emplace_back();
    key = {select->ColumnInt(0), select->ColumnText(1)};
    if (!session.ParseFromString(select->ColumnBlob(2))) {
      return absl::DataLossError("sessions.db: unreadable session " + key.second);
    }
  }
  return out;
}

// The partial indexes' conditions, written as literals in the queries that
// use them (SQLite can use a partial index only when the query's WHERE
// implies the index's, which a bound parameter never does).
constexpr int kPendingScan = v1::ATTACHMENT_STATE_PENDING_SCAN;
constexpr int kDeleted = v1::ATTACHMENT_STATE_DELETED;
static_assert(kPendingScan == 1 && kDeleted == 4, "the attachment indexes of migration 6");

// Reads every row of `select` (kAttachmentColumns) into `out`.
absl::Status ReadAttachments(storage::Statement& select, std::vector<AttachmentRecord>& out) {
  while (true) {
    absl::StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    absl::StatusOr<AttachmentRecord> r = AttachmentFromRow(storage::SqliteRow(select));
    if (!r.ok()) return r.status();
    out.push_back(*std::move(r));
  }
}

absl::StatusOr<std::optional<AttachmentRecord>> FirstAttachment(storage::Statement& select) {
  std::vector<AttachmentRecord> out;
  if (absl::Status s = ReadAttachments(select, out); !s.ok()) return s;
  if (out.empty()) return std::nullopt;
  return std::move(out[0]);
}

}  // namespace

const std::vector<std::string>& SessionsMigrations() {
  static const auto* migrations = new std::vector<std::string>{
      // 1: sessions and their numbered events.
      "CREATE TABLE sessions("
      "  session_id TEXT PRIMARY KEY,"
      "  customer_id TEXT NOT NULL,"
      "  session BLOB NOT NULL,"  // serialized switchboard.sessions.v1.Session
      "  create_request_id TEXT NOT NULL,"
      "  request_ids TEXT NOT NULL,"  // newline-separated, newest last
      "  routing_pending INTEGER NOT NULL,"
      "  routing_version INTEGER NOT NULL,"
      "  enqueue BLOB NOT NULL,"  // serialized routing.v1.EnqueueSessionRequest
      "  cancel_reason INTEGER NOT NULL,"
      "  bot_since_micros INTEGER NOT NULL,"
      "  bot_turns INTEGER NOT NULL,"
      "  state_since_micros INTEGER NOT NULL,"
      "  first_queued_at_micros INTEGER NOT NULL,"
      "  customer_messages INTEGER NOT NULL,"
      "  bot_messages INTEGER NOT NULL,"
      "  agent_messages INTEGER NOT NULL,"
      "  assignments INTEGER NOT NULL,"
      "  resolved_by TEXT NOT NULL,"
      "  pending_callback_id TEXT NOT NULL);"
      "CREATE INDEX sessions_by_customer ON sessions(customer_id);"
      "CREATE TABLE session_events("
      "  session_id TEXT NOT NULL REFERENCES sessions(session_id),"
      "  sequence INTEGER NOT NULL,"
      "  is_message INTEGER NOT NULL,"
      "  client_message_id TEXT NOT NULL,"  // empty unless a keyed message
      "  fingerprint BLOB NOT NULL,"
      "  event BLOB NOT NULL,"  // serialized switchboard.sessions.v1.SessionEvent
      "  PRIMARY KEY(session_id, sequence)) WITHOUT ROWID;"
      "CREATE INDEX session_messages ON session_events(session_id, is_message, sequence);",
      // 2: the event outbox.
      events::kOutboxMigration,
      // 3: the customer message whose bot turn a restart must run again.
      "ALTER TABLE sessions ADD COLUMN bot_turn_sequence INTEGER NOT NULL DEFAULT 0;",
      // 4: memory holds open work only. Start-up reads open sessions by
      // state; ListSessions pages through indexes on customer, agent,
      // state and time; idempotency keys of messages and creations are
      // looked up by index. The new columns repeat fields of the
      // serialized session; rows written before this migration get them
      // from CompleteSessionColumns (state 0 marks them).
      "ALTER TABLE sessions ADD COLUMN state INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE sessions ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE sessions ADD COLUMN created_micros INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE sessions ADD COLUMN category INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE sessions ADD COLUMN channel INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE sessions ADD COLUMN pending_callback_session_id TEXT NOT NULL "
      "  DEFAULT '';"
      "DROP INDEX sessions_by_customer;"
      "CREATE INDEX sessions_by_customer_time "
      "  ON sessions(customer_id, created_micros, session_id);"
      "CREATE INDEX sessions_by_agent_time "
      "  ON sessions(agent_id, created_micros, session_id) WHERE agent_id != '';"
      "CREATE INDEX sessions_by_state_time ON sessions(state, created_micros, session_id);"
      "CREATE INDEX sessions_by_time ON sessions(created_micros, session_id);"
      "CREATE INDEX sessions_routing_pending ON sessions(session_id) "
      "  WHERE routing_pending != 0;"
      "CREATE INDEX sessions_by_request ON sessions(customer_id, create_request_id) "
      "  WHERE create_request_id != '';"
      "CREATE INDEX session_keys ON session_events(session_id, client_message_id) "
      "  WHERE client_message_id != '';",
      // 5: the session each verification token was put to use on, so that
      // a token verifies one session only. Kept like the sessions' history
      // (a row is a few dozen bytes); never read at start.
      "CREATE TABLE token_bindings("
      "  token_id TEXT PRIMARY KEY,"
      "  session_id TEXT NOT NULL,"
      "  customer_id TEXT NOT NULL,"
      "  bound_micros INTEGER NOT NULL,"
      "  expires_micros INTEGER NOT NULL) WITHOUT ROWID;",
      // 6: files uploaded to sessions (their bytes are in the blob store).
      // Partial indexes cover what is not DELETED (state 4), so the scan,
      // retention and blob-sharing look-ups walk the working set, not the
      // history.
      "CREATE TABLE attachments("
      "  attachment_id TEXT PRIMARY KEY,"
      "  session_id TEXT NOT NULL,"
      "  uploader_id TEXT NOT NULL,"
      "  upload_id TEXT NOT NULL,"
      "  state INTEGER NOT NULL,"
      "  blob_key TEXT NOT NULL,"
      "  size_bytes INTEGER NOT NULL,"
      "  uploaded_micros INTEGER NOT NULL,"
      "  updated_micros INTEGER NOT NULL,"
      "  scan_attempts INTEGER NOT NULL,"
      "  fingerprint BLOB NOT NULL,"
      "  attachment BLOB NOT NULL) WITHOUT ROWID;"  // serialized sessions.v1.Attachment
      "CREATE UNIQUE INDEX attachments_by_upload "
      "  ON attachments(session_id, uploader_id, upload_id);"
      "CREATE INDEX attachments_by_uploader ON attachments(uploader_id, uploaded_micros);"
      "CREATE INDEX attachments_pending ON attachments(updated_micros) WHERE state = 1;"
      "CREATE INDEX attachments_live ON attachments(session_id) WHERE state != 4;"
      "CREATE INDEX attachments_live_blobs ON attachments(blob_key) WHERE state != 4;",
      // 7: a session's messages are read along the primary key (session,
      // sequence), skipping its other events: the index on (session,
      // is_message, sequence) cost every message one more B-tree page to
      // write and buys a read little, since most events are messages.
      "DROP INDEX session_messages;",
  };
  return *migrations;
}

absl::Status CompleteSessionColumns(storage::Database& db) {
  while (true) {
    int done = 0;
    absl::Status status = db.InTransaction([&]() -> absl::Status {
      auto select = db.Prepare(
          "SELECT session_id, session FROM sessions INDEXED BY sessions_by_state_time "
          "WHERE state = 0 LIMIT ?");
      if (!select.ok()) return select.status();
      select->Bind(1, kBackfillBatch);
      std::vector<v1::Session> batch;
      while (true) {
        absl::StatusOr<bool> row = select->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        if (!batch.emplace_back().ParseFromString(select->ColumnBlob(1))) {
          return absl::DataLossError("sessions.db: unreadable session " +
                                     select->ColumnText(0));
        }
      }
      for (const v1::Session& s : batch) {
        auto update = db.Prepare(
            "UPDATE sessions SET state = ?, agent_id = ?, created_micros = ?, "
            "category = ?, channel = ? WHERE session_id = ?");
        if (!update.ok()) return update.status();
        absl::Status updated = update->Bind(1, static_cast<int64_t>(s.state()))
                                   .Bind(2, s.assigned_agent_id())
                                   .Bind(3, CreatedMicros(s))
                                   .Bind(4, static_cast<int64_t>(s.category()))
                                   .Bind(5, static_cast<int64_t>(s.channel()))
                                   .Bind(6, s.session_id())
                                   .Run();
        if (!updated.ok()) return updated;
        // A PHONE session serving a callback: its origin learns its id.
        if (!s.parent_session_id().empty() && !s.callback().callback_id().empty()) {
          auto link = db.Prepare(
              "UPDATE sessions SET pending_callback_session_id = ? "
              "WHERE session_id = ? AND pending_callback_id = ?");
          if (!link.ok()) return link.status();
          absl::Status linked = link->Bind(1, s.session_id())
                                    .Bind(2, s.parent_session_id())
                                    .Bind(3, s.callback().callback_id())
                                    .Run();
          if (!linked.ok()) return linked;
        }
      }
      done = static_cast<int>(batch.size());
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    if (done < kBackfillBatch) return absl::OkStatus();
  }
}

absl::Status ApplyDirect(storage::Database& db, const SessionWrite& write,
                         const std::string& topic) {
  return WriteAll(db, write, topic);
}

absl::StatusOr<std::unique_ptr<storage::Database>> OpenSessionsDatabase(
    const storage::Database::Options& options) {
  auto db = storage::Database::OpenMigrated(options, SessionsMigrations());
  if (!db.ok()) return db.status();
  if (absl::Status s = CompleteSessionColumns(**db); !s.ok()) return s;
  return db;
}

SqliteSessionStore::Lease::Lease(SqliteSessionStore* store) : store_(store) {
  absl::MutexLock lock(&store_->readers_mu_);
  store_->readers_mu_.Await(absl::Condition(
      +[](std::vector<storage::Database*>* idle) { return !idle->empty(); },
      &store_->idle_readers_));
  db_ = store_->idle_readers_.back();
  store_->idle_readers_.pop_back();
}

SqliteSessionStore::Lease::~Lease() {
  absl::MutexLock lock(&store_->readers_mu_);
  store_->idle_readers_.push_back(db_);
}

SqliteSessionStore::SqliteSessionStore(
    storage::GroupCommitter* committer,
    std::vector<std::unique_ptr<storage::Database>> readers, std::string topic,
    std::function<void()> after_commit)
    : committer_(committer),
      topic_(std::move(topic)),
      after_commit_(std::move(after_commit)),
      readers_(std::move(readers)) {
  for (const auto& reader : readers_) idle_readers_.push_back(reader.get());
}

absl::StatusOr<std::vector<SessionRecord>> SqliteSessionStore::LoadOpen() {
  Lease lease(this);
  storage::Database& db = lease.db();
  std::vector<SessionRecord> out;
  auto open = db.Prepare(absl::StrCat(
      "SELECT ", kSessionColumns,
      " FROM sessions INDEXED BY sessions_by_state_time WHERE state IN (?, ?, ?, ?)"));
  if (!open.ok()) return open.status();
  open->Bind(1, static_cast<int64_t>(v1::SESSION_STATE_BOT))
      .Bind(2, static_cast<int64_t>(v1::SESSION_STATE_QUEUED))
      .Bind(3, static_cast<int64_t>(v1::SESSION_STATE_ASSIGNED))
      .Bind(4, static_cast<int64_t>(v1::SESSION_STATE_RESOLVED));
  if (absl::Status s = ReadRecords(*open, out); !s.ok()) return s;
  auto pending = db.Prepare(absl::StrCat(
      "SELECT ", kSessionColumns,
      " FROM sessions INDEXED BY sessions_routing_pending "
      "WHERE routing_pending != 0 AND state = ?"));
  if (!pending.ok()) return pending.status();
  pending->Bind(1, static_cast<int64_t>(v1::SESSION_STATE_CLOSED));
  if (absl::Status s = ReadRecords(*pending, out); !s.ok()) return s;
  return out;
}

absl::StatusOr<int64_t> SqliteSessionStore::CountClosed() {
  Lease lease(this);
  auto count = lease.db().Prepare(
      "SELECT count(*) FROM sessions INDEXED BY sessions_by_state_time WHERE state = ?");
  if (!count.ok()) return count.status();
  count->Bind(1, static_cast<int64_t>(v1::SESSION_STATE_CLOSED));
  absl::StatusOr<bool> row = count->Step();
  if (!row.ok()) return row.status();
  return *row ? count->ColumnInt(0) : 0;
}

absl::Status SqliteSessionStore::Admit() { return committer_->Admit(); }

void SqliteSessionStore::Apply(SessionWrite write,
                               std::function<void(absl::Status)> done) {
  committer_->Submit(
      [this, write = std::move(write)](storage::Database& db) {
        // Writes run one at a time in order on the writer thread: a write
        // after a failed one (in the same batch or a later one) sees it.
        if (failed_) {
          return absl::UnavailableError("an earlier sessions write failed; not writing");
        }
        fault::Point("sessions.commit.write");
        absl::Status status = WriteAll(db, write, topic_);
        if (!status.ok()) failed_ = true;
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

absl::StatusOr<std::optional<SessionRecord>> SqliteSessionStore::ReadSession(
    const std::string& session_id) {
  Lease lease(this);
  auto select = lease.db().Prepare(
      absl::StrCat("SELECT ", kSessionColumns, " FROM sessions WHERE session_id = ?"));
  if (!select.ok()) return select.status();
  select->Bind(1, session_id);
  std::vector<SessionRecord> out;
  if (absl::Status s = ReadRecords(*select, out); !s.ok()) return s;
  if (out.empty()) return std::nullopt;
  return std::move(out[0]);
}

absl::StatusOr<std::optional<StoredMessage>> SqliteSessionStore::FindMessage(
    const std::string& session_id, const std::string& client_message_id) {
  Lease lease(this);
  auto select = lease.db().Prepare(
      "SELECT fingerprint, event FROM session_events INDEXED BY session_keys "
      "WHERE session_id = ? AND client_message_id = ? AND client_message_id != ''");
  if (!select.ok()) return select.status();
  select->Bind(1, session_id).Bind(2, client_message_id);
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  v1::SessionEvent event;
  if (!event.ParseFromString(select->ColumnBlob(1))) {
    return absl::DataLossError("sessions.db: unreadable event of " + session_id);
  }
  return StoredMessage{std::move(*event.mutable_message()), select->ColumnBlob(0)};
}

absl::StatusOr<std::optional<std::string>> SqliteSessionStore::FindCreated(
    const std::string& customer_id, const std::string& request_id) {
  Lease lease(this);
  auto select = lease.db().Prepare(
      "SELECT session_id FROM sessions INDEXED BY sessions_by_request "
      "WHERE customer_id = ? AND create_request_id = ? AND create_request_id != ''");
  if (!select.ok()) return select.status();
  select->Bind(1, customer_id).Bind(2, request_id);
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  return select->ColumnText(0);
}

absl::StatusOr<std::optional<std::string>> SqliteSessionStore::FindTokenBinding(
    const std::string& token_id) {
  Lease lease(this);
  auto select = lease.db().Prepare("SELECT session_id FROM token_bindings WHERE token_id = ?");
  if (!select.ok()) return select.status();
  select->Bind(1, token_id);
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  return select->ColumnText(0);
}

absl::StatusOr<std::vector<v1::Session>> SqliteSessionStore::ListSessions(
    const SessionQuery& query) {
  Lease lease(this);
  std::vector<std::pair<std::pair<int64_t, std::string>, v1::Session>> rows;
  // Without a customer or agent, a filter on states runs one indexed query
  // per state and merges them: SQLite would otherwise sort every match.
  if (query.customer_id.empty() && query.agent_id.empty() && !query.states.empty()) {
    for (v1::SessionState state : query.states) {
      auto part = QuerySessions(lease.db(), query, state);
      if (!part.ok()) return part.status();
      for (auto& row : *part) rows.push_back(std::move(row));
    }
    std::sort(rows.begin(), rows.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    rows.erase(std::unique(rows.begin(), rows.end(),
                           [](const auto& a, const auto& b) { return a.first == b.first; }),
               rows.end());
    if (static_cast<int>(rows.size()) > query.limit) rows.resize(query.limit);
  } else {
    auto all = QuerySessions(lease.db(), query, v1::SESSION_STATE_UNSPECIFIED);
    if (!all.ok()) return all.status();
    rows = std::move(*all);
  }
  std::vector<v1::Session> out;
  out.reserve(rows.size());
  for (auto& row : rows) out.push_back(std::move(row.second));
  return out;
}

absl::StatusOr<std::vector<v1::SessionEvent>> SqliteSessionStore::ReadEvents(
    const std::string& session_id, int64_t after, int64_t up_to, int limit) {
  Lease lease(this);
  auto select = lease.db().Prepare(
      "SELECT event FROM session_events WHERE session_id = ? AND sequence > ? "
      "AND sequence <= ? ORDER BY sequence LIMIT ?");
  if (!select.ok()) return select.status();
  select->Bind(1, session_id).Bind(2, after).Bind(3, up_to).Bind(4, limit);
  std::vector<v1::SessionEvent> out;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (!out.emplace_back().ParseFromString(select->ColumnBlob(0))) {
      return absl::DataLossError("sessions.db: unreadable event of " + session_id);
    }
  }
  return out;
}

absl::StatusOr<std::vector<v1::Message>> SqliteSessionStore::ReadMessages(
    const std::string& session_id, int64_t after, int64_t before, bool newest_first,
    int limit) {
  Lease lease(this);
  auto select = lease.db().Prepare(
      newest_first
          ? "SELECT event FROM session_events WHERE session_id = ? AND is_message = 1 "
            "AND sequence > ? AND sequence < ? ORDER BY sequence DESC LIMIT ?"
          : "SELECT event FROM session_events WHERE session_id = ? AND is_message = 1 "
            "AND sequence > ? AND sequence < ? ORDER BY sequence LIMIT ?");
  if (!select.ok()) return select.status();
  select->Bind(1, session_id)
      .Bind(2, after)
      .Bind(3, before <= 0 ? INT64_MAX : before)
      .Bind(4, limit);
  std::vector<v1::Message> out;
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    v1::SessionEvent event;
    if (!event.ParseFromString(select->ColumnBlob(0))) {
      return absl::DataLossError("sessions.db: unreadable message of " + session_id);
    }
    out.push_back(std::move(*event.mutable_message()));
  }
  return out;
}

absl::StatusOr<std::optional<AttachmentRecord>> SqliteSessionStore::FindAttachment(
    const std::string& attachment_id) {
  Lease lease(this);
  auto select = lease.db().Prepare(absl::StrCat("SELECT ", kAttachmentColumns,
                                                " FROM attachments a WHERE attachment_id = ?"));
  if (!select.ok()) return select.status();
  select->Bind(1, attachment_id);
  return FirstAttachment(*select);
}

absl::StatusOr<std::optional<AttachmentRecord>> SqliteSessionStore::FindUpload(
    const std::string& session_id, const std::string& uploader_id,
    const std::string& upload_id) {
  Lease lease(this);
  auto select = lease.db().Prepare(absl::StrCat(
      "SELECT ", kAttachmentColumns,
      " FROM attachments a INDEXED BY attachments_by_upload "
      "WHERE session_id = ? AND uploader_id = ? AND upload_id = ?"));
  if (!select.ok()) return select.status();
  select->Bind(1, session_id).Bind(2, uploader_id).Bind(3, upload_id);
  return FirstAttachment(*select);
}

absl::StatusOr<std::vector<AttachmentRecord>> SqliteSessionStore::PendingScans(int limit) {
  Lease lease(this);
  auto select = lease.db().Prepare(absl::StrCat(
      "SELECT ", kAttachmentColumns,
      " FROM attachments a INDEXED BY attachments_pending WHERE state = ",
      kPendingScan, " ORDER BY updated_micros LIMIT ?"));
  if (!select.ok()) return select.status();
  select->Bind(1, limit);
  std::vector<AttachmentRecord> out;
  if (absl::Status s = ReadAttachments(*select, out); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::pair<int, int64_t>> SqliteSessionStore::UploadedSince(
    const std::string& uploader_id, absl::Time since) {
  Lease lease(this);
  auto select = lease.db().Prepare(
      "SELECT count(*), coalesce(sum(size_bytes), 0) FROM attachments "
      "INDEXED BY attachments_by_uploader WHERE uploader_id = ? AND uploaded_micros >= ?");
  if (!select.ok()) return select.status();
  select->Bind(1, uploader_id).Bind(2, ToMicros(since));
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::pair<int, int64_t>{0, 0};
  return std::pair<int, int64_t>{static_cast<int>(select->ColumnInt(0)), select->ColumnInt(1)};
}

absl::StatusOr<std::vector<AttachmentRecord>> SqliteSessionStore::ExpiredAttachments(
    absl::Time closed_before, int limit) {
  Lease lease(this);
  // Walks the attachments that are not DELETED (the working set), each
  // with its session by primary key.
  auto select = lease.db().Prepare(absl::StrCat(
      "SELECT ", kAttachmentColumns,
      " FROM attachments a INDEXED BY attachments_live JOIN sessions s "
      "ON s.session_id = a.session_id WHERE a.state != ",
      kDeleted, " AND s.state = ? AND s.state_since_micros < ? LIMIT ?"));
  if (!select.ok()) return select.status();
  select->Bind(1, static_cast<int64_t>(v1::SESSION_STATE_CLOSED))
      .Bind(2, ToMicros(closed_before))
      .Bind(3, limit);
  std::vector<AttachmentRecord> out;
  if (absl::Status s = ReadAttachments(*select, out); !s.ok()) return s;
  return out;
}

absl::StatusOr<bool> SqliteSessionStore::BlobInUse(const std::string& blob_key) {
  Lease lease(this);
  auto select = lease.db().Prepare(absl::StrCat(
      "SELECT 1 FROM attachments INDEXED BY attachments_live_blobs "
      "WHERE blob_key = ? AND state != ",
      kDeleted, " LIMIT 1"));
  if (!select.ok()) return select.status();
  select->Bind(1, blob_key);
  return select->Step();
}

absl::StatusOr<std::vector<AttachmentRecord>> SqliteSessionStore::ListAttachments(
    const std::string& after_id, int limit) {
  Lease lease(this);
  auto select = lease.db().Prepare(absl::StrCat(
      "SELECT ", kAttachmentColumns,
      " FROM attachments a WHERE attachment_id > ? ORDER BY attachment_id LIMIT ?"));
  if (!select.ok()) return select.status();
  select->Bind(1, after_id).Bind(2, limit);
  std::vector<AttachmentRecord> out;
  if (absl::Status s = ReadAttachments(*select, out); !s.ok()) return s;
  return out;
}

}  // namespace switchboard::sessions
