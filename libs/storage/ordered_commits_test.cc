#include "libs/storage/ordered_commits.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/storage/commit_gate.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"

namespace switchboard::storage {
namespace {

// A store of integers over the real SQLite and GroupCommitter, with a gate
// in front of its commits.
class IntStore {
 public:
  IntStore() : path_(MakeTempDir() + "/ints.db") {
    db_ = *Database::OpenMigrated({path_}, {"CREATE TABLE t(v INTEGER)"});
    reader_ = *Database::Open({path_});
    gate_ = std::make_unique<CommitGate>(db_.get());
    committer_ = std::make_unique<GroupCommitter>(db_.get());
  }
  ~IntStore() {
    gate_->Open();
    committer_->Stop();
  }

  void Apply(int value, std::function<void(absl::Status)> done) {
    committer_->Submit(
        [value](Database& db) {
          auto insert = db.Prepare("INSERT INTO t(v) VALUES (?)");
          if (!insert.ok()) return insert.status();
          return insert->Bind(1, value).Run();
        },
        std::move(done));
  }

  int64_t Rows() {
    auto count = reader_->Prepare("SELECT COUNT(*) FROM t");
    EXPECT_TRUE(count.ok());
    EXPECT_TRUE(*count->Step());
    return count->ColumnInt(0);
  }

  CommitGate& gate() { return *gate_; }

