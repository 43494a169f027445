#include "libs/storage/database.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace switchboard::storage {
namespace {

// Bounds the statement cache; services use a few dozen distinct statements.
constexpr int kMaxIdleStatements = 64;

// The first words of `sql` ("INSERT INTO agents"), enough to tell which
// statement failed without echoing literals or bound values.
std::string FirstWords(absl::string_view sql) {
  std::vector<absl::string_view> words =
      absl::StrSplit(sql, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty());
  if (words.size() > 3) words.resize(3);
  std::string out = absl::StrJoin(words, " ");
  if (out.size() > 60) out.resize(60);
  return out;
}

// Maps an SQLite result code to a status; see database.h for the mapping.
absl::Status SqliteError(int rc, absl::string_view message,
                         absl::string_view sql) {
  std::string text = absl::StrCat(message, " (in \"", FirstWords(sql), "\")");
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return absl::AlreadyExistsError(text);
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(text);
  }
  return absl::InternalError(text);
}

absl::Status ConnectionError(sqlite3* db, int rc, absl::string_view sql) {
  return SqliteError(rc, sqlite3_errmsg(db), sql);
}

// SQLite's own default for its automatic checkpoint.
constexpr int kAutoCheckpointPages = 1000;

bool OnlyWhitespaceOrSemicolons(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c)) && c != ';') {
      return false;
    }
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------- Statement

Statement::Statement(Database* owner, sqlite3_stmt* stmt, std::string sql)
    : owner_(owner), stmt_(stmt), sql_(std::move(sql)) {}

Statement::Statement(Statement&& other) noexcept
    : owner_(other.owner_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      sql_(std::move(other.sql_)),
      bind_status_(std::move(other.bind_status_)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (stmt_ != nullptr) owner_->Release(stmt_, std::move(sql_));
    owner_ = other.owner_;
    stmt_ = std::exchange(other.stmt_, nullptr);
    sql_ = std::move(other.sql_);
    bind_status_ = std::move(other.bind_status_);
  }
  return *this;
}

Statement::~Statement() {
  if (stmt_ != nullptr) owner_->Release(stmt_, std::move(sql_));
}

void Statement::NoteBindResult(int rc, int index) {
  if (rc == SQLITE_OK || !bind_status_.ok()) return;
  bind_status_ = SqliteError(
      rc, absl::StrCat("binding parameter ", index, ": ", sqlite3_errstr(rc)),
      sql_);
}

Statement& Statement::Bind(int index, int64_t value) {
  NoteBindResult(sqlite3_bind_int64(stmt_, index, value), index);
  return *this;
}

Statement& Statement::Bind(int index, absl::string_view text) {
  NoteBindResult(sqlite3_bind_text64(stmt_, index, text.data(), text.size(),
                                     SQLITE_TRANSIENT, SQLITE_UTF8),
                 index);
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  NoteBindResult(sqlite3_bind_double(stmt_, index, value), index);
  return *this;
}

Statement& Statement::BindBlob(int index, absl::string_view bytes) {
  // A null pointer would bind NULL; an empty blob must stay a blob.
  static const char kEmpty = 0;
  const char* data = bytes.data() != nullptr ? bytes.data() : &kEmpty;
  NoteBindResult(
      sqlite3_bind_blob64(stmt_, index, data, bytes.size(), SQLITE_TRANSIENT),
      index);
  return *this;
}

Statement& Statement::BindNull(int index) {
  NoteBindResult(sqlite3_bind_null(stmt_, index), index);
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) {
    // Ends the statement's implicit read transaction now rather than at the
    // next use, so that an idle statement never pins the WAL.
    sqlite3_reset(stmt_);
    return false;
  }
  absl::Status status = ConnectionError(sqlite3_db_handle(stmt_), rc, sql_);
  sqlite3_reset(stmt_);
  return status;
}

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t Statement::ColumnInt(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

double Statement::ColumnDouble(int col) const {
  return sqlite3_column_double(stmt_, col);
}

std::string Statement::ColumnText(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text),
                     sqlite3_column_bytes(stmt_, col));
}

