#include "libs/storage/postgres_group_commit.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/postgres.h"

namespace switchboard::storage {
namespace {

using ::testing::ElementsAre;

// One real server for the suite; a fresh database per test.
class PostgresGroupCommitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new testing::PostgresServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    uri_ = server_->CreateDatabase();
    absl::StatusOr<std::unique_ptr<PostgresConnection>> db = PostgresConnection::OpenMigrated(
        uri_, {"CREATE TABLE t(seq BIGSERIAL, name TEXT PRIMARY KEY)"});
    ASSERT_TRUE(db.ok()) << db.status();
    reader_ = std::move(*db);
  }

  std::unique_ptr<PostgresGroupCommitter> Committer(
      PostgresGroupCommitter::Options options = {}) {
    return std::make_unique<PostgresGroupCommitter>(*PostgresConnection::Open(uri_), options);
  }

  static PostgresGroupCommitter::Write Insert(std::string name) {
    return [name](PostgresConnection& db) {
      return db.Query("INSERT INTO t(name) VALUES ($1)", {name}).status();
    };
  }

  // A write that holds the writer thread (and so every later write) until
  // `release`.
  static PostgresGroupCommitter::Write Blocker(absl::Notification* started,
                                               absl::Notification* release) {
    return [started, release](PostgresConnection&) {
      started->Notify();
      release->WaitForNotification();
      return absl::OkStatus();
    };
  }

  // The committed names, in the order their rows were inserted.
  std::vector<std::string> Names() {
    absl::StatusOr<PostgresRows> rows = reader_->Query("SELECT name FROM t ORDER BY seq");
    EXPECT_TRUE(rows.ok()) << rows.status();
    std::vector<std::string> names;
    for (int r = 0; rows.ok() && r < rows->size(); ++r) names.push_back(rows->Text(r, 0));
    return names;
  }

  static testing::PostgresServer* server_;
  std::string uri_;
  std::unique_ptr<PostgresConnection> reader_;
};

testing::PostgresServer* PostgresGroupCommitTest::server_ = nullptr;

TEST_F(PostgresGroupCommitTest, WritesCommitInOrderInSharedTransactionsAndReportInOrder) {
  auto committer = Committer();
  absl::Notification started, release;
  committer->Submit(Blocker(&started, &release), [](absl::Status) {});
  started.WaitForNotification();
  absl::Mutex mu;
  std::vector<std::string> reported;
  const std::vector<std::string> names = {"a", "b", "c", "d", "e", "f"};
  std::atomic<int> left{static_cast<int>(names.size())};
  absl::Notification all_done;
  for (const std::string& name : names) {
    committer->Submit(Insert(name), [&, name](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      {
        absl::MutexLock lock(&mu);
        reported.push_back(name);
      }
      if (left.fetch_sub(1) == 1) all_done.Notify();
    });
  }
  release.Notify();
  all_done.WaitForNotification();
  EXPECT_EQ(reported, names);
  EXPECT_EQ(Names(), names);
  // The blocker's transaction, then one for the six queued behind it.
  EXPECT_EQ(committer->stats().commits, 2);
  EXPECT_EQ(committer->stats().writes, 7);
}

TEST_F(PostgresGroupCommitTest, AFailedWriteRollsBackOnlyItself) {
  auto committer = Committer();
  absl::Notification started, release;
  committer->Submit(Blocker(&started, &release), [](absl::Status) {});
  started.WaitForNotification();
  std::vector<absl::Status> outcomes(3);
  absl::Notification last;
  committer->Submit(Insert("a"), [&](absl::Status s) { outcomes[0] = s; });
  committer->Submit(
      [](PostgresConnection& db) {
        absl::Status inserted = db.Query("INSERT INTO t(name) VALUES ('x')").status();
        if (!inserted.ok()) return inserted;
        return db.Query("INSERT INTO t(name) VALUES ('a')").status();  // a duplicate
      },
      [&](absl::Status s) { outcomes[1] = s; });
  committer->Submit(Insert("b"), [&](absl::Status s) {
    outcomes[2] = s;
    last.Notify();
  });
  release.Notify();
  last.WaitForNotification();
  EXPECT_TRUE(outcomes[0].ok()) << outcomes[0];
  EXPECT_EQ(outcomes[1].code(), absl::StatusCode::kAlreadyExists) << outcomes[1];
  EXPECT_TRUE(outcomes[2].ok()) << outcomes[2];
  EXPECT_THAT(Names(), ElementsAre("a", "b"));
}

// A batch PostgreSQL aborts (here: a write reports ABORTED on its first run,
// as a deadlock victim would) runs again whole: the writes before it are
// not committed twice (the primary key would refuse "a" again) and every
// write succeeds.
TEST_F(PostgresGroupCommitTest, AnAbortedBatchRunsAgainWholeAndCommitsOnce) {
  auto committer = Committer();
  absl::Notification started, release;
  committer->Submit(Blocker(&started, &release), [](absl::Status) {});
  started.WaitForNotification();
  std::atomic<int> runs{0};
  std::vector<absl::Status> outcomes(3);
  absl::Notification last;
  committer->Submit(Insert("a"), [&](absl::Status s) { outcomes[0] = s; });
  committer->Submit(
      [&runs](PostgresConnection& db) -> absl::Status {
        if (absl::Status s = db.Query("INSERT INTO t(name) VALUES ('victim')").status(); !s.ok()) {
          return s;
        }
        if (runs.fetch_add(1) == 0) return absl::AbortedError("deadlock detected");
        return absl::OkStatus();
      },
      [&](absl::Status s) { outcomes[1] = s; });
  committer->Submit(Insert("b"), [&](absl::Status s) {
    outcomes[2] = s;
    last.Notify();
  });
  release.Notify();
  last.WaitForNotification();
  for (const absl::Status& s : outcomes) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(runs.load(), 2);
  EXPECT_THAT(Names(), ElementsAre("a", "victim", "b"));
  EXPECT_EQ(committer->stats().retries, 1);
}

