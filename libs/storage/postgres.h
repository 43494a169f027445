#pragma once

// A small, status-returning wrapper over one PostgreSQL connection (libpq),
// the PostgreSQL counterpart of storage::Database (database.h) for stores
// that keep shared state in PostgreSQL: parameterised statements,
// transactions, and schema migrations with the same model as
// Database::OpenMigrated.
//
// Example:
//   auto db = PostgresConnection::OpenMigrated(
//       "postgresql://switchboard@db:5432/presence",
//       {"CREATE TABLE agents(id TEXT PRIMARY KEY)"});
//   if (!db.ok()) return db.status();
//   auto inserted = (*db)->Query("INSERT INTO agents(id) VALUES ($1)", {"agent-1"});
//   // AlreadyExists on a duplicate id.
//   auto rows = (*db)->Query("SELECT id FROM agents WHERE id = $1", {"agent-1"});
//   if (rows.ok() && rows->size() == 1) use(rows->Text(0, 0));
//
// Parameters are sent apart from the SQL (never spliced into it): text as
// text, integers in decimal, Bytes() as binary (for BYTEA). Results come as
// text and are read with Text/Int/Bytes; Bytes decodes BYTEA.
//
// Errors (absl::Status codes), chosen by the server's SQLSTATE:
//   - ALREADY_EXISTS: a unique or primary key violation (23505);
//   - ABORTED: a serialization failure or deadlock (40001, 40P01): the
//     transaction was rolled back and may be retried as a whole;
//   - UNAVAILABLE: the connection failed or was lost, the server is
//     shutting down or has no free connection (class 08, 57P01-57P03,
//     53300), or a lock wait timed out (55P03); the caller may retry;
//   - INTERNAL: anything else (syntax errors, other constraints, ...).
//   The message holds the SQLSTATE, the server's primary message and the
//   first words of the SQL (e.g. "INSERT INTO agents"); never parameter
//   values or the server's DETAIL (which may quote them), so it is safe to
//   log.
//
// A connection lost outside a transaction is re-established before the next
// statement (the statement that saw the loss fails with UNAVAILABLE); one
// lost inside a transaction fails that transaction.
//
// Threading: a PostgresConnection is NOT thread-safe; one thread at a time
// may use it (hand it over with a happens-before). Open one connection per
// thread that needs one.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct pg_conn;
struct pg_result;

namespace switchboard::storage {

// One statement parameter ($1, $2, ...): NULL, an integer, text or bytes.
class PostgresParam {
 public:
  PostgresParam(int64_t value);  // NOLINT: implicit, for {"id", 42} lists.
  PostgresParam(int value) : PostgresParam(static_cast<int64_t>(value)) {}  // NOLINT
  PostgresParam(absl::string_view text);  // NOLINT
  PostgresParam(const char* text) : PostgresParam(absl::string_view(text)) {}  // NOLINT
  PostgresParam(const std::string& text) : PostgresParam(absl::string_view(text)) {}  // NOLINT
  // BYTEA, sent as binary (any bytes, NULs included).
  static PostgresParam Bytes(absl::string_view bytes);
  static PostgresParam Null();

 private:
  friend class PostgresConnection;
  PostgresParam() = default;
  bool null_ = false;
  bool binary_ = false;
  std::string value_;
};

// The rows a statement returned, and how many rows it changed. Move-only.
// Rows and columns are 0-based. Accessors on a NULL return "" or 0.
class PostgresRows {
 public:
  PostgresRows(PostgresRows&& other) noexcept;
  PostgresRows& operator=(PostgresRows&& other) noexcept;
  PostgresRows(const PostgresRows&) = delete;
  PostgresRows& operator=(const PostgresRows&) = delete;
  ~PostgresRows();

  int size() const;
  bool empty() const { return size() == 0; }
  // Columns of each row.
  int columns() const;
  bool IsNull(int row, int col) const;
  std::string Text(int row, int col) const;
  // An integer column (0 if NULL or not an integer).
  int64_t Int(int row, int col) const;
  // A BYTEA column, decoded.
  std::string Bytes(int row, int col) const;
  // Rows inserted, updated or deleted by the statement (0 for others).
  int64_t changed() const;

