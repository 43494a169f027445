#include "libs/storage/postgres.h"

#include <postgresql/libpq-fe.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace switchboard::storage {
namespace {

// The advisory lock key of Migrate ("sb_migr" in ASCII): any fixed number
// that nothing else on the database locks.
constexpr int64_t kMigrationLock = 0x73625f6d69677200;

// Lock waits end instead of hanging a store forever behind a stuck
// transaction (UNAVAILABLE, 55P03, so callers retry); notices such as
// "already exists, skipping" stay out of the service's stderr.
constexpr char kSessionSettings[] =
    "SET lock_timeout = '30s'; SET client_min_messages = warning";

// The first words of `sql` ("INSERT INTO agents"), enough to tell which
// statement failed without echoing literals or values.
std::string FirstWords(absl::string_view sql) {
  std::vector<absl::string_view> words =
      absl::StrSplit(sql, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty());
  if (words.size() > 3) words.resize(3);
  std::string out = absl::StrJoin(words, " ");
  if (out.size() > 60) out.resize(60);
  return out;
}

// libpq's connection-level message, on one line.
std::string ConnectionMessage(const PGconn* conn) {
  return std::string(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
}

// Maps a failed result to a status; see postgres.h for the mapping.
absl::Status ResultError(const PGresult* result, const PGconn* conn, absl::string_view sql) {
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  const std::string sqlstate = state != nullptr ? state : "";
  const std::string text =
      primary != nullptr
          ? absl::StrCat("PostgreSQL ", sqlstate, ": ", primary, " (in \"", FirstWords(sql), "\")")
          : absl::StrCat("PostgreSQL: ", ConnectionMessage(conn), " (in \"", FirstWords(sql),
                         "\")");
  if (sqlstate == "23505") return absl::AlreadyExistsError(text);
  if (sqlstate == "40001" || sqlstate == "40P01") return absl::AbortedError(text);
  if (absl::StartsWith(sqlstate, "08") || sqlstate == "57P01" || sqlstate == "57P02" ||
      sqlstate == "57P03" || sqlstate == "53300" || sqlstate == "55P03" ||
      PQstatus(conn) == CONNECTION_BAD) {
    return absl::UnavailableError(text);
  }
  return absl::InternalError(text);
}

}  // namespace

std::string NumberedParameters(absl::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  for (char c : sql) {
    if (c == '?') {
      absl::StrAppend(&out, "$", ++n);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// ------------------------------------------------------------ PostgresParam

PostgresParam::PostgresParam(int64_t value) : value_(absl::StrCat(value)) {}

PostgresParam::PostgresParam(absl::string_view text) : value_(text) {}

PostgresParam PostgresParam::Bytes(absl::string_view bytes) {
  PostgresParam param;
  param.binary_ = true;
  param.value_ = std::string(bytes);
  return param;
}

PostgresParam PostgresParam::Null() {
  PostgresParam param;
  param.null_ = true;
  return param;
}

// ------------------------------------------------------------- PostgresRows

PostgresRows::PostgresRows(PostgresRows&& other) noexcept
    : result_(std::exchange(other.result_, nullptr)) {}

PostgresRows& PostgresRows::operator=(PostgresRows&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
  }
  return *this;
}

PostgresRows::~PostgresRows() { PQclear(result_); }

int PostgresRows::size() const { return result_ == nullptr ? 0 : PQntuples(result_); }

int PostgresRows::columns() const { return result_ == nullptr ? 0 : PQnfields(result_); }

bool PostgresRows::IsNull(int row, int col) const {
  return PQgetisnull(result_, row, col) != 0;
}

std::string PostgresRows::Text(int row, int col) const {
  return std::string(PQgetvalue(result_, row, col),
                     static_cast<size_t>(PQgetlength(result_, row, col)));
}

int64_t PostgresRows::Int(int row, int col) const {
  int64_t value = 0;
  if (!absl::SimpleAtoi(PQgetvalue(result_, row, col), &value)) return 0;
  return value;
}

std::string PostgresRows::Bytes(int row, int col) const {
  if (IsNull(row, col)) return std::string();
  size_t length = 0;
  unsigned char* bytes = PQunescapeBytea(
      reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row, col)), &length);
  if (bytes == nullptr) return std::string();
  std::string out(reinterpret_cast<const char*>(bytes), length);
  PQfreemem(bytes);
  return out;
}

int64_t PostgresRows::changed() const {
  int64_t value = 0;
  if (result_ == nullptr || !absl::SimpleAtoi(PQcmdTuples(result_), &value)) return 0;
  return value;
}

// ------------------------------------------------------- PostgresConnection

absl::StatusOr<std::unique_ptr<PostgresConnection>> PostgresConnection::Open(
    const std::string& uri) {
  PGconn* conn = PQconnectdb(uri.c_str());
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq could not allocate a connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string message = ConnectionMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("connecting to PostgreSQL: ", message));
  }
  std::unique_ptr<PostgresConnection> db(new PostgresConnection(conn));
  if (absl::Status s = db->Execute(kSessionSettings); !s.ok()) return s;
  return db;
}

