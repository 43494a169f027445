#include "libs/storage/shared_sql.h"

#include "absl/strings/str_cat.h"

namespace switchboard::storage {

void BindAll(Statement& statement, const std::vector<SqlValue>& values) {
  int i = 1;
  for (const SqlValue& value : values) {
    if (const auto* text = std::get_if<std::string>(&value)) {
      statement.Bind(i++, *text);
    } else if (const auto* bytes = std::get_if<SqlBytes>(&value)) {
      statement.BindBlob(i++, bytes->bytes);
    } else if (std::holds_alternative<SqlNull>(value)) {
      statement.BindNull(i++);
    } else {
      statement.Bind(i++, std::get<int64_t>(value));
    }
  }
}

absl::Status Run(Database& db, const SqlStatement& statement) {
  absl::StatusOr<Statement> prepared = db.Prepare(statement.sql);
  if (!prepared.ok()) return prepared.status();
  BindAll(*prepared, statement.values);
  if (absl::Status s = prepared->Run(); !s.ok()) return s;
  if (!statement.missing.empty() && db.Changes() != 1) {
    return absl::InternalError(statement.missing);
  }
  return absl::OkStatus();
}

std::vector<PostgresParam> PostgresParams(const std::vector<SqlValue>& values) {
  std::vector<PostgresParam> params;
  params.reserve(values.size());
  for (const SqlValue& value : values) {
    if (const auto* text = std::get_if<std::string>(&value)) {
      params.emplace_back(*text);
    } else if (const auto* bytes = std::get_if<SqlBytes>(&value)) {
      params.push_back(PostgresParam::Bytes(bytes->bytes));
    } else if (std::holds_alternative<SqlNull>(value)) {
      params.push_back(PostgresParam::Null());
    } else {
      params.emplace_back(std::get<int64_t>(value));
    }
  }
  return params;
}

absl::Status Run(PostgresConnection& db, const SqlStatement& statement) {
  absl::StatusOr<PostgresRows> done =
      db.Query(NumberedParameters(statement.sql), PostgresParams(statement.values));
  if (!done.ok()) return done.status();
  if (!statement.missing.empty() && done->changed() != 1) {
    return absl::InternalError(statement.missing);
  }
  return absl::OkStatus();
}

absl::Status ForEachRow(Database& db, absl::string_view sql,
                        const std::vector<SqlValue>& values, const RowReader& read) {
  absl::StatusOr<Statement> select = db.Prepare(sql);
  if (!select.ok()) return select.status();
  BindAll(*select, values);
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    if (absl::Status s = read(SqliteRow(*select)); !s.ok()) return s;
  }
}

absl::Status ForEachRow(PostgresConnection& db, absl::string_view sql,
                        const std::vector<SqlValue>& values, const RowReader& read) {
  absl::StatusOr<PostgresRows> rows = db.Query(NumberedParameters(sql), PostgresParams(values));
  if (!rows.ok()) return rows.status();
  for (int row = 0; row < rows->size(); ++row) {
    if (absl::Status s = read(PostgresRow(*rows, row)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace switchboard::storage
