#include "libs/storage/postgres.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "libs/testing/postgres.h"

namespace switchboard::storage {
namespace {

// One real server for the suite; a fresh database per test.
class PostgresConnectionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new testing::PostgresServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    uri_ = server_->CreateDatabase();
    absl::StatusOr<std::unique_ptr<PostgresConnection>> db = PostgresConnection::Open(uri_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }

  int64_t Count(const std::string& table) {
    absl::StatusOr<PostgresRows> rows = db_->Query("SELECT COUNT(*) FROM " + table);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? rows->Int(0, 0) : -1;
  }

  static testing::PostgresServer* server_;
  std::string uri_;
  std::unique_ptr<PostgresConnection> db_;
};

testing::PostgresServer* PostgresConnectionTest::server_ = nullptr;

TEST_F(PostgresConnectionTest, OpenFailsUnavailableWhenNoServerListens) {
  testing::ReservedPort unused;
  absl::StatusOr<std::unique_ptr<PostgresConnection>> db = PostgresConnection::Open(
      "postgresql://switchboard@127.0.0.1:" + std::to_string(unused.port()) + "/switchboard");
  EXPECT_EQ(db.status().code(), absl::StatusCode::kUnavailable) << db.status();
}

TEST(NumberedParametersTest, NumbersEachMarkInOrder) {
  EXPECT_EQ(NumberedParameters("SELECT a FROM t WHERE b = ? AND (c, d) < (?, ?) LIMIT ?"),
            "SELECT a FROM t WHERE b = $1 AND (c, d) < ($2, $3) LIMIT $4");
  EXPECT_EQ(NumberedParameters("SELECT 1"), "SELECT 1");
}

TEST_F(PostgresConnectionTest, ParametersRoundTripTextIntegersBytesAndNull) {
  ASSERT_TRUE(db_->Execute("CREATE TABLE t(id BIGINT, name TEXT, data BYTEA, note TEXT)").ok());
  const std::string bytes("a\0b\xff'\"\\", 7);
  const std::string tricky = "O'Brien; DROP TABLE t; -- \xc3\xa9";
  absl::StatusOr<PostgresRows> inserted =
      db_->Query("INSERT INTO t VALUES ($1, $2, $3, $4)",
                 {int64_t{-9007199254740993}, tricky, PostgresParam::Bytes(bytes),
                  PostgresParam::Null()});
  ASSERT_TRUE(inserted.ok()) << inserted.status();
  EXPECT_EQ(inserted->changed(), 1);

  absl::StatusOr<PostgresRows> rows =
      db_->Query("SELECT id, name, data, note FROM t WHERE name = $1", {tricky});
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1);
  EXPECT_EQ(rows->Int(0, 0), -9007199254740993);
  EXPECT_EQ(rows->Text(0, 1), tricky);
  EXPECT_EQ(rows->Bytes(0, 2), bytes);
  EXPECT_TRUE(rows->IsNull(0, 3));
  EXPECT_FALSE(rows->IsNull(0, 1));
  EXPECT_EQ(Count("t"), 1);
}

TEST_F(PostgresConnectionTest, UniqueViolationIsAlreadyExistsWithoutTheValue) {
  ASSERT_TRUE(db_->Execute("CREATE TABLE agents(id TEXT PRIMARY KEY)").ok());
  ASSERT_TRUE(db_->Query("INSERT INTO agents(id) VALUES ($1)", {"agent-secret-1"}).ok());
  absl::Status duplicate =
      db_->Query("INSERT INTO agents(id) VALUES ($1)", {"agent-secret-1"}).status();
  EXPECT_EQ(duplicate.code(), absl::StatusCode::kAlreadyExists) << duplicate;
  EXPECT_NE(duplicate.message().find("23505"), std::string::npos) << duplicate;
  EXPECT_NE(duplicate.message().find("INSERT INTO agents"), std::string::npos) << duplicate;
  EXPECT_EQ(duplicate.message().find("agent-secret-1"), std::string::npos) << duplicate;
}