 private:
  friend class PostgresConnection;
  explicit PostgresRows(pg_result* result) : result_(result) {}
  pg_result* result_;
};

// `sql` written with '?' marks (as for SQLite), each replaced by $1, $2, ...
// in order, for SQL that both backends share. The SQL must have no '?'
// inside a literal or an identifier.
std::string NumberedParameters(absl::string_view sql);

class PostgresConnection {
 public:
  // Connects to a "postgresql://user@host:port/database" URI (any libpq
  // connection string works). UNAVAILABLE with libpq's reason if the
  // server cannot be reached or refuses the connection (the URI's password,
  // if any, is not repeated).
  static absl::StatusOr<std::unique_ptr<PostgresConnection>> Open(const std::string& uri);

  // Open, then Migrate(migrations): how a store opens its database at start.
  static absl::StatusOr<std::unique_ptr<PostgresConnection>> OpenMigrated(
      const std::string& uri, const std::vector<std::string>& migrations);

  PostgresConnection(const PostgresConnection&) = delete;
  PostgresConnection& operator=(const PostgresConnection&) = delete;
  ~PostgresConnection();

  // Brings the schema up to date: migrations[i] creates schema version i+1,
  // recorded in table schema_migrations (one row per applied version). Each
  // migration not applied yet runs in its own transaction together with its
  // row, so a failed migration leaves the previous version in place. Several
  // processes may migrate one database at once: each transaction first takes
  // a transaction-scoped advisory lock, then reads the version again. An
  // up-to-date database takes no lock. Idempotent. Never edit or reorder a
  // released migration; append new ones. FAILED_PRECONDITION if the database
  // is newer than migrations.size(). One migration list per schema (see
  // WithSchema: services sharing a database each migrate a schema of their
  // own).
  absl::Status Migrate(const std::vector<std::string>& migrations);

  // Runs one or more ';'-separated statements without parameters (DDL,
  // BEGIN, ...).
  absl::Status Execute(absl::string_view sql);

  // Runs one statement with parameters $1..$n and returns its rows (empty
  // for statements that return none; use RETURNING to read back inserts).
  absl::StatusOr<PostgresRows> Query(absl::string_view sql,
                                     const std::vector<PostgresParam>& params = {});

  // Runs `body` in a transaction (READ COMMITTED, PostgreSQL's default):
  // BEGIN, then COMMIT if `body` returns OK, else ROLLBACK and `body`'s
  // status. A commit error is returned as such, and ABORTED if the server
  // rolled back at COMMIT because a statement had failed. Inside an open transaction,
  // `body` runs in a SAVEPOINT instead, so only its own changes roll back on
  // error.
  absl::Status InTransaction(absl::FunctionRef<absl::Status()> body);

  // Whether a transaction is open on this connection.
  bool InTransactionNow() const;

  // A transaction that spans calls (e.g. an outbox claim held while a sink
  // publishes): Begin, then Commit or Rollback. Prefer InTransaction. Until
  // Commit or Rollback, a lost connection is not re-established, so no
  // later statement of the transaction runs outside it. Commit reports a
  // server-side rollback as InTransaction does; Rollback ignores errors.
  absl::Status Begin();
  absl::Status Commit();
  void Rollback();

 private:
  explicit PostgresConnection(pg_conn* conn) : conn_(conn) {}
  // Re-establishes a lost connection when no transaction was open; an error
  // if it cannot.
  absl::Status EnsureConnected();
  absl::StatusOr<PostgresRows> Check(pg_result* result, absl::string_view sql);

  pg_conn* conn_;
  // Transactions and savepoints opened by this object and not ended yet.
  int transaction_depth_ = 0;
};

// `uri` with every connection's search_path set to `schema` (libpq's
// `options` parameter), so that what a service creates and reads (its
// tables, schema_migrations, its outbox) lives in a schema of its own and
// several services can share one database without meeting. The schema must
// exist: CreateSchema. INVALID_ARGUMENT unless `schema` is a lowercase
// identifier ([a-z_][a-z0-9_]*). `settings` are further run-time parameters
// every connection's session starts with (name, value; names and values of
// letters, digits and '_').
absl::StatusOr<std::string> WithSchema(
    const std::string& uri, absl::string_view schema,
    const std::vector<std::pair<std::string, std::string>>& settings = {});

// CREATE SCHEMA IF NOT EXISTS `schema` (a lowercase identifier), safe when
// several processes race to create it.
absl::Status CreateSchema(PostgresConnection& db, absl::string_view schema);

}  // namespace switchboard::storage
