#include "libs/storage/database.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/storage/test_dir.h"

namespace switchboard::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::unique_ptr<Database> OpenOrDie(const Database::Options& options) {
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? std::move(*db) : nullptr;
}

std::unique_ptr<Database> OpenFile(const std::string& path) {
  Database::Options options;
  options.path = path;
  return OpenOrDie(options);
}

// The single value `sql` returns, as text.
std::string Query(Database& db, const std::string& sql) {
  absl::StatusOr<Statement> stmt = db.Prepare(sql);
  EXPECT_TRUE(stmt.ok()) << stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  EXPECT_TRUE(row.ok()) << row.status();
  EXPECT_TRUE(*row) << sql;
  return stmt->ColumnText(0);
}

int64_t Count(Database& db, const std::string& table) {
  return std::stoll(Query(db, "SELECT COUNT(*) FROM " + table));
}

TEST(DatabaseTest, OpensFileWithWalFullSyncAndForeignKeys) {
  const std::string path = MakeTempDir() + "/a.db";
  std::unique_ptr<Database> db = OpenFile(path);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(Query(*db, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(Query(*db, "PRAGMA synchronous"), "2");  // FULL
  EXPECT_EQ(Query(*db, "PRAGMA foreign_keys"), "1");
  EXPECT_EQ(Query(*db, "PRAGMA busy_timeout"), "5000");

  // WAL is a property of the file: a second connection sees it too.
  std::unique_ptr<Database> other = OpenFile(path);
  EXPECT_EQ(Query(*other, "PRAGMA journal_mode"), "wal");
}

TEST(DatabaseTest, OpenMigratedAppliesTheMigrations) {
  Database::Options options;
  options.path = MakeTempDir() + "/a.db";
  auto db = Database::OpenMigrated(options, {"CREATE TABLE t(x INTEGER)"});
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_TRUE((*db)->Execute("INSERT INTO t(x) VALUES (1)").ok());
  EXPECT_FALSE(Database::OpenMigrated(options, {"CREATE TABLE t(x INTEGER)", "not sql"}).ok());
}

TEST(DatabaseTest, NormalSynchronousWhenAsked) {
  Database::Options options;
  options.path = MakeTempDir() + "/a.db";
  options.synchronous_full = false;
  options.busy_timeout = absl::Milliseconds(250);
  std::unique_ptr<Database> db = OpenOrDie(options);
  EXPECT_EQ(Query(*db, "PRAGMA synchronous"), "1");  // NORMAL
  EXPECT_EQ(Query(*db, "PRAGMA busy_timeout"), "250");
}

TEST(DatabaseTest, OpensInMemory) {
  std::unique_ptr<Database> db = OpenOrDie({":memory:"});
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(db->Execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)").ok());
  EXPECT_EQ(Count(*db, "t"), 1);
}

TEST(DatabaseTest, OpenInMissingFolderFailsNamingThePath) {
  Database::Options options;
  options.path = MakeTempDir() + "/missing/a.db";
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
  EXPECT_EQ(db.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(db.status().message(), HasSubstr(options.path));
}

TEST(DatabaseTest, MigrateIsIdempotentAndAppliesOnlyNewMigrations) {
  const std::string path = MakeTempDir() + "/a.db";
  std::vector<std::string> migrations = {
      "CREATE TABLE a(x INTEGER)",
      "CREATE TABLE b(y TEXT); INSERT INTO b VALUES ('seed')",
  };
  {
    std::unique_ptr<Database> db = OpenFile(path);
    ASSERT_TRUE(db->Migrate(migrations).ok());
    EXPECT_EQ(Query(*db, "PRAGMA user_version"), "2");
    // Again: nothing runs twice (CREATE TABLE would fail, the seed would
    // double).
    ASSERT_TRUE(db->Migrate(migrations).ok());
    EXPECT_EQ(Count(*db, "b"), 1);
  }
  // A later build appends a migration; reopening applies just that one.
  migrations.push_back("ALTER TABLE a ADD COLUMN z TEXT");
  std::unique_ptr<Database> db = OpenFile(path);
  ASSERT_TRUE(db->Migrate(migrations).ok());
  EXPECT_EQ(Query(*db, "PRAGMA user_version"), "3");
  EXPECT_EQ(Count(*db, "b"), 1);
  EXPECT_TRUE(db->Execute("INSERT INTO a(x, z) VALUES (1, 'z')").ok());
}

TEST(DatabaseTest, MigrateRefusesFileFromNewerBuild) {
  const std::string path = MakeTempDir() + "/a.db";
  std::unique_ptr<Database> db = OpenFile(path);
  ASSERT_TRUE(db->Migrate({"CREATE TABLE a(x)", "CREATE TABLE b(x)"}).ok());
  absl::Status status = db->Migrate({"CREATE TABLE a(x)"});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("newer"));
  EXPECT_EQ(Query(*db, "PRAGMA user_version"), "2");
}

TEST(DatabaseTest, FailedMigrationLeavesPreviousVersion) {
  std::unique_ptr<Database> db = OpenFile(MakeTempDir() + "/a.db");
  absl::Status status = db->Migrate(
      {"CREATE TABLE a(x)", "CREATE TABLE b(x); INSERT INTO nowhere VALUES (1)"});
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("schema version 2"));
  EXPECT_EQ(Query(*db, "PRAGMA user_version"), "1");
  // Migration 2 rolled back whole: table b was not left behind.
  EXPECT_EQ(Query(*db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'"),
            "0");
}

TEST(DatabaseTest, UniqueAndPrimaryKeyViolationsAreAlreadyExists) {
  std::unique_ptr<Database> db = OpenFile(MakeTempDir() + "/a.db");
  ASSERT_TRUE(db->Migrate({"CREATE TABLE t(id TEXT PRIMARY KEY, "
                           "email TEXT UNIQUE, n INTEGER NOT NULL)"})
                  .ok());
  const char* kInsert = "INSERT INTO t(id, email, n) VALUES (?, ?, ?)";
  ASSERT_TRUE(db->Prepare(kInsert)->Bind(1, "id-1").Bind(2, "secret@x").Bind(3, 1).Run().ok());

  absl::Status duplicate_key =
      db->Prepare(kInsert)->Bind(1, "id-1").Bind(2, "other@x").Bind(3, 1).Run();
  EXPECT_EQ(duplicate_key.code(), absl::StatusCode::kAlreadyExists);

  absl::Status duplicate_email =
      db->Prepare(kInsert)->Bind(1, "id-2").Bind(2, "secret@x").Bind(3, 1).Run();
  EXPECT_EQ(duplicate_email.code(), absl::StatusCode::kAlreadyExists);
  // The message names the statement but never the values.
  EXPECT_THAT(duplicate_email.message(), HasSubstr("INSERT INTO t(id,"));
  EXPECT_THAT(duplicate_email.message(), Not(HasSubstr("secret")));

  absl::Status not_null =
      db->Prepare(kInsert)->Bind(1, "id-3").Bind(2, "c@x").BindNull(3).Run();
  EXPECT_EQ(not_null.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Count(*db, "t"), 1);
}

TEST(DatabaseTest, LockHeldByAnotherConnectionIsUnavailable) {
  const std::string path = MakeTempDir() + "/a.db";
  std::unique_ptr<Database> holder = OpenFile(path);
  ASSERT_TRUE(holder->Migrate({"CREATE TABLE t(x)"}).ok());
  Database::Options options;
  options.path = path;
  options.busy_timeout = absl::Milliseconds(20);
  std::unique_ptr<Database> waiter = OpenOrDie(options);

  ASSERT_TRUE(holder->Execute("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)").ok());
  absl::Status status = waiter->InTransaction(
      [&] { return waiter->Execute("INSERT INTO t VALUES (2)"); });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  // Readers are not blocked by the writer in WAL mode.
  EXPECT_EQ(Count(*waiter, "t"), 0);
  ASSERT_TRUE(holder->Execute("COMMIT").ok());
  EXPECT_EQ(Count(*waiter, "t"), 1);
}

TEST(DatabaseTest, InTransactionCommitsOrRollsBack) {
  std::unique_ptr<Database> db = OpenFile(MakeTempDir() + "/a.db");
  ASSERT_TRUE(db->Migrate({"CREATE TABLE t(x)"}).ok());

  EXPECT_TRUE(db->InTransaction([&] {
                  EXPECT_TRUE(db->InTransactionNow());
                  return db->Execute("INSERT INTO t VALUES (1)");
                }).ok());
  EXPECT_FALSE(db->InTransactionNow());

  absl::Status status = db->InTransaction([&]() -> absl::Status {
    EXPECT_TRUE(db->Execute("INSERT INTO t VALUES (2)").ok());
    return absl::NotFoundError("agent-9");
  });
  EXPECT_EQ(status, absl::NotFoundError("agent-9"));
  EXPECT_FALSE(db->InTransactionNow());
  EXPECT_EQ(Query(*db, "SELECT group_concat(x) FROM t"), "1");
}

TEST(DatabaseTest, NestedInTransactionRollsBackOnlyItsOwnChanges) {
  std::unique_ptr<Database> db = OpenFile(MakeTempDir() + "/a.db");
  ASSERT_TRUE(db->Migrate({"CREATE TABLE t(x)"}).ok());
  absl::Status outer = db->InTransaction([&]() -> absl::Status {
    EXPECT_TRUE(db->Execute("INSERT INTO t VALUES (1)").ok());
    absl::Status inner = db->InTransaction([&]() -> absl::Status {
      EXPECT_TRUE(db->Execute("INSERT INTO t VALUES (2)").ok());
      return absl::AbortedError("inner");
    });
    EXPECT_EQ(inner.code(), absl::StatusCode::kAborted);
    return db->InTransaction(
        [&] { return db->Execute("INSERT INTO t VALUES (3)"); });
  });
  ASSERT_TRUE(outer.ok()) << outer;
  EXPECT_EQ(Query(*db, "SELECT group_concat(x) FROM t"), "1,3");
}

TEST(DatabaseTest, StatementBindsAndReadsEveryType) {
  std::unique_ptr<Database> db = OpenOrDie({":memory:"});
  ASSERT_TRUE(db->Execute("CREATE TABLE t(i INTEGER, d REAL, s TEXT, b BLOB, "
                          "n TEXT)")
                  .ok());
  const std::string blob("a\0b\xff", 4);
  absl::StatusOr<Statement> insert =
      db->Prepare("INSERT INTO t VALUES (?, ?, ?, ?, ?)");
  ASSERT_TRUE(insert.ok()) << insert.status();
  ASSERT_TRUE(insert->Bind(1, int64_t{1} << 40)
                  .Bind(2, 2.5)
                  .Bind(3, absl::string_view("客服 agent"))
                  .BindBlob(4, blob)
                  .BindNull(5)
                  .Run()
                  .ok());
  EXPECT_EQ(db->LastInsertRowId(), 1);
  EXPECT_EQ(db->Changes(), 1);
  // An empty blob stays a blob, not NULL.
  insert->Reset();
  ASSERT_TRUE(insert->Bind(1, 2).Bind(2, 0.0).Bind(3, "").BindBlob(4, "").Bind(5, "x").Run().ok());
  EXPECT_EQ(db->LastInsertRowId(), 2);

  absl::StatusOr<Statement> select =
      db->Prepare("SELECT i, d, s, b, n FROM t ORDER BY rowid");
  ASSERT_TRUE(select.ok());
  ASSERT_TRUE(*select->Step());
  EXPECT_EQ(select->ColumnInt(0), int64_t{1} << 40);
  EXPECT_EQ(select->ColumnDouble(1), 2.5);
  EXPECT_EQ(select->ColumnText(2), "客服 agent");
  EXPECT_EQ(select->ColumnBlob(3), blob);
  EXPECT_TRUE(select->ColumnIsNull(4));
  ASSERT_TRUE(*select->Step());
  EXPECT_FALSE(select->ColumnIsNull(3));
  EXPECT_EQ(select->ColumnBlob(3), "");
  EXPECT_FALSE(*select->Step());
  // Finished statements start over on the next Step.
  ASSERT_TRUE(*select->Step());
  EXPECT_EQ(select->ColumnInt(0), int64_t{1} << 40);
}

TEST(DatabaseTest, BindErrorIsReportedByRun) {
  std::unique_ptr<Database> db = OpenOrDie({":memory:"});
  ASSERT_TRUE(db->Execute("CREATE TABLE t(x)").ok());
  absl::StatusOr<Statement> insert = db->Prepare("INSERT INTO t VALUES (?)");
  absl::Status status = insert->Bind(1, 1).Bind(2, 2).Run();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("parameter 2"));
  insert->Reset();
  EXPECT_TRUE(insert->Bind(1, 1).Run().ok());
  EXPECT_EQ(Count(*db, "t"), 1);
}

TEST(DatabaseTest, PrepareTakesExactlyOneStatement) {
  std::unique_ptr<Database> db = OpenOrDie({":memory:"});
  EXPECT_EQ(db->Prepare("SELECT 1; SELECT 2").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Prepare("  ").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(db->Prepare("SELECT 1;  ").ok());
  EXPECT_EQ(db->Prepare("SELEKT 1").status().code(),
            absl::StatusCode::kInternal);
}

TEST(DatabaseTest, CachedStatementsAreIndependentAndClean) {
  std::unique_ptr<Database> db = OpenOrDie({":memory:"});
  ASSERT_TRUE(db->Execute("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)").ok());
  const char* kSql = "SELECT x FROM t WHERE x >= ? ORDER BY x";
  // Two live statements of the same SQL do not share state.
  absl::StatusOr<Statement> a = db->Prepare(kSql);
  absl::StatusOr<Statement> b = db->Prepare(kSql);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(*a->Bind(1, 2).Step());
  ASSERT_TRUE(*b->Bind(1, 1).Step());
  EXPECT_EQ(a->ColumnInt(0), 2);
  EXPECT_EQ(b->ColumnInt(0), 1);
  // One left half-read goes back to the cache reset, without its bindings.
  { Statement moved = std::move(*a); }
  absl::StatusOr<Statement> c = db->Prepare(kSql);
  ASSERT_TRUE(c.ok());
  // An unbound parameter is NULL, and x >= NULL matches nothing.
  EXPECT_FALSE(*c->Step());
}

}  // namespace
}  // namespace switchboard::storage