std::string Statement::ColumnBlob(int col) const {
  const void* blob = sqlite3_column_blob(stmt_, col);
  if (blob == nullptr) return std::string();
  return std::string(static_cast<const char*>(blob),
                     sqlite3_column_bytes(stmt_, col));
}

bool Statement::ColumnIsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_status_ = absl::OkStatus();
}

// ----------------------------------------------------------------- Database

absl::StatusOr<std::unique_ptr<Database>> Database::Open(
    const Options& options) {
  sqlite3* handle = nullptr;
  const int rc = sqlite3_open_v2(
      options.path.c_str(), &handle,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    std::string message =
        handle != nullptr ? sqlite3_errmsg(handle) : sqlite3_errstr(rc);
    sqlite3_close(handle);
    return absl::InternalError(absl::StrCat("opening SQLite database \"",
                                            options.path, "\": ", message));
  }
  sqlite3_extended_result_codes(handle, 1);
  std::unique_ptr<Database> db(new Database(handle));
  sqlite3_busy_timeout(
      handle, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));

  const bool in_memory = options.path.empty() || options.path == ":memory:";
  if (!in_memory) {
    absl::StatusOr<Statement> wal = db->Prepare("PRAGMA journal_mode=WAL");
    if (!wal.ok()) return wal.status();
    absl::StatusOr<bool> row = wal->Step();
    if (!row.ok()) return row.status();
    const std::string mode = *row ? wal->ColumnText(0) : "";
    if (mode != "wal") {
      return absl::InternalError(
          absl::StrCat("SQLite database \"", options.path,
                       "\" refused WAL journal mode (got \"", mode, "\")"));
    }
  }
  absl::Status status = db->Execute(
      options.synchronous_full ? "PRAGMA synchronous=FULL"
                               : "PRAGMA synchronous=NORMAL");
  if (status.ok()) status = db->Execute("PRAGMA foreign_keys=ON");
  if (!status.ok()) return status;
  return db;
}

Database::Database(sqlite3* db) : db_(db) {}

Database::~Database() {
  for (auto& [sql, statements] : idle_) {
    for (sqlite3_stmt* stmt : statements) sqlite3_finalize(stmt);
  }
  sqlite3_close_v2(db_);
}

void Database::SetCommitHook(std::function<bool()> hook) {
  commit_hook_ = std::move(hook);
  if (!commit_hook_) {
    sqlite3_commit_hook(db_, nullptr, nullptr);
    return;
  }
  // SQLite rolls back when the hook returns non-zero.
  sqlite3_commit_hook(
      db_, +[](void* self) { return static_cast<Database*>(self)->commit_hook_() ? 0 : 1; },
      this);
}

void Database::SetWalHook(std::function<void(int frames)> hook) {
  wal_hook_ = std::move(hook);
  if (!wal_hook_) {
    sqlite3_wal_autocheckpoint(db_, kAutoCheckpointPages);
    return;
  }
  sqlite3_wal_hook(
      db_,
      +[](void* self, sqlite3*, const char*, int frames) {
        static_cast<Database*>(self)->wal_hook_(frames);
        return SQLITE_OK;
      },
      this);
}

absl::StatusOr<Database::CheckpointResult> Database::Checkpoint() {
  CheckpointResult result;
  const int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                           &result.wal_frames, &result.checkpointed_frames);
  if (rc != SQLITE_OK) return ConnectionError(db_, rc, "PRAGMA wal_checkpoint(PASSIVE)");
  return result;
}

absl::StatusOr<std::unique_ptr<Database>> Database::OpenMigrated(
    const Options& options, const std::vector<std::string>& migrations) {
  absl::StatusOr<std::unique_ptr<Database>> db = Open(options);
  if (!db.ok()) return db.status();
  if (absl::Status s = (*db)->Migrate(migrations); !s.ok()) return s;
  return db;
}

