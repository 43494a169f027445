#include "libs/storage/commit_gate.h"

#include <thread>

#include "absl/time/clock.h"

#include "gtest/gtest.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"

namespace switchboard::storage {
namespace {

int64_t CountRows(Database& db) {
  auto count = db.Prepare("SELECT COUNT(*) FROM t");
  EXPECT_TRUE(count.ok());
  EXPECT_TRUE(*count->Step());
  return count->ColumnInt(0);
}

GroupCommitter::Write Insert(int value) {
  return [value](Database& db) {
    auto insert = db.Prepare("INSERT INTO t(v) VALUES (?)");
    if (!insert.ok()) return insert.status();
    return insert->Bind(1, value).Run();
  };
}

class CommitGateTest : public ::testing::Test {
 protected:
  CommitGateTest() : path_(MakeTempDir() + "/gate.db") {
    db_ = *Database::OpenMigrated({path_}, {"CREATE TABLE t(v INTEGER)"});
    reader_ = *Database::Open({path_});
    gate_ = std::make_unique<CommitGate>(db_.get());
    committer_ = std::make_unique<GroupCommitter>(db_.get());
  }
  ~CommitGateTest() override {
    gate_->Open();
    committer_->Stop();
  }

  std::string path_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<Database> reader_;
  std::unique_ptr<CommitGate> gate_;
  std::unique_ptr<GroupCommitter> committer_;
};

TEST_F(CommitGateTest, AHeldCommitIsInvisibleUntilOpenedThenDurable) {
  gate_->Close();
  absl::Status status = absl::UnknownError("not finished");
  std::thread writer([&] { status = committer_->Commit(Insert(1)); });
  ASSERT_TRUE(gate_->AwaitHeld(1));
  EXPECT_EQ(CountRows(*reader_), 0);
  gate_->Open();
  writer.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(CountRows(*reader_), 1);
  EXPECT_EQ(gate_->committed(), 1);
}

TEST_F(CommitGateTest, AFailedCommitRollsBackItsWholeBatchAndLaterOnesStillWait) {
  gate_->Close();
  absl::Status first = absl::UnknownError("not finished");
  std::thread writer([&] { first = committer_->Commit(Insert(1)); });
  ASSERT_TRUE(gate_->AwaitHeld(1));
  absl::Status second = absl::UnknownError("not finished");
  std::thread later([&] { second = committer_->Commit(Insert(2)); });
  const absl::Time limit = absl::Now() + absl::Seconds(30);
  while (committer_->queued() < 1 && absl::Now() < limit) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_EQ(committer_->queued(), 1) << "the second write waits behind the held batch";
  gate_->FailHeld();
  writer.join();
  EXPECT_FALSE(first.ok());
  EXPECT_EQ(CountRows(*reader_), 0);
  // The next batch waits at the still closed gate, then commits.
  ASSERT_TRUE(gate_->AwaitHeld(1));
  gate_->Open();
  later.join();
  EXPECT_TRUE(second.ok()) << second;
  EXPECT_EQ(CountRows(*reader_), 1);
  EXPECT_EQ(gate_->failed(), 1);
}

TEST_F(CommitGateTest, WithoutTheGateClosedCommitsPassAtOnce) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(committer_->Commit(Insert(i)).ok());
  EXPECT_EQ(CountRows(*reader_), 5);
  EXPECT_FALSE(gate_->AwaitHeld(1, absl::Milliseconds(10)));
}

}  // namespace
}  // namespace switchboard::storage
