#include "libs/storage/group_commit.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/storage/database.h"
#include "libs/storage/test_dir.h"

namespace switchboard::storage {
namespace {

using ::testing::ElementsAre;

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = MakeTempDir() + "/a.db";
    Database::Options options;
    options.path = path_;
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    ASSERT_TRUE(db_->Migrate({"CREATE TABLE t(name TEXT PRIMARY KEY)"}).ok());
  }

  // A write inserting `name`.
  static GroupCommitter::Write Insert(std::string name) {
    return [name](Database& db) {
      absl::StatusOr<Statement> stmt = db.Prepare("INSERT INTO t VALUES (?)");
      if (!stmt.ok()) return stmt.status();
      return stmt->Bind(1, name).Run();
    };
  }

  // The names in t, in order, read through a second connection (so only
  // committed rows count).
  std::vector<std::string> Names() {
    Database::Options options;
    options.path = path_;
    std::unique_ptr<Database> reader = *Database::Open(options);
    absl::StatusOr<Statement> stmt =
        reader->Prepare("SELECT name FROM t ORDER BY name");
    std::vector<std::string> names;
    while (*stmt->Step()) names.push_back(stmt->ColumnText(0));
    return names;
  }

  // Submits a write that holds the writer thread until `release` is
  // notified, and returns once it runs: what is submitted next queues up
  // and forms one batch.
  void BlockWriter(GroupCommitter& committer, absl::Notification& release) {
    absl::Notification started;
    committer.Submit(
        [&](Database&) {
          started.Notify();
          release.WaitForNotification();
          return absl::OkStatus();
        },
        [](absl::Status) {});
    started.WaitForNotification();
  }

  std::string path_;
  std::unique_ptr<Database> db_;
};

TEST_F(GroupCommitTest, ConcurrentCommitsAllLandInFewerTransactions) {
  GroupCommitter committer(db_.get());
  constexpr int kThreads = 16;
  constexpr int kPerThread = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!committer.Commit(Insert(absl::StrCat(t, "-", i))).ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Names().size(), kThreads * kPerThread);
  GroupCommitter::Stats stats = committer.stats();
  EXPECT_EQ(stats.writes, kThreads * kPerThread);
  EXPECT_LT(stats.commits, stats.writes);
  EXPECT_GT(stats.commits, 0);
}

TEST_F(GroupCommitTest, QueuedWritesShareOneCommit) {
  GroupCommitter committer(db_.get());
  absl::Notification release;
  BlockWriter(committer, release);
  std::atomic<int> ok{0};
  for (int i = 0; i < 10; ++i) {
    committer.Submit(Insert(absl::StrCat("n", i)),
                     [&](absl::Status s) { ok += s.ok(); });
  }
  release.Notify();
  committer.Stop();
  EXPECT_EQ(ok.load(), 10);
  GroupCommitter::Stats stats = committer.stats();
  EXPECT_EQ(stats.writes, 11);
  EXPECT_EQ(stats.commits, 2);  // The blocker's, then all ten together.
}

TEST_F(GroupCommitTest, MaxBatchSplitsTransactions) {
  GroupCommitter::Options options;
  options.max_batch = 4;
  GroupCommitter committer(db_.get(), options);
  absl::Notification release;
  BlockWriter(committer, release);
  for (int i = 0; i < 10; ++i) {
    committer.Submit(Insert(absl::StrCat("n", i)), [](absl::Status) {});
  }
  release.Notify();
  committer.Stop();
  EXPECT_EQ(committer.stats().commits, 1 + 3);  // 4 + 4 + 2
  EXPECT_EQ(Names().size(), 10);
}

// A write that inserts `name` and records the connection's synchronous
// setting as its transaction saw it (2 FULL: the commit fsyncs; 1 NORMAL:
// it does not).
GroupCommitter::Write InsertSeeingSync(std::string name, int* synchronous) {
  return [name, synchronous](Database& db) {
    absl::StatusOr<Statement> pragma = db.Prepare("PRAGMA synchronous");
    if (!pragma.ok()) return pragma.status();
    if (absl::StatusOr<bool> row = pragma->Step(); !row.ok() || !*row) {
      return absl::InternalError("PRAGMA synchronous returned no row");
    }
    *synchronous = static_cast<int>(pragma->ColumnInt(0));
    absl::StatusOr<Statement> insert = db.Prepare("INSERT INTO t VALUES (?)");
    if (!insert.ok()) return insert.status();
    return insert->Bind(1, name).Run();
  };
}

