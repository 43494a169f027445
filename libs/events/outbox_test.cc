#include "libs/events/outbox.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/events/outbox_test_backends.h"

namespace switchboard::events {
namespace {

// The same cases on SQLite and on a real PostgreSQL.
class OutboxTest : public ::testing::TestWithParam<OutboxBackendKind> {
 protected:
  void SetUp() override { backend_ = OutboxBackend::Make(GetParam()); }

  v1::Event Sealed(const std::string& agent_id) {
    v1::Event event;
    event.mutable_agent_status_changed()->set_agent_id(agent_id);
    EXPECT_TRUE(Seal(event, "presence", agent_id,
                     absl::FromUnixMicros(1'800'000'000'000'042))
                    .ok());
    return event;
  }

  std::unique_ptr<OutboxBackend> backend_;
};

TEST_P(OutboxTest, StoresTheSerializedEventWithItsRouting) {
  const v1::Event event = Sealed("agent-1");
  ASSERT_TRUE(backend_->Append(TopicFor("presence"), event).ok());
  const std::vector<OutboxBackend::StoredRow> rows = backend_->Rows();
  ASSERT_EQ(rows.size(), 1);
  EXPECT_EQ(rows[0].id, 1);
  EXPECT_EQ(rows[0].row.topic, "switchboard.presence.v1");
  EXPECT_EQ(rows[0].row.key, "agent-1");
  EXPECT_EQ(rows[0].row.event_id, event.event_id());
  EXPECT_EQ(rows[0].row.type, "presence.agent_status_changed");
  v1::Event stored;
  ASSERT_TRUE(stored.ParseFromString(rows[0].row.value));
  EXPECT_EQ(stored.SerializeAsString(), event.SerializeAsString());
  EXPECT_EQ(rows[0].row.created_at_micros, 1'800'000'000'000'042);
}

TEST_P(OutboxTest, EventCommitsOrRollsBackWithTheStateChange) {
  absl::Status failed = backend_->CommitEvent(TopicFor("presence"), Sealed("agent-1"),
                                              /*fail_after_append=*/true);
  EXPECT_EQ(failed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(backend_->Rows().empty());

  ASSERT_TRUE(backend_->CommitEvent(TopicFor("presence"), Sealed("agent-1")).ok());
  EXPECT_EQ(backend_->Rows().size(), 1);
}

TEST_P(OutboxTest, RejectsUnsealedEvents) {
  v1::Event event;
  event.mutable_agent_status_changed()->set_agent_id("agent-1");
  EXPECT_EQ(backend_->Append(TopicFor("presence"), event).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(backend_->Append("", Sealed("agent-1")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(backend_->Rows().empty());
}

TEST_P(OutboxTest, IdsKeepIncreasingAfterDeletes) {
  // A deleted last row's id is never handed out again (SQLite's
  // AUTOINCREMENT, PostgreSQL's identity sequence), so ids always grow.
  ASSERT_TRUE(backend_->Append("t", Sealed("a")).ok());
  ASSERT_TRUE(backend_->Append("t", Sealed("b")).ok());
  ASSERT_TRUE(backend_->DeleteAllRows().ok());
  ASSERT_TRUE(backend_->Append("t", Sealed("c")).ok());
  const std::vector<OutboxBackend::StoredRow> rows = backend_->Rows();
  ASSERT_EQ(rows.size(), 1);
  EXPECT_EQ(rows[0].id, 3);
}

INSTANTIATE_TEST_SUITE_P(Backends, OutboxTest,
                         ::testing::Values(OutboxBackendKind::kSqlite,
                                           OutboxBackendKind::kPostgres),
                         [](const auto& info) { return OutboxBackendName(info.param); });

}  // namespace
}  // namespace switchboard::events
