#include "libs/events/outbox.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/storage/database.h"
#include "libs/storage/test_dir.h"

namespace switchboard::events {
namespace {

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::Database::Options options;
    options.path = storage::MakeTempDir() + "/service.db";
    absl::StatusOr<std::unique_ptr<storage::Database>> db =
        storage::Database::Open(options);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    // As a service does: its own tables, then the outbox.
    ASSERT_TRUE(
        db_->Migrate({"CREATE TABLE agents(id TEXT PRIMARY KEY)",
                      kOutboxMigration})
            .ok());
  }

  v1::Event Sealed(const std::string& agent_id) {
    v1::Event event;
    event.mutable_agent_status_changed()->set_agent_id(agent_id);
    EXPECT_TRUE(Seal(event, "presence", agent_id,
                     absl::FromUnixMicros(1'800'000'000'000'042))
                    .ok());
    return event;
  }

  int64_t OutboxRows() {
    absl::StatusOr<storage::Statement> count =
        db_->Prepare("SELECT COUNT(*) FROM outbox");
    EXPECT_TRUE(*count->Step());
    return count->ColumnInt(0);
  }

  std::unique_ptr<storage::Database> db_;
};

TEST_F(OutboxTest, StoresTheSerializedEventWithItsRouting) {
  const v1::Event event = Sealed("agent-1");
  ASSERT_TRUE(AppendToOutbox(*db_, TopicFor("presence"), event).ok());
  absl::StatusOr<storage::Statement> row =
      db_->Prepare("SELECT id, topic, key, event_id, type, value, "
                   "created_at_micros FROM outbox");
  ASSERT_TRUE(*row->Step());
  EXPECT_EQ(row->ColumnInt(0), 1);
  EXPECT_EQ(row->ColumnText(1), "switchboard.presence.v1");
  EXPECT_EQ(row->ColumnText(2), "agent-1");
  EXPECT_EQ(row->ColumnText(3), event.event_id());
  EXPECT_EQ(row->ColumnText(4), "presence.agent_status_changed");
  v1::Event stored;
  ASSERT_TRUE(stored.ParseFromString(row->ColumnBlob(5)));
  EXPECT_EQ(stored.SerializeAsString(), event.SerializeAsString());
  EXPECT_EQ(row->ColumnInt(6), 1'800'000'000'000'042);
}

TEST_F(OutboxTest, EventCommitsOrRollsBackWithTheStateChange) {
  absl::Status failed = db_->InTransaction([&]() -> absl::Status {
    absl::Status s = db_->Execute("INSERT INTO agents VALUES ('agent-1')");
    if (!s.ok()) return s;
    s = AppendToOutbox(*db_, TopicFor("presence"), Sealed("agent-1"));
    if (!s.ok()) return s;
    return absl::FailedPreconditionError("capacity exceeded");
  });
  EXPECT_EQ(failed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(OutboxRows(), 0);

  ASSERT_TRUE(db_->InTransaction([&]() -> absl::Status {
                   absl::Status s =
                       db_->Execute("INSERT INTO agents VALUES ('agent-1')");
                   if (!s.ok()) return s;
                   return AppendToOutbox(*db_, TopicFor("presence"),
                                         Sealed("agent-1"));
                 }).ok());
  EXPECT_EQ(OutboxRows(), 1);
}

TEST_F(OutboxTest, RejectsUnsealedEvents) {
  v1::Event event;
  event.mutable_agent_status_changed()->set_agent_id("agent-1");
  EXPECT_EQ(AppendToOutbox(*db_, TopicFor("presence"), event).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AppendToOutbox(*db_, "", Sealed("agent-1")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OutboxRows(), 0);
}

TEST_F(OutboxTest, IdsKeepIncreasingAfterDeletes) {
  // AUTOINCREMENT: a deleted last row's id is never handed out again, so
  // ids always follow commit order.
  ASSERT_TRUE(AppendToOutbox(*db_, "t", Sealed("a")).ok());
  ASSERT_TRUE(AppendToOutbox(*db_, "t", Sealed("b")).ok());
  ASSERT_TRUE(db_->Execute("DELETE FROM outbox").ok());
  ASSERT_TRUE(AppendToOutbox(*db_, "t", Sealed("c")).ok());
  EXPECT_EQ(db_->LastInsertRowId(), 3);
}

}  // namespace
}  // namespace switchboard::events