TEST_F(PostgresGroupCommitTest, ABatchAbortedEveryTimeFailsAbortedAndWritesNothing) {
  PostgresGroupCommitter::Options options;
  options.attempts = 3;
  auto committer = Committer(options);
  std::atomic<int> runs{0};
  absl::Status inserted = committer->Commit([&runs](PostgresConnection& db) -> absl::Status {
    runs.fetch_add(1);
    if (absl::Status s = db.Query("INSERT INTO t(name) VALUES ('a')").status(); !s.ok()) {
      return s;
    }
    return absl::AbortedError("could not serialize access");
  });
  EXPECT_EQ(inserted.code(), absl::StatusCode::kAborted) << inserted;
  EXPECT_EQ(runs.load(), 3);
  EXPECT_TRUE(Names().empty());
}

// The connection dies under a write: that transaction's writes fail
// UNAVAILABLE, and the next write re-connects and commits.
TEST_F(PostgresGroupCommitTest, ALostConnectionFailsItsTransactionAndTheNextWriteReconnects) {
  auto committer = Committer();
  absl::Notification started, release;
  committer->Submit(Blocker(&started, &release), [](absl::Status) {});
  started.WaitForNotification();
  std::vector<absl::Status> outcomes(2);
  committer->Submit(Insert("a"), [&](absl::Status s) { outcomes[0] = s; });
  committer->Submit(
      [](PostgresConnection& db) {
        return db.Query("SELECT pg_terminate_backend(pg_backend_pid())").status();
      },
      [&](absl::Status s) { outcomes[1] = s; });
  release.Notify();
  absl::Status after = committer->Commit(Insert("b"));
  EXPECT_EQ(outcomes[0].code(), absl::StatusCode::kUnavailable) << outcomes[0];
  EXPECT_EQ(outcomes[1].code(), absl::StatusCode::kUnavailable) << outcomes[1];
  EXPECT_TRUE(after.ok()) << after;
  EXPECT_THAT(Names(), ElementsAre("b"));
}

// The fence runs in each batch's transaction before its writes: while it
// passes, writes commit; once it fails, every write of the batch gets its
// status and nothing of the batch is committed.
TEST_F(PostgresGroupCommitTest, AFailedFenceFailsTheWholeBatchWithItsStatus) {
  std::atomic<bool> open{true};
  std::atomic<int> fenced_runs{0};
  PostgresGroupCommitter::Options options;
  options.fence = [&](PostgresConnection& db) -> absl::Status {
    ++fenced_runs;
    EXPECT_TRUE(db.InTransactionNow());
    if (open) return absl::OkStatus();
    return absl::FailedPreconditionError("fenced off");
  };
  auto committer = Committer(options);
  EXPECT_TRUE(committer->Commit(Insert("a")).ok());
  EXPECT_EQ(fenced_runs, 1);

  absl::Notification started, release;
  std::vector<absl::Status> outcomes(3);
  absl::Notification last;
  // Held behind a blocker in the last batch that passes, the three queue
  // up and run as one batch.
  committer->Submit(Blocker(&started, &release), [](absl::Status) {});
  started.WaitForNotification();
  open = false;
  committer->Submit(Insert("b"), [&](absl::Status s) { outcomes[0] = s; });
  committer->Submit(Insert("c"), [&](absl::Status s) { outcomes[1] = s; });
  committer->Submit(Insert("d"), [&](absl::Status s) {
    outcomes[2] = s;
    last.Notify();
  });
  release.Notify();
  last.WaitForNotification();
  for (const absl::Status& outcome : outcomes) {
    EXPECT_EQ(outcome, absl::FailedPreconditionError("fenced off"));
  }
  EXPECT_EQ(fenced_runs, 3);
  EXPECT_THAT(Names(), ElementsAre("a"));
}

TEST_F(PostgresGroupCommitTest, AdmitRefusesAFullQueueAndStopRefusesLaterWrites) {
  PostgresGroupCommitter::Options options;
  options.max_queue = 2;
  auto committer = Committer(options);
  absl::Notification started, release;
  committer->Submit(Blocker(&started, &release), [](absl::Status) {});
  started.WaitForNotification();
  EXPECT_TRUE(committer->Admit().ok());
  committer->Submit(Insert("a"), [](absl::Status) {});
  committer->Submit(Insert("b"), [](absl::Status) {});
  EXPECT_EQ(committer->Admit().code(), absl::StatusCode::kResourceExhausted);
  release.Notify();
  committer->Stop();
  EXPECT_THAT(Names(), ElementsAre("a", "b"));
  absl::Status late;
  committer->Submit(Insert("c"), [&](absl::Status s) { late = s; });
  EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable) << late;
}

}  // namespace
}  // namespace switchboard::storage