absl::Status Database::Migrate(const std::vector<std::string>& migrations) {
  const int64_t target = static_cast<int64_t>(migrations.size());
  auto user_version = [this]() -> absl::StatusOr<int64_t> {
    absl::StatusOr<Statement> stmt = Prepare("PRAGMA user_version");
    if (!stmt.ok()) return stmt.status();
    absl::StatusOr<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    const int64_t version = *row ? stmt->ColumnInt(0) : 0;
    stmt->Reset();
    return version;
  };
  auto too_new = [target](int64_t version) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database schema version ", version, " is newer than this build's ",
        target, "; it was written by a newer release"));
  };

  // The common case, an up-to-date file, takes no write lock.
  absl::StatusOr<int64_t> version = user_version();
  if (!version.ok()) return version.status();
  if (*version > target) return too_new(*version);

  bool done = *version == target;
  while (!done) {
    // The version is read again under the write lock: another process may
    // have migrated in between.
    absl::Status status = InTransaction([&]() -> absl::Status {
      absl::StatusOr<int64_t> current = user_version();
      if (!current.ok()) return current.status();
      if (*current > target) return too_new(*current);
      if (*current == target) {
        done = true;
        return absl::OkStatus();
      }
      absl::Status applied = Execute(migrations[*current]);
      if (!applied.ok()) {
        return absl::Status(applied.code(),
                            absl::StrCat("migration to schema version ",
                                         *current + 1, ": ", applied.message()));
      }
      return Execute(absl::StrCat("PRAGMA user_version = ", *current + 1));
    });
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status Database::Execute(absl::string_view sql) {
  const std::string text(sql);
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return absl::OkStatus();
  absl::Status status = SqliteError(
      sqlite3_extended_errcode(db_),
      error != nullptr ? error : sqlite3_errstr(rc), sql);
  sqlite3_free(error);
  return status;
}

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  std::string key(sql);
  auto it = idle_.find(key);
  if (it != idle_.end() && !it->second.empty()) {
    sqlite3_stmt* stmt = it->second.back();
    it->second.pop_back();
    --idle_count_;
    return Statement(this, stmt, std::move(key));
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  const int rc = sqlite3_prepare_v3(db_, key.data(), static_cast<int>(key.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
  if (rc != SQLITE_OK) return ConnectionError(db_, rc, key);
  if (stmt == nullptr) {
    return absl::InvalidArgumentError("Prepare: the SQL holds no statement");
  }
  const size_t consumed = static_cast<size_t>(tail - key.data());
  if (!OnlyWhitespaceOrSemicolons(absl::string_view(key).substr(consumed))) {
    sqlite3_finalize(stmt);
    return absl::InvalidArgumentError(absl::StrCat(
        "Prepare takes one statement; use Execute for several (in \"",
        FirstWords(key), "\")"));
  }
  return Statement(this, stmt, std::move(key));
}

void Database::Release(sqlite3_stmt* stmt, std::string sql) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  if (idle_count_ >= kMaxIdleStatements) {
    sqlite3_finalize(stmt);
    return;
  }
  idle_[std::move(sql)].push_back(stmt);
  ++idle_count_;
}

bool Database::InTransactionNow() const {
  return sqlite3_get_autocommit(db_) == 0;
}

absl::Status Database::InTransaction(absl::FunctionRef<absl::Status()> body) {
  if (InTransactionNow()) {
    const std::string name = absl::StrCat("sb_savepoint_", ++savepoint_depth_);
    absl::Status status = Execute(absl::StrCat("SAVEPOINT ", name));
    if (status.ok()) {
      status = body();
      // Some errors (disk full, I/O) make SQLite roll back the whole
      // transaction, savepoints included; then there is nothing to undo.
      if (InTransactionNow()) {
        if (!status.ok()) Execute(absl::StrCat("ROLLBACK TO ", name)).IgnoreError();
        absl::Status released = Execute(absl::StrCat("RELEASE ", name));
        if (status.ok()) status = released;
      } else if (status.ok()) {
        status = absl::AbortedError(
            "the enclosing transaction was rolled back during a savepoint");
      }
    }
    --savepoint_depth_;
    return status;
  }

  absl::Status status = Execute("BEGIN IMMEDIATE");
  if (!status.ok()) return status;
  status = body();
  if (status.ok()) status = Execute("COMMIT");
  if (!status.ok() && InTransactionNow()) Execute("ROLLBACK").IgnoreError();
  return status;
}

int64_t Database::LastInsertRowId() const {
  return sqlite3_last_insert_rowid(db_);
}

int Database::Changes() const { return sqlite3_changes(db_); }

}  // namespace switchboard::storage