TEST_F(GroupCommitTest, DeferredWritesSkipTheFsyncOnlyWhenTheirWholeBatchIsDeferred) {
  GroupCommitter::Options options;
  std::vector<GroupCommitter::BatchReport> reports;  // Only the writer thread adds.
  options.on_batch = [&](const GroupCommitter::BatchReport& report) {
    reports.push_back(report);
  };
  GroupCommitter committer(db_.get(), options);
  using Durability = GroupCommitter::Durability;
  int alone = 0, synced_after = 0, deferred_mixed = 0, synced_mixed = 0;
  ASSERT_TRUE(committer.Commit(InsertSeeingSync("alone", &alone), Durability::kDeferred).ok());
  ASSERT_TRUE(committer.Commit(InsertSeeingSync("synced", &synced_after)).ok());
  // A deferred and a synced write queued into one batch: it is fsynced.
  absl::Notification release;
  BlockWriter(committer, release);
  committer.Submit(InsertSeeingSync("deferred-mixed", &deferred_mixed), [](absl::Status) {},
                   Durability::kDeferred);
  committer.Submit(InsertSeeingSync("synced-mixed", &synced_mixed), [](absl::Status) {});
  release.Notify();
  committer.Stop();

  EXPECT_EQ(alone, 1);  // NORMAL: written to the WAL, no fsync of its own.
  EXPECT_EQ(synced_after, 2);
  EXPECT_EQ(deferred_mixed, 2);
  EXPECT_EQ(synced_mixed, 2);
  EXPECT_THAT(Names(), ElementsAre("alone", "deferred-mixed", "synced", "synced-mixed"));
  ASSERT_EQ(reports.size(), 4);  // alone, synced, the blocker, the mixed pair.
  EXPECT_FALSE(reports[0].fsynced);
  EXPECT_TRUE(reports[1].fsynced);
  EXPECT_EQ(reports[3].writes, 2);
  EXPECT_EQ(reports[3].commits, 1);
  EXPECT_TRUE(reports[3].fsynced);
  for (const GroupCommitter::BatchReport& report : reports) {
    // The COMMIT is timed apart, within the batch's time.
    EXPECT_GT(report.commit_took, absl::ZeroDuration());
    EXPECT_LE(report.commit_took, report.took);
  }
}

TEST_F(GroupCommitTest, DeferredWritesChangeNothingOnAConnectionThatNeverFsyncs) {
  ASSERT_TRUE(db_->Execute("PRAGMA synchronous=NORMAL").ok());
  GroupCommitter committer(db_.get());
  int deferred = 0, synced = 0;
  ASSERT_TRUE(committer
                  .Commit(InsertSeeingSync("a", &deferred), GroupCommitter::Durability::kDeferred)
                  .ok());
  ASSERT_TRUE(committer.Commit(InsertSeeingSync("b", &synced)).ok());
  EXPECT_EQ(deferred, 1);
  EXPECT_EQ(synced, 1);  // Not raised to FULL behind the owner's back.
}