TEST_F(PostgresConnectionTest, OtherErrorsAreInternalAndNameTheStatement) {
  absl::Status missing = db_->Query("SELECT nothing FROM nowhere").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInternal) << missing;
  EXPECT_NE(missing.message().find("42P01"), std::string::npos) << missing;
  EXPECT_NE(missing.message().find("SELECT nothing FROM"), std::string::npos) << missing;

  ASSERT_TRUE(db_->Execute("CREATE TABLE positive(n INT CHECK (n > 0))").ok());
  EXPECT_EQ(db_->Query("INSERT INTO positive VALUES ($1)", {-1}).status().code(),
            absl::StatusCode::kInternal);
}

TEST_F(PostgresConnectionTest, TransactionCommitsOnOkAndRollsBackOnError) {
  ASSERT_TRUE(db_->Execute("CREATE TABLE t(id INT)").ok());
  EXPECT_TRUE(db_->InTransaction([&] {
                   EXPECT_TRUE(db_->InTransactionNow());
                   return db_->Query("INSERT INTO t VALUES (1)").status();
                 }).ok());
  EXPECT_FALSE(db_->InTransactionNow());
  absl::Status failed = db_->InTransaction([&]() -> absl::Status {
    EXPECT_TRUE(db_->Query("INSERT INTO t VALUES (2)").ok());
    return absl::FailedPreconditionError("changed my mind");
  });
  EXPECT_EQ(failed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(db_->InTransactionNow());
  EXPECT_EQ(Count("t"), 1);
}

TEST_F(PostgresConnectionTest, NestedTransactionRollsBackOnlyItsOwnChanges) {
  ASSERT_TRUE(db_->Execute("CREATE TABLE t(id INT PRIMARY KEY)").ok());
  absl::Status outer = db_->InTransaction([&]() -> absl::Status {
    if (absl::Status s = db_->Query("INSERT INTO t VALUES (1)").status(); !s.ok()) return s;
    // A duplicate inside the savepoint: only the savepoint's work is undone
    // and the outer transaction stays usable.
    absl::Status inner = db_->InTransaction([&]() -> absl::Status {
      if (absl::Status s = db_->Query("INSERT INTO t VALUES (2)").status(); !s.ok()) return s;
      return db_->Query("INSERT INTO t VALUES (1)").status();
    });
    EXPECT_EQ(inner.code(), absl::StatusCode::kAlreadyExists) << inner;
    return db_->Query("INSERT INTO t VALUES (3)").status();
  });
  ASSERT_TRUE(outer.ok()) << outer;
  absl::StatusOr<PostgresRows> rows = db_->Query("SELECT id FROM t ORDER BY id");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2);
  EXPECT_EQ(rows->Int(0, 0), 1);
  EXPECT_EQ(rows->Int(1, 0), 3);
}