absl::StatusOr<std::unique_ptr<PostgresConnection>> PostgresConnection::OpenMigrated(
    const std::string& uri, const std::vector<std::string>& migrations) {
  absl::StatusOr<std::unique_ptr<PostgresConnection>> db = Open(uri);
  if (!db.ok()) return db.status();
  if (absl::Status s = (*db)->Migrate(migrations); !s.ok()) return s;
  return db;
}

PostgresConnection::~PostgresConnection() { PQfinish(conn_); }

absl::Status PostgresConnection::EnsureConnected() {
  if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  if (transaction_depth_ > 0) {
    // Reconnecting here would run the rest of the transaction outside it.
    return absl::UnavailableError(absl::StrCat("PostgreSQL connection lost in a transaction: ",
                                               ConnectionMessage(conn_)));
  }
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("reconnecting to PostgreSQL: ", ConnectionMessage(conn_)));
  }
  return Execute(kSessionSettings);
}

absl::StatusOr<PostgresRows> PostgresConnection::Check(PGresult* result, absl::string_view sql) {
  PostgresRows rows(result);
  const ExecStatusType status = PQresultStatus(result);
  if (result != nullptr && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)) {
    return rows;
  }
  return ResultError(result, conn_, sql);
}

absl::Status PostgresConnection::Execute(absl::string_view sql) {
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  const std::string text(sql);
  return Check(PQexec(conn_, text.c_str()), sql).status();
}

absl::StatusOr<PostgresRows> PostgresConnection::Query(absl::string_view sql,
                                                       const std::vector<PostgresParam>& params) {
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  for (const PostgresParam& param : params) {
    values.push_back(param.null_ ? nullptr : param.value_.data());
    lengths.push_back(static_cast<int>(param.value_.size()));
    formats.push_back(param.binary_ ? 1 : 0);
  }
  // A text parameter must be NUL-terminated: value_ is a std::string.
  const std::string text(sql);
  return Check(PQexecParams(conn_, text.c_str(), static_cast<int>(params.size()),
                            /*paramTypes=*/nullptr, values.data(), lengths.data(),
                            formats.data(), /*resultFormat=*/0),
               sql);
}

bool PostgresConnection::InTransactionNow() const {
  const PGTransactionStatusType status = PQtransactionStatus(conn_);
  return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE;
}

absl::Status PostgresConnection::InTransaction(absl::FunctionRef<absl::Status()> body) {
  if (InTransactionNow()) {
    const std::string name = absl::StrCat("sb_savepoint_", ++transaction_depth_);
    absl::Status status = Execute(absl::StrCat("SAVEPOINT ", name));
    if (status.ok()) {
      status = body();
      if (!status.ok()) {
        Execute(absl::StrCat("ROLLBACK TO SAVEPOINT ", name)).IgnoreError();
      }
      absl::Status released = Execute(absl::StrCat("RELEASE SAVEPOINT ", name));
      if (status.ok()) status = released;
    }
    --transaction_depth_;
    return status;
  }

  absl::Status status = Begin();
  if (!status.ok()) return status;
  status = body();
  if (status.ok()) {
    status = Commit();
  } else {
    Rollback();
  }
  return status;
}

absl::Status PostgresConnection::Begin() {
  absl::Status status = Execute("BEGIN");
  if (status.ok()) ++transaction_depth_;
  return status;
}

void PostgresConnection::Rollback() {
  if (InTransactionNow()) Execute("ROLLBACK").IgnoreError();
  transaction_depth_ = 0;
}

absl::Status PostgresConnection::Commit() {
  PGresult* result = PQexec(conn_, "COMMIT");
  // COMMIT of a transaction in which a statement failed rolls back and
  // answers "ROLLBACK" without an error: a body that ignored an error.
  const bool rolled_back =
      PQresultStatus(result) == PGRES_COMMAND_OK && std::string(PQcmdStatus(result)) == "ROLLBACK";
  absl::Status status = Check(result, "COMMIT").status();
  if (status.ok() && rolled_back) {
    status = absl::AbortedError(
        "PostgreSQL rolled the transaction back at COMMIT: a statement in it had failed");
  }
  // A COMMIT that failed (e.g. on a lost connection) leaves nothing open.
  if (!status.ok()) Rollback();
  transaction_depth_ = 0;
  return status;
}

