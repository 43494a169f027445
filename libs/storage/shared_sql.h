#pragma once

// SQL that a service's SQLite and PostgreSQL stores share: statements
// written once with '?' marks, the values they bind, and rows read through
// one interface whichever backend returned them. Each backend binds and runs
// them its own way (the SQLite and PostgreSQL halves below); PostgreSQL's
// marks are numbered by NumberedParameters.

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "libs/storage/database.h"
#include "libs/storage/postgres.h"

namespace switchboard::storage {

// Bytes bound as a BLOB (SQLite) or BYTEA (PostgreSQL), not as text.
struct SqlBytes {
  std::string bytes;
  bool operator==(const SqlBytes& other) const { return bytes == other.bytes; }
};

// SQL NULL.
struct SqlNull {
  bool operator==(const SqlNull&) const { return true; }
};

// A value bound to a '?' of shared SQL.
using SqlValue = std::variant<int64_t, std::string, SqlBytes, SqlNull>;

// One statement written with '?' marks and the values it binds, in order.
struct SqlStatement {
  std::string sql;
  std::vector<SqlValue> values;
  // Non-empty for an UPDATE that must change exactly one row: when it
  // changes none, running it fails with INTERNAL and this text (a record the
  // logic believed stored is not).
  std::string missing;
};

// One row of a result, whichever backend read it.
class SqlRow {
 public:
  virtual ~SqlRow() = default;
  virtual bool IsNull(int col) const = 0;
  virtual std::string Text(int col) const = 0;
  virtual int64_t Int(int col) const = 0;
  virtual std::string Bytes(int col) const = 0;
};

// SQLite: binds `values` to ?1, ?2, ... of `statement`.
void BindAll(Statement& statement, const std::vector<SqlValue>& values);

// SQLite: prepares, binds and runs `statement` on `db`, checking `missing`.
absl::Status Run(Database& db, const SqlStatement& statement);

// Runs `sql` with `values` on either backend and calls `read` with each row,
// stopping at the first error.
using RowReader = std::function<absl::Status(const SqlRow&)>;
absl::Status ForEachRow(Database& db, absl::string_view sql,
                        const std::vector<SqlValue>& values, const RowReader& read);
absl::Status ForEachRow(PostgresConnection& db, absl::string_view sql,
                        const std::vector<SqlValue>& values, const RowReader& read);

// SQLite: the current row of a stepped statement.
class SqliteRow : public SqlRow {
 public:
  explicit SqliteRow(const Statement& statement) : statement_(statement) {}
  bool IsNull(int col) const override { return statement_.ColumnIsNull(col); }
  std::string Text(int col) const override { return statement_.ColumnText(col); }
  int64_t Int(int col) const override { return statement_.ColumnInt(col); }
  std::string Bytes(int col) const override { return statement_.ColumnBlob(col); }

 private:
  const Statement& statement_;
};

// PostgreSQL: `values` as parameters $1, $2, ...
std::vector<PostgresParam> PostgresParams(const std::vector<SqlValue>& values);

// PostgreSQL: numbers the marks and runs `statement` on `db`, checking
// `missing`.
absl::Status Run(PostgresConnection& db, const SqlStatement& statement);

// PostgreSQL: one row of a result.
class PostgresRow : public SqlRow {
 public:
  PostgresRow(const PostgresRows& rows, int row) : rows_(rows), row_(row) {}
  bool IsNull(int col) const override { return rows_.IsNull(row_, col); }
  std::string Text(int col) const override { return rows_.Text(row_, col); }
  int64_t Int(int col) const override { return rows_.Int(row_, col); }
  std::string Bytes(int col) const override { return rows_.Bytes(row_, col); }

 private:
  const PostgresRows& rows_;
  const int row_;
};

}  // namespace switchboard::storage
