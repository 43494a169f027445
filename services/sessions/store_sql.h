#pragma once

// What the SQLite and PostgreSQL sessions stores build the same way: the
// statements that write a SessionWrite (the same rows on both), the column
// lists they read, how a row becomes a SessionRecord or AttachmentRecord,
// and the filters of a ListSessions page. Backend-neutral: statements use
// '?' marks, and each store binds the values its own way.

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "services/sessions/model.h"
#include "services/sessions/store.h"

namespace switchboard::sessions {

// Bytes bound as a BLOB (SQLite) or BYTEA (PostgreSQL), not as text.
struct SqlBytes {
  std::string bytes;
};

// A value bound to a '?' of the SQL below.
using SqlValue = std::variant<int64_t, std::string, SqlBytes>;

// One statement written with '?' marks and the values it binds, in order.
struct SqlStatement {
  std::string sql;
  std::vector<SqlValue> values;
  // An UPDATE that must change exactly one row: when it changes none, the
  // store fails the write with INTERNAL and `missing` (a record the logic
  // believed stored is not).
  std::string missing;
};

// The statements that store `write`'s sessions (whole rows, then the
// narrow updates of messaged sessions), session events, token bindings and
// attachments, in that order. Its outbox events are not among
// them: each store appends those with its backend's AppendToOutbox.
std::vector<SqlStatement> WriteStatements(const SessionWrite& write);

// The columns RecordFromRow reads, in order.
extern const char kSessionColumns[];
// The columns AttachmentFromRow reads, in order, of table alias `a`.
extern const char kAttachmentColumns[];

// One row of a result, whichever backend read it.
class SqlRow {
 public:
  virtual ~SqlRow() = default;
  virtual std::string Text(int col) const = 0;
  virtual int64_t Int(int col) const = 0;
  virtual std::string Bytes(int col) const = 0;
};

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
