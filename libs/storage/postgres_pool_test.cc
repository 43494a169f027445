#include "libs/storage/postgres_pool.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "libs/testing/postgres.h"

namespace switchboard::storage {
namespace {

testing::PostgresServer& Server() {
  static testing::PostgresServer server;
  return server;
}

// The backend process serving `db`: the same number means the same connection.
int64_t BackendOf(PostgresConnection& db) {
  auto rows = db.Query("SELECT pg_backend_pid()");
  return rows.ok() ? rows->Int(0, 0) : -1;
}

TEST(PostgresPoolTest, ReusesAnIdleConnectionAndOpensOneMorePerConcurrentCaller) {
  PostgresPool pool(Server().CreateDatabase());
  int64_t first = 0, second = 0;
  ASSERT_TRUE(pool.Run([&](PostgresConnection& db) {
                    first = BackendOf(db);
                    // A caller while this one runs gets a connection of its own.
                    return pool.Run([&](PostgresConnection& other) {
                      second = BackendOf(other);
                      return absl::OkStatus();
                    });
                  })
                  .ok());
  EXPECT_GT(first, 0);
  EXPECT_NE(first, second);
  int64_t again = 0;
  ASSERT_TRUE(pool.Run([&](PostgresConnection& db) {
                    again = BackendOf(db);
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_TRUE(again == first || again == second);
}

TEST(PostgresPoolTest, RetriesWhatTheServerRolledBackButNotTheBodysOwnAborted) {
  PostgresPool pool(Server().CreateDatabase());
  ASSERT_TRUE(pool.Run([](PostgresConnection& db) {
                    return db.Execute("CREATE TABLE t(n INTEGER)");
                  })
                  .ok());
  int runs = 0;
  absl::Status status = pool.InTransaction([&](PostgresConnection& db) -> absl::Status {
    ++runs;
    if (absl::Status s = db.Query("INSERT INTO t VALUES ($1)", {runs}).status(); !s.ok()) return s;
    if (runs < 3) {
      return db.Execute(
          "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; "
          "END $$");
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(runs, 3);
  // Only the attempt that committed left its row.
  ASSERT_TRUE(pool.Run([](PostgresConnection& db) -> absl::Status {
                    auto rows = db.Query("SELECT n FROM t");
                    if (!rows.ok()) return rows.status();
                    EXPECT_EQ(rows->size(), 1);
                    EXPECT_EQ(rows->Int(0, 0), 3);
                    return absl::OkStatus();
                  })
                  .ok());

  runs = 0;
  status = pool.InTransaction([&](PostgresConnection&) {
    ++runs;
    return absl::AbortedError("the body's own refusal");
  });
  EXPECT_TRUE(absl::IsAborted(status));
  EXPECT_EQ(runs, 1);

  runs = 0;
  status = pool.InTransaction([&](PostgresConnection& db) {
    ++runs;
    return db.Execute(
        "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'deadlock_detected'; END $$");
  });
  EXPECT_TRUE(absl::IsAborted(status)) << status;
  EXPECT_EQ(runs, PostgresPool::kAttempts);
}

}  // namespace
}  // namespace switchboard::storage