TEST_F(GroupCommitTest, FailingWriteIsRolledBackAloneInItsBatch) {
  GroupCommitter committer(db_.get());
  absl::Notification release;
  BlockWriter(committer, release);

  std::vector<absl::Status> results(4);
  auto record = [&](int i) {
    return [&results, i](absl::Status s) { results[i] = std::move(s); };
  };
  committer.Submit(Insert("a"), record(0));
  // Inserts, then fails: its insert must not survive.
  committer.Submit(
      [](Database& db) -> absl::Status {
        absl::Status inserted = Insert("b")(db);
        if (!inserted.ok()) return inserted;
        return absl::FailedPreconditionError("agent is offline");
      },
      record(1));
  committer.Submit(Insert("a"), record(2));  // Duplicate key.
  committer.Submit(Insert("c"), record(3));
  release.Notify();
  committer.Stop();

  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_EQ(results[1], absl::FailedPreconditionError("agent is offline"));
  EXPECT_EQ(results[2].code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(results[3].ok()) << results[3];
  EXPECT_THAT(Names(), ElementsAre("a", "c"));
  EXPECT_EQ(committer.stats().commits, 2);
}

TEST_F(GroupCommitTest, CommitErrorReachesEveryWriteOfTheBatch) {
  // A deferred foreign key is checked at COMMIT, so one bad write makes the
  // whole batch's commit fail.
  ASSERT_TRUE(db_->Execute(
                     "CREATE TABLE child(parent TEXT REFERENCES t(name) "
                     "DEFERRABLE INITIALLY DEFERRED)")
                  .ok());
  GroupCommitter committer(db_.get());
  absl::Notification release;
  BlockWriter(committer, release);
  std::vector<absl::Status> results(2);
  committer.Submit(Insert("a"), [&](absl::Status s) { results[0] = s; });
  committer.Submit(
      [](Database& db) {
        return db.Execute("INSERT INTO child VALUES ('nobody')");
      },
      [&](absl::Status s) { results[1] = s; });
  release.Notify();
  committer.Stop();
  EXPECT_EQ(results[0].code(), absl::StatusCode::kInternal);
  EXPECT_EQ(results[1].code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(Names().empty());
  // The writer recovered: the connection is not left in a transaction.
  EXPECT_FALSE(db_->InTransactionNow());
}

TEST_F(GroupCommitTest, DoneRunsOnWriterThreadInSubmissionOrder) {
  GroupCommitter::Options options;
  options.max_batch = 7;
  GroupCommitter committer(db_.get(), options);
  absl::Mutex mu;
  std::vector<int> order;
  std::atomic<bool> on_caller_thread{false};
  const std::thread::id caller = std::this_thread::get_id();
  constexpr int kWrites = 100;
  for (int i = 0; i < kWrites; ++i) {
    committer.Submit(Insert(absl::StrCat("n", i)), [&, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      if (std::this_thread::get_id() == caller) on_caller_thread = true;
      absl::MutexLock lock(&mu);
      order.push_back(i);
    });
  }
  committer.Stop();
  EXPECT_FALSE(on_caller_thread.load());
  ASSERT_EQ(order.size(), kWrites);
  for (int i = 0; i < kWrites; ++i) EXPECT_EQ(order[i], i);
}

TEST_F(GroupCommitTest, StopRunsWhatWasSubmittedThenRefuses) {
  GroupCommitter committer(db_.get());
  absl::Notification release;
  BlockWriter(committer, release);
  std::atomic<int> ok{0};
  for (int i = 0; i < 5; ++i) {
    committer.Submit(Insert(absl::StrCat("n", i)),
                     [&](absl::Status s) { ok += s.ok(); });
  }
  std::thread stopper([&] { committer.Stop(); });
  release.Notify();
  stopper.join();
  EXPECT_EQ(ok.load(), 5);
  EXPECT_EQ(Names().size(), 5);

  bool called = false;
  committer.Submit(Insert("late"), [&](absl::Status s) {
    called = true;
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  });
  EXPECT_TRUE(called);  // At once, on this thread.
  EXPECT_EQ(committer.Commit(Insert("late")).code(),
            absl::StatusCode::kUnavailable);
  committer.Stop();  // Idempotent.
  EXPECT_EQ(Names().size(), 5);
}

TEST_F(GroupCommitTest, DestructorRunsPendingWrites) {
  {
    GroupCommitter committer(db_.get());
    for (int i = 0; i < 20; ++i) {
      committer.Submit(Insert(absl::StrCat("n", i)), [](absl::Status) {});
    }
  }
  EXPECT_EQ(Names().size(), 20);
}

TEST_F(GroupCommitTest, SubmitFromDoneRunsInALaterBatch) {
  GroupCommitter committer(db_.get());
  absl::Notification second_done;
  committer.Submit(Insert("first"), [&](absl::Status s) {
    EXPECT_TRUE(s.ok());
    committer.Submit(Insert("second"), [&](absl::Status s2) {
      EXPECT_TRUE(s2.ok());
      second_done.Notify();
    });
  });
  second_done.WaitForNotification();
  EXPECT_THAT(Names(), ElementsAre("first", "second"));
}

TEST_F(GroupCommitTest, UnderLoadABatchWaitsOutTheMinimumIntervalAndTakesWhatCame) {
  GroupCommitter::Options options;
  options.min_commit_interval = absl::Seconds(2);
  GroupCommitter committer(db_.get(), options);
  // One caller writing after each answer is no load: each write at once.
  const absl::Time start = absl::Now();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(committer.Commit(Insert(absl::StrCat("s", i))).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(committer.stats().commits, 3);

  // Writes queued while a batch runs: the next batch waits out the interval
  // and takes the writes that came meanwhile, 5 ms apart, which would
  // otherwise commit one by one.
  absl::Notification release;
  BlockWriter(committer, release);
  std::atomic<int> ok{0};
  absl::Notification last;
  for (int i = 0; i < 5; ++i) {
    committer.Submit(Insert(absl::StrCat("n", i)), [&, i](absl::Status s) {
      ok += s.ok();
      if (i == 4) last.Notify();
    });
    if (i == 0) release.Notify();
    absl::SleepFor(absl::Milliseconds(5));
  }
  last.WaitForNotification();
  EXPECT_EQ(ok.load(), 5);
  EXPECT_EQ(committer.stats().commits, 3 + 2);  // the blocker's, then the five
  EXPECT_EQ(Names().size(), 8u);
}

// Commits rows of about a page each, one at a time, `rounds` times
// `per_round`; returns the largest the WAL file grew to, in 4 KiB pages.
int64_t WritePagesAndWatchTheWal(GroupCommitter& committer, const std::string& path, int rounds,
                                 int per_round) {
  int64_t largest = 0;
  int row = 0;
  for (int r = 0; r < rounds; ++r) {
    absl::Status last;
    for (int i = 0; i < per_round; ++i) {
      std::string name = absl::StrCat(row++, "-", std::string(3000, 'x'));
      last = committer.Commit([name](Database& db) {
        absl::StatusOr<Statement> stmt = db.Prepare("INSERT INTO t VALUES (?)");
        if (!stmt.ok()) return stmt.status();
        return stmt->Bind(1, name).Run();
      });
    }
    EXPECT_TRUE(last.ok()) << last;
    std::error_code error;
    const auto size = std::filesystem::file_size(path + "-wal", error);
    if (!error) largest = std::max<int64_t>(largest, static_cast<int64_t>(size) / 4096);
  }
  return largest;
}

TEST_F(GroupCommitTest, CheckpointsRunOnTheirOwnThreadWhenAConnectionIsGiven) {
  std::unique_ptr<Database> checkpoints = *Database::Open({path_});
  GroupCommitter::Options options;
  options.checkpoints = checkpoints.get();
  options.checkpoint_frames = 50;
  options.writer_checkpoint_frames = 1'000'000;  // never: only the thread
  GroupCommitter committer(db_.get(), options);
  WritePagesAndWatchTheWal(committer, path_, 20, 10);
  committer.Stop();
  EXPECT_EQ(Names().size(), 200u);
  const GroupCommitter::Stats stats = committer.stats();
  EXPECT_GT(stats.background_checkpoints, 0);
  EXPECT_EQ(stats.writer_checkpoints, 0);
  EXPECT_TRUE(stats.checkpoint_error.ok()) << stats.checkpoint_error;
  // The rows reached the database file itself, not just the WAL.
  EXPECT_GT(std::filesystem::file_size(path_), 200u * 3000u);
}

TEST_F(GroupCommitTest, TheWriterStartsTheWalOverAfterTheThreadsCheckpointSoItStaysBounded) {
  std::unique_ptr<Database> checkpoints = *Database::Open({path_});
  GroupCommitter::Options options;
  options.checkpoints = checkpoints.get();
  options.checkpoint_frames = 1'000'000;  // asked only before the writer's own
  options.writer_checkpoint_frames = 100;
  absl::Mutex mu;
  std::string order;  // "b" for the thread's checkpoints, "w" for the writer's
  options.on_checkpoint = [&](const GroupCommitter::CheckpointReport& report) {
    // UNAVAILABLE: the other connection was checkpointing at that moment,
    // which happens when the thread fell behind and the writer went ahead.
    EXPECT_TRUE(report.status.ok() || absl::IsUnavailable(report.status)) << report.status;
    absl::MutexLock lock(&mu);
    order += report.by_writer ? "w" : "b";
  };
  GroupCommitter committer(db_.get(), options);
  // About 2,000 frames in all: without the writer's checkpoints the WAL
  // would hold every one of them.
  const int64_t largest = WritePagesAndWatchTheWal(committer, path_, 100, 10);
  committer.Stop();
  EXPECT_EQ(Names().size(), 1000u);
  EXPECT_LT(largest, 300);
  absl::MutexLock lock(&mu);
  // The thread copied the bulk before the writer's checkpoints. On a loaded
  // machine (ASan on 2 busy cores) it sometimes falls behind and the writer
  // goes alone once the WAL holds twice its threshold ("ww" in CI, rarely):
  // so most, not all, of the writer's follow one of the thread's.
  const int64_t by_writer = std::count(order.begin(), order.end(), 'w');
  int64_t after_thread = 0;
  for (size_t at = order.find("bw"); at != std::string::npos; at = order.find("bw", at + 1)) {
    ++after_thread;
  }
  EXPECT_GT(by_writer, 0) << order;
  EXPECT_GE(2 * after_thread, by_writer) << order;
}

TEST_F(GroupCommitTest, AdmitRefusesClientWritesOnceTheBacklogIsFull) {
  GroupCommitter::Options options;
  options.max_queue = 2;
  GroupCommitter committer(db_.get(), options);
  absl::Notification release;
  BlockWriter(committer, release);
  EXPECT_TRUE(committer.Admit().ok());
  committer.Submit(Insert("a"), [](absl::Status) {});
  committer.Submit(Insert("b"), [](absl::Status) {});
  absl::Status refused = committer.Admit();
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_TRUE(refused.GetPayload("retry-after").has_value());
  // The service's own writes are still taken, and nothing queued is lost.
  committer.Submit(Insert("c"), [](absl::Status) {});
  release.Notify();
  committer.Stop();
  EXPECT_THAT(Names(), ElementsAre("a", "b", "c"));
}

}  // namespace
}  // namespace switchboard::storage
