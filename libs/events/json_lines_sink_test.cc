#include "libs/events/json_lines_sink.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/events/read_json_lines.h"
#include "libs/storage/test_dir.h"

namespace switchboard::events {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

OutboxRecord Record(int64_t id, const v1::Event& event) {
  OutboxRecord record;
  record.outbox_id = id;
  record.topic = TopicFor(event.producer());
  record.key = event.entity_id();
  record.event_id = event.event_id();
  record.type = event.type();
  record.value = event.SerializeAsString();
  return record;
}

v1::Event StatusChanged(const std::string& agent_id) {
  v1::Event event;
  auto* change = event.mutable_agent_status_changed();
  change->set_agent_id(agent_id);
  change->set_status(presence::v1::AGENT_STATUS_ONLINE);
  change->mutable_skills()->add_languages("zh-CN");
  change->add_capacities()->set_capacity(3);
  EXPECT_TRUE(Seal(event, "presence", agent_id, absl::Now()).ok());
  return event;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(JsonLinesSinkTest, LinesParseBackToTheSameEvents) {
  const std::string path = storage::MakeTempDir() + "/events.jsonl";
  absl::StatusOr<std::unique_ptr<JsonLinesSink>> sink =
      JsonLinesSink::Open(path);
  ASSERT_TRUE(sink.ok()) << sink.status();
  v1::Event load;
  load.mutable_agent_load_changed()->set_session_id("会话-7");
  load.mutable_agent_load_changed()->set_change(
      v1::AgentLoadChanged::CHANGE_RESERVED);
  ASSERT_TRUE(Seal(load, "presence", "agent-\"2\"", absl::Now()).ok());
  const std::vector<v1::Event> events = {StatusChanged("agent-1"), load};

  std::vector<absl::Status> results =
      (*sink)->Publish({Record(1, events[0]), Record(2, events[1])});
  ASSERT_EQ(results.size(), 2);
  EXPECT_TRUE(results[0].ok() && results[1].ok());

  absl::StatusOr<std::vector<JsonLine>> lines = ReadJsonLines(path);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_EQ(lines->size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ((*lines)[i].topic, "switchboard.presence.v1");
    EXPECT_EQ((*lines)[i].key, events[i].entity_id());
    EXPECT_TRUE(MessageDifferencer::Equals((*lines)[i].event, events[i]))
        << (*lines)[i].event.DebugString();
  }
  EXPECT_THAT(ReadFile(path),
              HasSubstr("{\"topic\":\"switchboard.presence.v1\","
                        "\"key\":\"agent-1\",\"event\":{"));
}

TEST(JsonLinesSinkTest, AppendsAcrossReopening) {
  const std::string path = storage::MakeTempDir() + "/events.jsonl";
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::unique_ptr<JsonLinesSink>> sink =
        JsonLinesSink::Open(path);
    ASSERT_TRUE(sink.ok());
    ASSERT_TRUE((*sink)->Publish({Record(i, StatusChanged("a"))})[0].ok());
  }
  absl::StatusOr<std::vector<JsonLine>> lines = ReadJsonLines(path);
  ASSERT_TRUE(lines.ok());
  EXPECT_EQ(lines->size(), 2);
}

TEST(JsonLinesSinkTest, OpenErrorsNameThePath) {
  const std::string missing = storage::MakeTempDir() + "/no/events.jsonl";
  absl::StatusOr<std::unique_ptr<JsonLinesSink>> sink =
      JsonLinesSink::Open(missing);
  EXPECT_EQ(sink.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sink.status().message(), HasSubstr(missing));
  EXPECT_THAT(sink.status().message(), HasSubstr("No such file"));

  const std::string folder = storage::MakeTempDir();
  sink = JsonLinesSink::Open(folder);
  EXPECT_FALSE(sink.ok());
  EXPECT_THAT(sink.status().message(), HasSubstr(folder));
}

TEST(JsonLinesSinkTest, WriteFailureFailsEveryRecord) {
  // /dev/full refuses every write with ENOSPC.
  absl::StatusOr<std::unique_ptr<JsonLinesSink>> sink =
      JsonLinesSink::Open("/dev/full");
  ASSERT_TRUE(sink.ok()) << sink.status();
  std::vector<absl::Status> results = (*sink)->Publish(
      {Record(1, StatusChanged("a")), Record(2, StatusChanged("b"))});
  ASSERT_EQ(results.size(), 2);
  for (const absl::Status& s : results) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(s.message(), HasSubstr("/dev/full"));
  }
}

TEST(JsonLinesSinkTest, KeepsAValueThatIsNotAnEvent) {
  const std::string path = storage::MakeTempDir() + "/events.jsonl";
  absl::StatusOr<std::unique_ptr<JsonLinesSink>> sink =
      JsonLinesSink::Open(path);
  ASSERT_TRUE(sink.ok());
  OutboxRecord record = Record(1, StatusChanged("a"));
  record.value = "\xff\xff not protobuf";
  ASSERT_TRUE((*sink)->Publish({record})[0].ok());
  EXPECT_THAT(ReadFile(path), HasSubstr("\"value_base64\":\"//8gbm90IHByb3RvYnVm\""));
}

}  // namespace
}  // namespace switchboard::events
