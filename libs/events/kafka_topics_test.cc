#include "libs/events/kafka_topics.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/testing/kafka_broker.h"
#include "libs/testing/process.h"

namespace switchboard::events {
namespace {

TEST(TopicSpecsTest, TheDeployFileParsesWithOneTopicPerService) {
  const std::string text = testing::ReadFile(
      absl::StrCat(std::getenv("TEST_SRCDIR"), "/switchboard/deploy/kafka/topics.conf"));
  absl::StatusOr<std::vector<TopicSpec>> specs = ParseTopicSpecs(text);
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 6u);
  for (const TopicSpec& spec : *specs) {
    EXPECT_EQ(spec.replication_factor, 3) << spec.name;
    EXPECT_EQ(spec.settings.at("min.insync.replicas"), "2") << spec.name;
  }
}

TEST(TopicSpecsTest, ErrorsNameTheLine) {
  absl::StatusOr<std::vector<TopicSpec>> specs =
      ParseTopicSpecs("# comment\nok.topic 1 1\nbad.topic x 1\n");
  EXPECT_EQ(specs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(specs.status().message().find("line 3"), std::string::npos);
  EXPECT_FALSE(ParseTopicSpecs("t 1 1 nokeyvalue").ok());
  EXPECT_FALSE(ParseTopicSpecs("t 1").ok());
}

TEST(CreateTopicsTest, CreatesMissingTopicsAndLeavesExistingOnes) {
  testing::KafkaBroker broker;
  std::vector<TopicSpec> specs = *ParseTopicSpecs(
      "switchboard.a.v1 3 3 min.insync.replicas=2 retention.ms=3600000\n"
      "switchboard.b.v1 1 3 cleanup.policy=delete\n");
  OverrideReplication(specs, 1);
  EXPECT_EQ(specs[0].settings.at("min.insync.replicas"), "1");
  auto first = CreateTopics(broker.address(), {}, specs, absl::Seconds(20));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, (std::vector<std::string>{"switchboard.a.v1 created",
                                              "switchboard.b.v1 created"}));
  auto second = CreateTopics(broker.address(), {}, specs, absl::Seconds(20));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, (std::vector<std::string>{"switchboard.a.v1 exists",
                                               "switchboard.b.v1 exists"}));
  // Three replicas cannot be placed on one broker: refused, with the name.
  std::vector<TopicSpec> too_many = *ParseTopicSpecs("switchboard.c.v1 1 3\n");
  auto refused = CreateTopics(broker.address(), {}, too_many, absl::Seconds(20));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("switchboard.c.v1"), std::string::npos);
}

}  // namespace
}  // namespace switchboard::events
