#include "libs/events/envelope.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"

namespace switchboard::events {
namespace {

using ::testing::MatchesRegex;

v1::Event StatusChanged(const std::string& agent_id) {
  v1::Event event;
  event.mutable_agent_status_changed()->set_agent_id(agent_id);
  return event;
}

TEST(SealTest, FillsTheEnvelope) {
  v1::Event event = StatusChanged("agent-1");
  const absl::Time at = absl::FromUnixMillis(1'800'000'000'123);
  ASSERT_TRUE(Seal(event, "presence", "agent-1", at).ok());
  EXPECT_EQ(event.type(), "presence.agent_status_changed");
  EXPECT_EQ(event.producer(), "presence");
  EXPECT_EQ(event.entity_id(), "agent-1");
  EXPECT_EQ(event.occurred_at().seconds(), 1'800'000'000);
  EXPECT_EQ(event.occurred_at().nanos(), 123'000'000);
  EXPECT_THAT(event.event_id(),
              MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                           "[0-9a-f]{12}"));
  EXPECT_EQ(event.agent_status_changed().agent_id(), "agent-1");
}

TEST(SealTest, TypeNamesWhicheverPayloadIsSet) {
  // Every payload of the oneof, including ones added after this test was
  // written.
  const google::protobuf::OneofDescriptor* payload =
      v1::Event::descriptor()->FindOneofByName("payload");
  ASSERT_NE(payload, nullptr);
  ASSERT_GT(payload->field_count(), 1);
  for (int i = 0; i < payload->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = payload->field(i);
    ASSERT_EQ(field->cpp_type(),
              google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE);
    v1::Event event;
    event.GetReflection()->MutableMessage(&event, field);
    ASSERT_TRUE(Seal(event, "svc", "e-1", absl::Now()).ok()) << field->name();
    EXPECT_EQ(event.type(), "svc." + field->name());
  }
  v1::Event load;
  load.mutable_agent_load_changed()->set_load(2);
  ASSERT_TRUE(Seal(load, "presence", "agent-1", absl::Now()).ok());
  EXPECT_EQ(load.type(), "presence.agent_load_changed");
}

TEST(SealTest, RejectsMissingPayloadAndLeavesEventUnchanged) {
  v1::Event event;
  absl::Status status = Seal(event, "presence", "agent-1", absl::Now());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(event.ByteSizeLong(), 0);
}

TEST(SealTest, RejectsEmptyNamesAndInfiniteTime) {
  v1::Event event = StatusChanged("agent-1");
  EXPECT_EQ(Seal(event, "", "agent-1", absl::Now()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Seal(event, "presence", "", absl::Now()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Seal(event, "presence", "agent-1", absl::InfiniteFuture()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(event.event_id().empty());
}

TEST(SealTest, TimesBefore1970KeepNanosPositive) {
  v1::Event event = StatusChanged("agent-1");
  ASSERT_TRUE(
      Seal(event, "presence", "agent-1", absl::FromUnixMillis(-1500)).ok());
  EXPECT_EQ(event.occurred_at().seconds(), -2);
  EXPECT_EQ(event.occurred_at().nanos(), 500'000'000);
}

TEST(SealTest, EachSealGetsANewId) {
  absl::flat_hash_set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    v1::Event event = StatusChanged("agent-1");
    ASSERT_TRUE(Seal(event, "presence", "agent-1", absl::Now()).ok());
    ids.insert(event.event_id());
  }
  EXPECT_EQ(ids.size(), 1000);
}

TEST(TopicForTest, BuildsVersionedTopicNames) {
  EXPECT_EQ(TopicFor("presence"), "switchboard.presence.v1");
  EXPECT_EQ(TopicFor("staging.switchboard.", "sessions"),
            "staging.switchboard.sessions.v1");
}

}  // namespace
}  // namespace switchboard::events
