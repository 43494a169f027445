#pragma once

// A small, status-returning wrapper over one SQLite connection, with the
// settings every Switchboard store uses: WAL journal, synchronous=FULL (a
// commit is on disk before a client hears "OK"), foreign keys, a busy
// timeout, and schema migrations tracked with PRAGMA user_version.
//
// Example:
//   auto db = Database::Open({.path = "/data/presence.db"});
//   if (!db.ok()) return db.status();
//   absl::Status s = (*db)->Migrate({"CREATE TABLE agents(id TEXT PRIMARY KEY)"});
//   auto insert = (*db)->Prepare("INSERT INTO agents(id) VALUES (?)");
//   s = insert->Bind(1, "agent-1").Run();   // AlreadyExists on a duplicate id
//
// Errors (absl::Status codes):
//   - ALREADY_EXISTS: a UNIQUE or PRIMARY KEY constraint failed;
//   - UNAVAILABLE: the database is busy or locked by another connection
//     (after the busy timeout); the caller may retry;
//   - INTERNAL: anything else (I/O errors, SQL errors, other constraints).
//     The message holds SQLite's message and the first words of the SQL
//     (e.g. "INSERT INTO agents"), never bound values, so it is safe to log.
//
// Threading: a Database is one connection and is NOT thread-safe; one thread
// at a time may use it and the Statements it prepared (hand it over with a
// happens-before, e.g. a mutex or a thread start). Several Database objects
// may open the same file from different threads: WAL lets readers run while
// one writer commits. In a service, all writes go through one
// storage::GroupCommitter, which owns the writing connection.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct sqlite3;
struct sqlite3_stmt;

namespace switchboard::storage {

class Database;

// A prepared SQL statement: bind parameters, step through rows, reset, reuse.
// Move-only. Must be destroyed before the Database that prepared it (it goes
// back to that Database's statement cache). Not thread-safe, like Database.
//
// Bind errors (e.g. an index out of range) are kept and returned by the next
// Step or Run, so binds chain: `stmt.Bind(1, id).Bind(2, name).Run()`.
// Column accessors are valid only while Step's last result was `true`;
// columns are 0-based, parameters 1-based.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, int64_t value);
  // Binds TEXT. The bytes are copied, so `text` may die after the call.
  Statement& Bind(int index, absl::string_view text);
  // Without these two, a string literal or std::string would pick the bool
  // -> int64_t conversion or be ambiguous.
  Statement& Bind(int index, const char* text) {
    return Bind(index, absl::string_view(text));
  }
  Statement& Bind(int index, const std::string& text) {
    return Bind(index, absl::string_view(text));
  }
  Statement& Bind(int index, int value) {
    return Bind(index, static_cast<int64_t>(value));
  }
  Statement& Bind(int index, double value);
  // Binds a BLOB (copied).
  Statement& BindBlob(int index, absl::string_view bytes);
  Statement& BindNull(int index);

  // Runs the statement until the next row. Returns true when a row is ready
  // for the Column* accessors, false when the statement has finished (it is
  // then reset, keeping its bindings, so the next Step runs it again). On an
  // error the statement is reset too.
  absl::StatusOr<bool> Step();
  // Steps to the end, ignoring rows; for INSERT, UPDATE, DELETE and DDL.
  absl::Status Run();

  int64_t ColumnInt(int col) const;
  double ColumnDouble(int col) const;
  std::string ColumnText(int col) const;
  std::string ColumnBlob(int col) const;
  bool ColumnIsNull(int col) const;

  // Resets the statement and clears its bindings and any kept bind error,
  // ready to be bound and run again.
  void Reset();

 private:
  friend class Database;
  Statement(Database* owner, sqlite3_stmt* stmt, std::string sql);
  void NoteBindResult(int rc, int index);

  Database* owner_;
  sqlite3_stmt* stmt_;
  std::string sql_;
  absl::Status bind_status_;
};

class Database {
 public:
  struct Options {
    // A file path, or ":memory:" for a private in-memory database.
    std::string path;
    // synchronous=FULL: a commit survives power loss. NORMAL (false) is
    // durable against process crashes only; use it for derived data.
    bool synchronous_full = true;
    // How long a statement waits for another connection's lock before
    // failing with UNAVAILABLE.
    absl::Duration busy_timeout = absl::Seconds(5);
  };

