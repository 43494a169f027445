#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace switchboard::events {

// One topic as deploy/kafka/topics.conf describes it.
struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication_factor = 1;
  // Topic configs: min.insync.replicas, retention.ms, cleanup.policy, ...
  std::map<std::string, std::string> settings;
};

// Parses the topics file: one topic a line, "name partitions replication
// key=value ...", '#' comments and blank lines ignored. InvalidArgument
// naming the line number and what is wrong.
absl::StatusOr<std::vector<TopicSpec>> ParseTopicSpecs(absl::string_view text);

// For a cluster smaller than the file assumes: sets every replication factor
// to `replication_factor` and caps min.insync.replicas at it.
void OverrideReplication(std::vector<TopicSpec>& specs, int replication_factor);

// Creates the topics that do not exist yet (existing ones are left as they
// are) through the Kafka admin API, and returns one line per topic saying
// "created" or "exists". Errors: Unavailable when the brokers cannot be
// reached within `timeout`, InvalidArgument for a spec the broker refuses
// (named).
absl::StatusOr<std::vector<std::string>> CreateTopics(
    const std::string& brokers, const std::map<std::string, std::string>& client_settings,
    const std::vector<TopicSpec>& specs, absl::Duration timeout);

}  // namespace switchboard::events