 private:
  std::string path_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<Database> reader_;
  std::unique_ptr<CommitGate> gate_;
  std::unique_ptr<GroupCommitter> committer_;
};

// The order in which hooks ran, as "durable 1", "settled 1", ...
class Trace {
 public:
  OrderedCommits::Hooks For(int value) {
    return {[this, value] { Add("durable ", value); }, [this, value] { Add("settled ", value); }};
  }
  std::vector<std::string> lines() const {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  void Add(const char* what, int value) {
    absl::MutexLock lock(&mu_);
    lines_.push_back(what + std::to_string(value));
  }
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

TEST(OrderedCommitsTest, AwaitReturnsOnlyOnceTheWriteIsDurableAndItsHooksRan) {
  IntStore store;
  Trace trace;
  OrderedCommits commits("test", OrderedCommits::FailedWrite::kUnavailable);
  store.gate().Close();
  std::shared_ptr<PendingWrite> first = commits.Commit(store, 1, trace.For(1));
  std::shared_ptr<PendingWrite> second = commits.Commit(store, 2, trace.For(2));
  EXPECT_EQ(commits.Newest(), second);
  absl::Status awaited = absl::UnknownError("not answered");
  absl::Notification answered;
  std::thread waiter([&] {
    awaited = commits.Await(second);
    answered.Notify();
  });
  ASSERT_TRUE(store.gate().AwaitHeld(1));
  EXPECT_FALSE(first->settled());
  EXPECT_FALSE(answered.HasBeenNotified());
  EXPECT_TRUE(trace.lines().empty()) << "a hook ran before the commit";
  store.gate().Open();
  waiter.join();
  EXPECT_TRUE(awaited.ok()) << awaited;
  EXPECT_TRUE(first->settled());
  EXPECT_EQ(store.Rows(), 2);
  EXPECT_EQ(trace.lines(),
            (std::vector<std::string>{"durable 1", "settled 1", "durable 2", "settled 2"}));
  EXPECT_TRUE(commits.AwaitInOrder(first).ok());
  EXPECT_TRUE(commits.CheckWritable().ok());
}

TEST(OrderedCommitsTest, AFailedCommitFailsItsWaitersAndEveryLaterWrite) {
  IntStore store;
  Trace trace;
  OrderedCommits commits("test", OrderedCommits::FailedWrite::kUnavailable);
  store.gate().Close();
  std::shared_ptr<PendingWrite> failed = commits.Commit(store, 1, trace.For(1));
  ASSERT_TRUE(store.gate().AwaitHeld(1));
  store.gate().FailHeld();
  store.gate().Open();
  const absl::Status status = commits.Await(failed);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "test storage failed; retry later");
  // Never published: watchers must not see what is not on disk.
  EXPECT_EQ(trace.lines(), std::vector<std::string>{"settled 1"});
  EXPECT_EQ(store.Rows(), 0);
  EXPECT_EQ(commits.CheckWritable().code(), absl::StatusCode::kUnavailable);
  // A later write that did commit: an answer from memory that the failed
  // write changed is still refused.
  std::shared_ptr<PendingWrite> later = commits.Commit(store, 2);
  EXPECT_TRUE(commits.Await(later).ok());
  EXPECT_EQ(commits.AwaitInOrder(later).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(commits.AwaitInOrder(nullptr).code(), absl::StatusCode::kUnavailable);
}

TEST(OrderedCommitsTest, StoreErrorPolicyHandsTheStoresOwnErrorToTheWaiter) {
  IntStore store;
  OrderedCommits commits("test", OrderedCommits::FailedWrite::kStoreError);
  store.gate().Close();
  std::shared_ptr<PendingWrite> failed = commits.Commit(store, 1);
  ASSERT_TRUE(store.gate().AwaitHeld(1));
  store.gate().FailHeld();
  const absl::Status status = commits.Await(failed);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message(), "test storage failed; retry later") << status;
  EXPECT_EQ(commits.CheckWritable().message(),
            "test storage failed; the service must be restarted");
}

TEST(OrderedCommitsTest, AGivenHandleIsTheOneCommittedAndNothingIsAlreadyDurable) {
  IntStore store;
  OrderedCommits commits("test", OrderedCommits::FailedWrite::kUnavailable);
  EXPECT_EQ(commits.Newest(), nullptr);
  EXPECT_TRUE(commits.Await(nullptr).ok());
  std::shared_ptr<PendingWrite> nothing = OrderedCommits::Nothing();
  EXPECT_TRUE(nothing->settled());
  EXPECT_TRUE(commits.Await(nothing).ok());

  std::shared_ptr<PendingWrite> decided = OrderedCommits::NewWrite();
  EXPECT_FALSE(decided->settled());
  EXPECT_EQ(commits.Commit(store, 7, {}, decided), decided);
  EXPECT_EQ(commits.Newest(), decided);
  EXPECT_TRUE(commits.Await(decided).ok());
  EXPECT_EQ(store.Rows(), 1);
}

TEST(OrderedCommitsTest, ThenAnswersFromTheCommitAfterItsHooksWithoutBlocking) {
  IntStore store;
  Trace trace;
  OrderedCommits commits("test", OrderedCommits::FailedWrite::kUnavailable);
  store.gate().Close();
  std::shared_ptr<PendingWrite> write = commits.Commit(store, 1, trace.For(1));
  absl::Notification answered;
  absl::Status answer = absl::UnknownError("not answered");
  std::vector<std::string> hooks_at_answer;
  commits.Then(write, [&](absl::Status status) {
    hooks_at_answer = trace.lines();
    answer = std::move(status);
    answered.Notify();
  });
  // Then returned at once; nothing is answered before the commit.
  ASSERT_TRUE(store.gate().AwaitHeld(1));
  EXPECT_FALSE(answered.HasBeenNotified());
  store.gate().Open();
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(answer.ok()) << answer;
  EXPECT_EQ(hooks_at_answer, (std::vector<std::string>{"durable 1", "settled 1"}));

  // A settled write (or none) is answered at once, on the calling thread.
  bool at_once = false;
  commits.Then(write, [&](absl::Status status) { at_once = status.ok(); });
  EXPECT_TRUE(at_once);
  at_once = false;
  commits.Then(nullptr, [&](absl::Status status) { at_once = status.ok(); });
  EXPECT_TRUE(at_once);
}

TEST(OrderedCommitsTest, ThenHandsAFailedCommitToEveryCallbackAsAwaitWould) {
  IntStore store;
  OrderedCommits commits("test", OrderedCommits::FailedWrite::kUnavailable);
  store.gate().Close();
  std::shared_ptr<PendingWrite> failed = commits.Commit(store, 1);
  std::vector<absl::Status> answers(2, absl::UnknownError("not answered"));
  absl::BlockingCounter both(2);
  for (absl::Status& answer : answers) {
    commits.Then(failed, [&answer, &both](absl::Status status) {
      answer = std::move(status);
      both.DecrementCount();
    });
  }
  ASSERT_TRUE(store.gate().AwaitHeld(1));
  store.gate().FailHeld();
  store.gate().Open();
  both.Wait();
  for (const absl::Status& answer : answers) {
    EXPECT_EQ(answer.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(answer.message(), "test storage failed; retry later");
  }
  absl::Status late;
  commits.Then(failed, [&](absl::Status status) { late = std::move(status); });
  EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable);
}

TEST(SettleStampsTest, SettlingAKeyChangesItsStampOnly) {
  SettleStamps stamps;
  const uint64_t before = stamps.Stamp("session-1\nmessage-1");
  EXPECT_EQ(stamps.Stamp("session-1\nmessage-1"), before);
  stamps.Settle("session-1\nmessage-1");
  EXPECT_NE(stamps.Stamp("session-1\nmessage-1"), before);
  // Keys in other buckets keep theirs: of 100 other keys, most differ in
  // bucket (4096 of them), so at most a few can move.
  std::vector<uint64_t> others;
  for (int i = 0; i < 100; ++i) others.push_back(stamps.Stamp("other\n" + std::to_string(i)));
  stamps.Settle("session-1\nmessage-1");
  int moved = 0;
  for (int i = 0; i < 100; ++i) moved += stamps.Stamp("other\n" + std::to_string(i)) != others[i];
  EXPECT_LE(moved, 2);
}

}  // namespace
}  // namespace switchboard::storage
