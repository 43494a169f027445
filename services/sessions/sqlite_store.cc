#include "services/sessions/sqlite_store.h"

#include <climits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/events/outbox.h"
#include "libs/storage/time_column.h"

namespace switchboard::sessions {
namespace {

using storage::FromMicros;
using storage::ToMicros;

constexpr char kSessionColumns[] =
    "session_id, customer_id, session, create_request_id, request_ids, "
    "routing_pending, routing_version, enqueue, cancel_reason, bot_since_micros, "
    "bot_turns, state_since_micros, first_queued_at_micros, customer_messages, "
    "bot_messages, agent_messages, assignments, resolved_by, pending_callback_id, "
    "bot_turn_sequence";

absl::Status SaveSession(storage::Database& db, const SessionRecord& r) {
  auto upsert = db.Prepare(absl::StrCat(
      "INSERT OR REPLACE INTO sessions(", kSessionColumns,
      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  if (!upsert.ok()) return upsert.status();
  return upsert->Bind(1, r.session.session_id())
      .Bind(2, r.session.customer_id())
      .BindBlob(3, r.session.SerializeAsString())
      .Bind(4, r.create_request_id)
      .Bind(5, absl::StrJoin(r.request_ids, "\n"))
      .Bind(6, static_cast<int64_t>(r.routing_pending))
      .Bind(7, r.routing_version)
      .BindBlob(8, r.enqueue.SerializeAsString())
      .Bind(9, static_cast<int64_t>(r.cancel_reason))
      .Bind(10, ToMicros(r.bot_since))
      .Bind(11, static_cast<int64_t>(r.bot_turns))
      .Bind(12, ToMicros(r.state_since))
      .Bind(13, ToMicros(r.first_queued_at))
      .Bind(14, static_cast<int64_t>(r.customer_messages))
      .Bind(15, static_cast<int64_t>(r.bot_messages))
      .Bind(16, static_cast<int64_t>(r.agent_messages))
      .Bind(17, static_cast<int64_t>(r.assignments))
      .Bind(18, r.resolved_by)
      .Bind(19, r.pending_callback_id)
      .Bind(20, r.bot_turn_sequence)
      .Run();
}

absl::Status WriteAll(storage::Database& db, const SessionWrite& write,
                      const std::string& topic) {
  for (const SessionRecord& session : write.sessions) {
    if (absl::Status s = SaveSession(db, session); !s.ok()) return s;
  }
  for (const v1::SessionEvent& event : write.session_events) {
    auto insert = db.Prepare(
        "INSERT INTO session_events(session_id, sequence, is_message, "
        "client_message_id, fingerprint, event) VALUES (?, ?, ?, ?, ?, ?)");
    if (!insert.ok()) return insert.status();
    std::string fingerprint;
    if (event.has_message()) {
      for (const auto& [message_id, f] : write.fingerprints) {
        if (message_id == event.message().message_id()) fingerprint = f;
      }
    }
    absl::Status s = insert->Bind(1, event.session_id())
                         .Bind(2, event.sequence())
                         .Bind(3, static_cast<int64_t>(event.has_message()))
                         .Bind(4, event.message().client_message_id())
                         .BindBlob(5, fingerprint)
                         .BindBlob(6, event.SerializeAsString())
                         .Run();
    if (!s.ok()) return s;
  }
  for (const events::v1::Event& event : write.events) {
    if (absl::Status s = events::AppendToOutbox(db, topic, event); !s.ok()) return s;
  }
  return absl::OkStatus();
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
  };
  return *migrations;
}

SqliteSessionStore::SqliteSessionStore(storage::GroupCommitter* committer,
                                       std::unique_ptr<storage::Database> reader,
                                       std::string topic,
                                       std::function<void()> after_commit)
    : committer_(committer),
      topic_(std::move(topic)),
      after_commit_(std::move(after_commit)),
      reader_(std::move(reader)) {}

absl::StatusOr<SessionStore::Contents> SqliteSessionStore::Load() {
  Contents contents;
  absl::MutexLock lock(&reader_mu_);
  storage::Database& db = *reader_;
  auto sessions = db.Prepare(absl::StrCat("SELECT ", kSessionColumns, " FROM sessions"));
  if (!sessions.ok()) return sessions.status();
  while (true) {
    absl::StatusOr<bool> row = sessions->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    SessionRecord r;
    if (!r.session.ParseFromString(sessions->ColumnBlob(2)) ||
        !r.enqueue.ParseFromString(sessions->ColumnBlob(7))) {
      return absl::DataLossError("sessions.db: unreadable session " +
                                 sessions->ColumnText(0));
    }
    r.create_request_id = sessions->ColumnText(3);
    for (absl::string_view id :
         absl::StrSplit(sessions->ColumnText(4), '\n', absl::SkipEmpty())) {
      r.request_ids.emplace_back(id);
    }
    r.routing_pending = sessions->ColumnInt(5) != 0;
    r.routing_version = sessions->ColumnInt(6);
    r.cancel_reason = static_cast<routing::v1::CancelReason>(sessions->ColumnInt(8));
    r.bot_since = FromMicros(sessions->ColumnInt(9));
    r.bot_turns = static_cast<int32_t>(sessions->ColumnInt(10));
    r.state_since = FromMicros(sessions->ColumnInt(11));
    r.first_queued_at = FromMicros(sessions->ColumnInt(12));
    r.customer_messages = static_cast<int32_t>(sessions->ColumnInt(13));
    r.bot_messages = static_cast<int32_t>(sessions->ColumnInt(14));
    r.agent_messages = static_cast<int32_t>(sessions->ColumnInt(15));
    r.assignments = static_cast<int32_t>(sessions->ColumnInt(16));
    r.resolved_by = sessions->ColumnText(17);
    r.pending_callback_id = sessions->ColumnText(18);
    r.bot_turn_sequence = sessions->ColumnInt(19);
    contents.sessions.push_back(std::move(r));
  }
  auto keyed = db.Prepare(
      "SELECT session_id, fingerprint, event FROM session_events "
      "WHERE is_message = 1 AND client_message_id != ''");
  if (!keyed.ok()) return keyed.status();
  while (true) {
    absl::StatusOr<bool> row = keyed->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    v1::SessionEvent event;
    if (!event.ParseFromString(keyed->ColumnBlob(2))) {
      return absl::DataLossError("sessions.db: unreadable event of " + keyed->ColumnText(0));
    }
    contents.keyed_messages.push_back(
        {keyed->ColumnText(0), StoredMessage{event.message(), keyed->ColumnBlob(1)}});
  }
  return contents;
}

void SqliteSessionStore::Apply(SessionWrite write,
                               std::function<void(absl::Status)> done) {
  committer_->Submit(
      [this, write = std::move(write)](storage::Database& db) {
        return WriteAll(db, write, topic_);
      },
      [this, done = std::move(done)](absl::Status status) {
        if (status.ok() && after_commit_) after_commit_();
        done(status);
      });
}

absl::StatusOr<std::vector<v1::SessionEvent>> SqliteSessionStore::ReadEvents(
    const std::string& session_id, int64_t after, int64_t up_to, int limit) {
  absl::MutexLock lock(&reader_mu_);
  auto select = reader_->Prepare(
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
  absl::MutexLock lock(&reader_mu_);
  auto select = reader_->Prepare(
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

}  // namespace switchboard::sessions