absl::Status PostgresConnection::Migrate(const std::vector<std::string>& migrations) {
  const int64_t target = static_cast<int64_t>(migrations.size());
  auto current_version = [this]() -> absl::StatusOr<int64_t> {
    // Two statements: a query naming a missing table fails at parse time.
    absl::StatusOr<PostgresRows> exists =
        Query("SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (!exists.ok()) return exists.status();
    if (exists->Text(0, 0) != "t") return int64_t{0};
    absl::StatusOr<PostgresRows> rows =
        Query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (!rows.ok()) return rows.status();
    return rows->Int(0, 0);
  };
  auto too_new = [target](int64_t version) {
    return absl::FailedPreconditionError(
        absl::StrCat("database schema version ", version, " is newer than this build's ", target,
                     "; it was written by a newer release"));
  };

  // The common case, an up-to-date database, takes no lock.
  absl::StatusOr<int64_t> version = current_version();
  if (!version.ok()) return version.status();
  if (*version > target) return too_new(*version);

  bool done = *version == target;
  while (!done) {
    absl::Status status = InTransaction([&]() -> absl::Status {
      // Another process may be migrating: wait for it, then read the version
      // again. The lock ends with the transaction.
      absl::StatusOr<PostgresRows> locked =
          Query("SELECT pg_advisory_xact_lock($1)", {kMigrationLock});
      if (!locked.ok()) return locked.status();
      absl::Status created = Execute(
          "CREATE TABLE IF NOT EXISTS schema_migrations ("
          "version BIGINT PRIMARY KEY, "
          "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
      if (!created.ok()) return created;
      absl::StatusOr<int64_t> current = current_version();
      if (!current.ok()) return current.status();
      if (*current > target) return too_new(*current);
      if (*current == target) {
        done = true;
        return absl::OkStatus();
      }
      absl::Status applied = Execute(migrations[*current]);
      if (!applied.ok()) {
        return absl::Status(applied.code(), absl::StrCat("migration to schema version ",
                                                         *current + 1, ": ", applied.message()));
      }
      return Query("INSERT INTO schema_migrations(version) VALUES ($1)", {*current + 1}).status();
    });
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

namespace {

bool IsLowercaseIdentifier(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  for (char c : name) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_')) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> WithSchema(
    const std::string& uri, absl::string_view schema,
    const std::vector<std::pair<std::string, std::string>>& settings) {
  if (!IsLowercaseIdentifier(schema)) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema name \"", schema, "\" is not a lowercase identifier"));
  }
  std::vector<std::string> switches = {absl::StrCat("-csearch_path=", schema)};
  for (const auto& [name, value] : settings) {
    const bool plain_value = std::all_of(value.begin(), value.end(), [](char c) {
      return absl::ascii_isalnum(c) || c == '_';
    });
    if (!IsLowercaseIdentifier(name) || value.empty() || !plain_value) {
      return absl::InvalidArgumentError(
          absl::StrCat("setting ", name, "=", value, ": letters, digits and '_' only"));
    }
    switches.push_back(absl::StrCat("-c", name, "=", value));
  }
  if (absl::StartsWith(uri, "postgresql://") || absl::StartsWith(uri, "postgres://")) {
    // Percent-encoded as a URI query value: '=' is %3D, ' ' is %20.
    std::string options = absl::StrReplaceAll(absl::StrJoin(switches, " "),
                                              {{"=", "%3D"}, {" ", "%20"}});
    return absl::StrCat(uri, absl::StrContains(uri, '?') ? "&" : "?", "options=", options);
  }
  // A key=value connection string.
  return absl::StrCat(uri, " options='", absl::StrJoin(switches, " "), "'");
}

absl::Status CreateSchema(PostgresConnection& db, absl::string_view schema) {
  if (!IsLowercaseIdentifier(schema)) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema name \"", schema, "\" is not a lowercase identifier"));
  }
  absl::Status created =
      db.Query(absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", schema)).status();
  // Two processes creating it at once: the loser's catalog insert fails as
  // a unique violation although the schema exists.
  if (absl::IsAlreadyExists(created)) return absl::OkStatus();
  return created;
}

}  // namespace switchboard::storage
