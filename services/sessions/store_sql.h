#pragma once

// What the SQLite and PostgreSQL sessions stores build the same way: the
// statements that write a SessionWrite (the same rows on both), the column
// lists they read, how a row becomes a SessionRecord or AttachmentRecord,
// and the filters of a ListSessions page. Backend-neutral: statements use
// '?' marks, and libs/storage/shared_sql.h binds, runs and reads them on
// either backend.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/storage/shared_sql.h"
#include "services/sessions/model.h"
#include "services/sessions/store.h"

namespace switchboard::sessions {

using storage::SqlBytes;
using storage::SqlRow;
using storage::SqlStatement;
using storage::SqlValue;

// How a stored session's indexed columns that change during a session
// (state, agent, routing pending) are updated.
enum class IndexedColumns {
  // SQLite: by a statement each that changes the row only if the value
  // changed. SQLite rewrites the entry of every index one of whose columns
  // an UPDATE sets, even to the value it had, so setting them with the
  // rest of the row cost every write of a whole session about a page per
  // index.
  kSeparateUpdates,
  // PostgreSQL: with the rest of the row. It compares the values itself
  // (an update that changes no indexed value leaves the indexes alone),
  // and every statement is a round trip.
  kInTheUpsert,
};

// The statements that store `write`'s sessions (whole rows, then the
// narrow updates of messaged sessions), session events, token bindings and
// attachments, in that order. Its outbox events are not among
// them: each store appends those with its backend's AppendToOutbox.
std::vector<SqlStatement> WriteStatements(const SessionWrite& write, IndexedColumns indexed);

// The columns RecordFromRow reads, in order.
extern const char kSessionColumns[];
// The columns AttachmentFromRow reads, in order, of table alias `a`.
extern const char kAttachmentColumns[];

// A session from a row of kSessionColumns; DATA_LOSS if it cannot be parsed.
absl::StatusOr<SessionRecord> RecordFromRow(const SqlRow& row);
// An attachment from a row of kAttachmentColumns; DATA_LOSS likewise.
absl::StatusOr<AttachmentRecord> AttachmentFromRow(const SqlRow& row);

// The filters of one ListSessions read: conditions with '?' marks, the
// values they bind, and the SQLite index that narrows them most.
struct SessionFilter {
  std::vector<std::string> conditions;
  std::vector<SqlValue> values;
  std::string index;
  // The conditions joined with AND ("1 = 1" if none).
  std::string Where() const;
};

// The filters of `query`; `state` (if not UNSPECIFIED) replaces
// query.states (SQLite merges one indexed query per state).
SessionFilter ListSessionsFilter(const SessionQuery& query, v1::SessionState state);

}  // namespace switchboard::sessions