TEST_F(PostgresConnectionTest, BodyThatSwallowedAnErrorDoesNotCommitSilently) {
  ASSERT_TRUE(db_->Execute("CREATE TABLE t(id INT PRIMARY KEY)").ok());
  absl::Status status = db_->InTransaction([&] {
    EXPECT_TRUE(db_->Query("INSERT INTO t VALUES (1)").ok());
    EXPECT_FALSE(db_->Query("INSERT INTO t VALUES (1)").ok());
    return absl::OkStatus();  // Ignores the failure.
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_EQ(Count("t"), 0);
}

TEST_F(PostgresConnectionTest, DeadlockIsAbortedAndTheOtherTransactionCommits) {
  ASSERT_TRUE(db_->Execute("CREATE TABLE t(id INT PRIMARY KEY, n INT); "
                           "INSERT INTO t VALUES (1, 0), (2, 0)")
                  .ok());
  std::unique_ptr<PostgresConnection> other = *PostgresConnection::Open(uri_);
  // Each holds one row, then wants the other's: the server aborts one.
  ASSERT_TRUE(db_->Begin().ok());
  ASSERT_TRUE(other->Begin().ok());
  ASSERT_TRUE(db_->Query("UPDATE t SET n = 1 WHERE id = 1").ok());
  ASSERT_TRUE(other->Query("UPDATE t SET n = 2 WHERE id = 2").ok());
  absl::Status first;
  // The victim rolls back at once, which lets the survivor through.
  std::thread waiter([&] {
    first = db_->Query("UPDATE t SET n = 1 WHERE id = 2").status();
    if (!first.ok()) db_->Rollback();
  });
  absl::Status second = other->Query("UPDATE t SET n = 2 WHERE id = 1").status();
  if (!second.ok()) other->Rollback();
  waiter.join();
  ASSERT_NE(first.ok(), second.ok()) << first << " / " << second;
  const absl::Status& aborted = first.ok() ? second : first;
  EXPECT_EQ(aborted.code(), absl::StatusCode::kAborted) << aborted;
  EXPECT_NE(aborted.message().find("40P01"), std::string::npos) << aborted;
  PostgresConnection& survivor = first.ok() ? *db_ : *other;
  EXPECT_TRUE(survivor.Commit().ok());
}

TEST_F(PostgresConnectionTest, MigrateAppliesEachMigrationOnceInOrder) {
  std::vector<std::string> migrations = {
      "CREATE TABLE a(id INT)",
      "ALTER TABLE a ADD COLUMN name TEXT; INSERT INTO a VALUES (1, 'one')",
  };
  ASSERT_TRUE(db_->Migrate(migrations).ok());
  ASSERT_TRUE(db_->Migrate(migrations).ok());  // Idempotent.
  EXPECT_EQ(Count("a"), 1);
  EXPECT_EQ(Count("schema_migrations"), 2);

  migrations.push_back("INSERT INTO a VALUES (2, 'two')");
  absl::StatusOr<std::unique_ptr<PostgresConnection>> reopened =
      PostgresConnection::OpenMigrated(uri_, migrations);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(Count("a"), 2);
  EXPECT_EQ(Count("schema_migrations"), 3);
}

TEST_F(PostgresConnectionTest, FailedMigrationKeepsThePreviousVersion) {
  ASSERT_TRUE(db_->Migrate({"CREATE TABLE a(id INT)"}).ok());
  absl::Status failed = db_->Migrate(
      {"CREATE TABLE a(id INT)", "CREATE TABLE b(id INT); SELECT broken FROM nowhere"});
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  EXPECT_NE(failed.message().find("migration to schema version 2"), std::string::npos) << failed;
  EXPECT_EQ(Count("schema_migrations"), 1);
  // Table b was rolled back with the migration.
  EXPECT_FALSE(db_->Query("SELECT COUNT(*) FROM b").ok());
}

TEST_F(PostgresConnectionTest, NewerDatabaseIsFailedPrecondition) {
  ASSERT_TRUE(db_->Migrate({"CREATE TABLE a(id INT)", "CREATE TABLE b(id INT)"}).ok());
  absl::Status older = db_->Migrate({"CREATE TABLE a(id INT)"});
  EXPECT_EQ(older.code(), absl::StatusCode::kFailedPrecondition) << older;
}

TEST_F(PostgresConnectionTest, ConcurrentMigrationsApplyEachMigrationOnce) {
  // Migrations that fail if run twice (no IF NOT EXISTS, a unique row).
  const std::vector<std::string> migrations = {
      "CREATE TABLE once(id INT PRIMARY KEY); INSERT INTO once VALUES (1)",
      "INSERT INTO once VALUES (2)",
      "CREATE TABLE twice(id INT); INSERT INTO once VALUES (3)",
  };
  constexpr int kMigrators = 8;
  std::vector<absl::Status> results(kMigrators);
  std::vector<std::thread> threads;
  for (int i = 0; i < kMigrators; ++i) {
    threads.emplace_back([&, i] {
      results[i] = PostgresConnection::OpenMigrated(uri_, migrations).status();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& result : results) EXPECT_TRUE(result.ok()) << result;
  EXPECT_EQ(Count("once"), 3);
  EXPECT_EQ(Count("schema_migrations"), 3);
}

TEST_F(PostgresConnectionTest, LostConnectionIsUnavailableThenReestablished) {
  absl::StatusOr<PostgresRows> pid = db_->Query("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid.ok());
  absl::StatusOr<std::unique_ptr<PostgresConnection>> admin = PostgresConnection::Open(uri_);
  ASSERT_TRUE(admin.ok());
  ASSERT_TRUE((*admin)->Query("SELECT pg_terminate_backend($1)", {pid->Int(0, 0)}).ok());

  absl::Status lost = db_->Query("SELECT 1").status();
  EXPECT_EQ(lost.code(), absl::StatusCode::kUnavailable) << lost;
  absl::StatusOr<PostgresRows> again = db_->Query("SELECT 2");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->Int(0, 0), 2);
}

TEST_F(PostgresConnectionTest, LostConnectionFailsTheTransactionWithoutReconnectingInside) {
  ASSERT_TRUE(db_->Execute("CREATE TABLE t(id INT)").ok());
  absl::StatusOr<std::unique_ptr<PostgresConnection>> admin = PostgresConnection::Open(uri_);
  ASSERT_TRUE(admin.ok());
  absl::Status status = db_->InTransaction([&]() -> absl::Status {
    absl::StatusOr<PostgresRows> pid = db_->Query("SELECT pg_backend_pid()");
    if (!pid.ok()) return pid.status();
    EXPECT_TRUE((*admin)->Query("SELECT pg_terminate_backend($1)", {pid->Int(0, 0)}).ok());
    // Neither statement may run outside the transaction on a new connection.
    db_->Query("INSERT INTO t VALUES (1)").IgnoreError();
    return db_->Query("INSERT INTO t VALUES (2)").status();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(Count("t"), 0);
}

// Every connection of a URI from WithSchema starts in the schema and with
// the given settings, also after the connection was re-established.
TEST_F(PostgresConnectionTest, WithSchemaSetsTheSearchPathAndTheSettings) {
  ASSERT_TRUE(db_->Execute("CREATE SCHEMA s1").ok());
  absl::StatusOr<std::string> uri =
      WithSchema(uri_, "s1", {{"tcp_keepalives_count", "3"}, {"work_mem", "2048"}});
  ASSERT_TRUE(uri.ok()) << uri.status();
  absl::StatusOr<std::unique_ptr<PostgresConnection>> db = PostgresConnection::Open(*uri);
  ASSERT_TRUE(db.ok()) << db.status();
  auto settings = [&]() -> std::string {
    absl::StatusOr<PostgresRows> rows = (*db)->Query(
        "SELECT current_setting('search_path') || ' ' || "
        "(SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings "
        "WHERE name IN ('tcp_keepalives_count', 'work_mem'))");
    return rows.ok() ? rows->Text(0, 0) : rows.status().ToString();
  };
  EXPECT_EQ(settings(), "s1 tcp_keepalives_count=3 work_mem=2048");

  absl::StatusOr<PostgresRows> pid = (*db)->Query("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(db_->Query("SELECT pg_terminate_backend($1)", {pid->Int(0, 0)}).ok());
  EXPECT_EQ((*db)->Query("SELECT 1").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(settings(), "s1 tcp_keepalives_count=3 work_mem=2048");
}

TEST(WithSchemaTest, RefusesWhatCouldBreakOutOfTheOptions) {
  const std::string uri = "postgresql://u@127.0.0.1:1/d";
  EXPECT_EQ(WithSchema(uri, "Bad-Name").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WithSchema(uri, "s", {{"work_mem", "1 -c x=y"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WithSchema(uri, "s", {{"work mem", "1"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*WithSchema(uri, "s", {{"tcp_keepalives_idle", "5"}}),
            uri + "?options=-csearch_path%3Ds%20-ctcp_keepalives_idle%3D5");
  EXPECT_EQ(*WithSchema("host=h dbname=d", "s", {{"tcp_keepalives_idle", "5"}}),
            "host=h dbname=d options='-csearch_path=s -ctcp_keepalives_idle=5'");
}

}  // namespace
}  // namespace switchboard::storage