  // Opens (creating if needed) the database: WAL journal for files (INTERNAL
  // if the file system refuses it), synchronous FULL or NORMAL,
  // foreign_keys=ON, the busy timeout. Errors: INTERNAL with the path and
  // SQLite's message (e.g. a missing folder).
  static absl::StatusOr<std::unique_ptr<Database>> Open(const Options& options);

  // Open, then Migrate(migrations): how a service opens its own file at start.
  static absl::StatusOr<std::unique_ptr<Database>> OpenMigrated(
      const Options& options, const std::vector<std::string>& migrations);

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  // Brings the schema up to date: migrations[i] creates schema version i+1.
  // Each migration not applied yet runs in its own transaction together with
  // the bump of PRAGMA user_version, so a failed migration leaves the
  // previous version in place. Idempotent. Never edit or reorder a released
  // migration; append new ones. FAILED_PRECONDITION if the file's version is
  // newer than migrations.size() (it was written by a newer build).
  absl::Status Migrate(const std::vector<std::string>& migrations);

  // Runs one or more ';'-separated statements without parameters.
  absl::Status Execute(absl::string_view sql);

  // Prepares exactly one statement (INVALID_ARGUMENT if `sql` holds more).
  // Statements come from a small cache keyed by the SQL text, so preparing
  // the same SQL again is cheap; they return to it when destroyed.
  absl::StatusOr<Statement> Prepare(absl::string_view sql);

  // Runs `body` in a transaction: BEGIN IMMEDIATE (takes the write lock at
  // once, so the body never fails half-way on a busy lock), then COMMIT if
  // `body` returns OK, else ROLLBACK and `body`'s status. A commit error is
  // returned as such (after rolling back). When a transaction is already
  // open (e.g. inside a GroupCommitter write), `body` runs in a SAVEPOINT
  // instead, so only its own changes roll back on error.
  absl::Status InTransaction(absl::FunctionRef<absl::Status()> body);

  // Whether a transaction is open on this connection.
  bool InTransactionNow() const;

  // The rowid of the last successful INSERT on this connection.
  int64_t LastInsertRowId() const;
  // Rows changed by the last INSERT, UPDATE or DELETE on this connection.
  int Changes() const;

  // Runs `hook` just before each transaction of this connection commits, on
  // the thread committing. Returning false turns the COMMIT into a ROLLBACK,
  // and the COMMIT fails with INTERNAL. For tests that hold and fail commits
  // (storage::CommitGate); an empty hook removes it. Like every other use of
  // the connection, set it from the thread that uses the connection or
  // before handing the connection over (e.g. to a GroupCommitter).
  void SetCommitHook(std::function<bool()> hook);

  // Runs `hook` after each transaction of this connection has committed to
  // the WAL, on the committing thread, with the frames (pages) the WAL now
  // holds. It replaces SQLite's automatic checkpoint on this connection (the
  // copy of the WAL into the file every 1000 pages, inside the COMMIT that
  // crossed the mark): whoever sets it checkpoints, e.g. with Checkpoint on
  // another connection. An empty hook removes it and restores the
  // automatic checkpoint. Set it like SetCommitHook.
  void SetWalHook(std::function<void(int frames)> hook);

  struct CheckpointResult {
    // Frames in the WAL, and how many of them are now in the file.
    int wal_frames = 0;
    int checkpointed_frames = 0;
  };
  // Copies the WAL's frames into the database file and syncs it, without
  // waiting for anyone (SQLite's PASSIVE checkpoint): frames a reader still
  // needs, or a writer adds meanwhile, wait for the next one. Once every
  // frame is in the file, the next write starts the WAL over from its
  // beginning. UNAVAILABLE if another connection is checkpointing; INTERNAL
  // on I/O errors.
  absl::StatusOr<CheckpointResult> Checkpoint();

 private:
  friend class Statement;
  explicit Database(sqlite3* db);
  // Takes back a statement that a Statement no longer needs.
  void Release(sqlite3_stmt* stmt, std::string sql);

  sqlite3* db_;
  int savepoint_depth_ = 0;
  std::function<bool()> commit_hook_;
  std::function<void(int)> wal_hook_;
  // Idle prepared statements by SQL text, bounded by kMaxIdleStatements.
  absl::flat_hash_map<std::string, std::vector<sqlite3_stmt*>> idle_;
  int idle_count_ = 0;
};

}  // namespace switchboard::storage
