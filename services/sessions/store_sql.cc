#include "services/sessions/store_sql.h"

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/protoutil/time.h"
#include "libs/storage/time_column.h"

namespace switchboard::sessions {
namespace {

using storage::FromMicros;
using storage::ToMicros;

constexpr int kSessionColumnCount = 26;

std::string Marks(int n) { return absl::StrJoin(std::vector<std::string>(n, "?"), ", "); }

// Columns set when a session is created and never changed after. An
// update leaves them out: SQLite rewrites the entry of every index one of
// whose columns the UPDATE sets, even to the value it had (about one page
// each), and sessions_by_customer_time, sessions_by_time and
// sessions_by_request are made of these only.
bool Immutable(absl::string_view column) {
  return column == "session_id" || column == "customer_id" || column == "create_request_id" ||
         column == "created_micros";
}

// Columns that change during a session and are in an index
// (sessions_by_state_time, sessions_by_agent_time, sessions_routing_pending).
constexpr absl::string_view kIndexedMutable[] = {"state", "agent_id", "routing_pending"};

bool IndexedMutable(absl::string_view column) {
  return absl::c_linear_search(kIndexedMutable, column);
}

// An upsert changes the row in place (SQLite's INSERT OR REPLACE would
// delete it and insert it again, rewriting every index); with
// kSeparateUpdates its update leaves the indexed columns to
// IndexedColumnUpdate.
const std::string& SessionUpsert(IndexedColumns indexed) {
  static const auto make = [](IndexedColumns indexed) {
    std::vector<std::string> updates;
    for (absl::string_view column : absl::StrSplit(kSessionColumns, ", ")) {
      if (Immutable(column)) continue;
      if (indexed == IndexedColumns::kSeparateUpdates && IndexedMutable(column)) continue;
      updates.push_back(absl::StrCat(column, " = excluded.", column));
    }
    return new std::string(absl::StrCat("INSERT INTO sessions(", kSessionColumns,
                                        ") VALUES (", Marks(kSessionColumnCount),
                                        ") ON CONFLICT(session_id) DO UPDATE SET ",
                                        absl::StrJoin(updates, ", ")));
  };
  static const std::string* const separate = make(IndexedColumns::kSeparateUpdates);
  static const std::string* const in_upsert = make(IndexedColumns::kInTheUpsert);
  return *(indexed == IndexedColumns::kSeparateUpdates ? separate : in_upsert);
}

// Sets one indexed column of a stored session only if its value changed,
// so that its index is rewritten only then.
SqlStatement IndexedColumnUpdate(absl::string_view column, const std::string& session_id,
                                 SqlValue value) {
  return {absl::StrCat("UPDATE sessions SET ", column, " = ? WHERE session_id = ? AND ", column,
                       " IS NOT ?"),
          {value, session_id, value}};
}

SqlStatement SaveSession(const SessionRecord& r, IndexedColumns indexed) {
  const v1::Session& s = r.session;
  return {SessionUpsert(indexed),
          {s.session_id(),
           s.customer_id(),
           SqlBytes{s.SerializeAsString()},
           r.create_request_id,
           absl::StrJoin(r.request_ids, "\n"),
           int64_t{r.routing_pending},
           r.routing_version,
           SqlBytes{r.enqueue.SerializeAsString()},
           int64_t{r.cancel_reason},
           ToMicros(r.bot_since),
           int64_t{r.bot_turns},
           ToMicros(r.state_since),
           ToMicros(r.first_queued_at),
           int64_t{r.customer_messages},
           int64_t{r.bot_messages},
           int64_t{r.agent_messages},
           int64_t{r.assignments},
           r.resolved_by,
           r.pending_callback_id,
           r.bot_turn_sequence,
           int64_t{s.state()},
           s.assigned_agent_id(),
           absl::ToUnixMicros(protoutil::FromTimestamp(s.created_at())),
           int64_t{s.category()},
           int64_t{s.channel()},
           r.pending_callback_session_id}};
}

}  // namespace

const char kSessionColumns[] =
    "session_id, customer_id, session, create_request_id, request_ids, "
    "routing_pending, routing_version, enqueue, cancel_reason, bot_since_micros, "
    "bot_turns, state_since_micros, first_queued_at_micros, customer_messages, "
    "bot_messages, agent_messages, assignments, resolved_by, pending_callback_id, "
    "bot_turn_sequence, state, agent_id, created_micros, category, channel, "
    "pending_callback_session_id";

const char kAttachmentColumns[] =
    "a.upload_id, a.blob_key, a.updated_micros, a.scan_attempts, a.fingerprint, a.attachment";

std::vector<SqlStatement> WriteStatements(const SessionWrite& write, IndexedColumns indexed) {
  std::vector<SqlStatement> out;
  out.reserve(write.sessions.size() + write.messaged_sessions.size() +
              write.session_events.size() +
              write.token_bindings.size() + write.attachments.size());
  for (const SessionRecord& session : write.sessions) {
    out.push_back(SaveSession(session, indexed));
    if (indexed != IndexedColumns::kSeparateUpdates) continue;
    const std::string& id = session.session.session_id();
    out.push_back(IndexedColumnUpdate("state", id, int64_t{session.session.state()}));
    out.push_back(IndexedColumnUpdate("agent_id", id, session.session.assigned_agent_id()));
    out.push_back(IndexedColumnUpdate("routing_pending", id, int64_t{session.routing_pending}));
  }
  // Only what a message changes: no indexed column is written.
  for (const MessagedSession& m : write.messaged_sessions) {
    out.push_back({"UPDATE sessions SET session = ?, customer_messages = ?, bot_messages = ?, "
                   "agent_messages = ?, bot_turn_sequence = ? WHERE session_id = ?",
                   {SqlBytes{m.session}, int64_t{m.customer_messages}, int64_t{m.bot_messages},
                    int64_t{m.agent_messages}, m.bot_turn_sequence, m.session_id},
                   absl::StrCat("no stored row for messaged session ", m.session_id)});
  }
  for (const v1::SessionEvent& event : write.session_events) {
    std::string fingerprint;
    if (event.has_message()) {
      for (const auto& [message_id, f] : write.fingerprints) {
        if (message_id == event.message().message_id()) fingerprint = f;
      }
    }
    out.push_back({"INSERT INTO session_events(session_id, sequence, is_message, "
                   "client_message_id, fingerprint, event) VALUES (?, ?, ?, ?, ?, ?)",
                   {event.session_id(), event.sequence(), int64_t{event.has_message()},
                    event.message().client_message_id(), SqlBytes{std::move(fingerprint)},
                    SqlBytes{event.SerializeAsString()}}});
  }
  for (const TokenBinding& binding : write.token_bindings) {
    // The logic binds a token once; a second binding to the same session
    // (a re-attach) keeps the first row.
    out.push_back({"INSERT INTO token_bindings(token_id, session_id, customer_id, "
                   "bound_micros, expires_micros) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT(token_id) DO NOTHING",
                   {binding.token_id, binding.session_id, binding.customer_id,
                    ToMicros(binding.bound_at), ToMicros(binding.expires_at)}});
  }
  for (const AttachmentRecord& record : write.attachments) {
    const v1::Attachment& a = record.attachment;
    out.push_back(
        {"INSERT INTO attachments(attachment_id, session_id, uploader_id, upload_id, state, "
         "blob_key, size_bytes, uploaded_micros, updated_micros, scan_attempts, fingerprint, "
         "attachment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT(attachment_id) DO UPDATE SET state = excluded.state, "
         "updated_micros = excluded.updated_micros, scan_attempts = excluded.scan_attempts, "
         "attachment = excluded.attachment",
         {a.attachment_id(), a.session_id(), a.uploader_id(), record.upload_id,
          int64_t{a.state()}, record.blob_key, a.size_bytes(),
          ToMicros(protoutil::FromTimestamp(a.uploaded_at())), ToMicros(record.updated_at),
          int64_t{record.scan_attempts}, SqlBytes{record.fingerprint},
          SqlBytes{a.SerializeAsString()}}});
  }
  return out;
}

absl::StatusOr<SessionRecord> RecordFromRow(const SqlRow& row) {
  SessionRecord r;
  if (!r.session.ParseFromString(row.Bytes(2)) || !r.enqueue.ParseFromString(row.Bytes(7))) {
    return absl::DataLossError("sessions store: unreadable session " + row.Text(0));
  }
  r.create_request_id = row.Text(3);
  for (absl::string_view id : absl::StrSplit(row.Text(4), '\n', absl::SkipEmpty())) {
    r.request_ids.emplace_back(id);
  }
  r.routing_pending = row.Int(5) != 0;
  r.routing_version = row.Int(6);
  r.cancel_reason = static_cast<routing::v1::CancelReason>(row.Int(8));
  r.bot_since = FromMicros(row.Int(9));
  r.bot_turns = static_cast<int32_t>(row.Int(10));
  r.state_since = FromMicros(row.Int(11));
  r.first_queued_at = FromMicros(row.Int(12));
  r.customer_messages = static_cast<int32_t>(row.Int(13));
  r.bot_messages = static_cast<int32_t>(row.Int(14));
  r.agent_messages = static_cast<int32_t>(row.Int(15));
  r.assignments = static_cast<int32_t>(row.Int(16));
  r.resolved_by = row.Text(17);
  r.pending_callback_id = row.Text(18);
  r.bot_turn_sequence = row.Int(19);
  r.pending_callback_session_id = row.Text(25);
  return r;
}

absl::StatusOr<AttachmentRecord> AttachmentFromRow(const SqlRow& row) {
  AttachmentRecord r;
  r.upload_id = row.Text(0);
  r.blob_key = row.Text(1);
  r.updated_at = absl::FromUnixMicros(row.Int(2));
  r.scan_attempts = static_cast<int32_t>(row.Int(3));
  r.fingerprint = row.Bytes(4);
  if (!r.attachment.ParseFromString(row.Bytes(5))) {
    return absl::DataLossError("sessions store: unreadable attachment " + r.upload_id);
  }
  return r;
}

std::string SessionFilter::Where() const {
  // "1 = 1": SQLite and PostgreSQL both read it (PostgreSQL refuses a bare 1).
  return conditions.empty() ? "1 = 1" : absl::StrJoin(conditions, " AND ");
}

SessionFilter ListSessionsFilter(const SessionQuery& query, v1::SessionState state) {
  SessionFilter f;
  auto add = [&f](std::string condition, SqlValue value) {
    f.conditions.push_back(std::move(condition));
    f.values.push_back(std::move(value));
  };
  if (!query.customer_id.empty()) {
    f.index = "sessions_by_customer_time";
    add("customer_id = ?", query.customer_id);
  } else if (!query.agent_id.empty()) {
    f.index = "sessions_by_agent_time";
    add("agent_id = ? AND agent_id != ''", query.agent_id);
  } else if (state != v1::SESSION_STATE_UNSPECIFIED) {
    f.index = "sessions_by_state_time";
  } else {
    f.index = "sessions_by_time";
  }
  if (!query.customer_id.empty() && !query.agent_id.empty()) add("agent_id = ?", query.agent_id);
  if (state != v1::SESSION_STATE_UNSPECIFIED) {
    add("state = ?", int64_t{state});
  } else if (!query.states.empty()) {
    f.conditions.push_back(absl::StrCat("state IN (", Marks(query.states.size()), ")"));
    for (v1::SessionState s : query.states) f.values.emplace_back(int64_t{s});
  }
  if (query.category != common::v1::CATEGORY_UNSPECIFIED) {
    add("category = ?", int64_t{query.category});
  }
  if (query.channel != common::v1::CHANNEL_UNSPECIFIED) {
    add("channel = ?", int64_t{query.channel});
  }
  if (query.created_after != absl::InfinitePast()) {
    add("created_micros >= ?", ToMicros(query.created_after));
  }
  if (query.created_before != absl::InfiniteFuture()) {
    add("created_micros < ?", ToMicros(query.created_before));
  }
  if (query.before) {
    f.conditions.push_back("(created_micros, session_id) < (?, ?)");
    f.values.emplace_back(query.before->first);
    f.values.emplace_back(query.before->second);
  }
  return f;
}

}  // namespace switchboard::sessions
