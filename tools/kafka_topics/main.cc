// Creates Switchboard's Kafka topics from deploy/kafka/topics.conf (only the
// missing ones; existing topics are left as they are).
//
//   kafka_topics --brokers=127.0.0.1:9092 [--file=deploy/kafka/topics.conf]
//                [--replication_factor=1] [--kafka_settings=k=v,...]
//
// Exit 0 when every topic exists afterwards, 1 on a Kafka error, 2 on bad
// flags or a malformed file.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "libs/config/flags.h"
#include "libs/events/kafka_sink.h"
#include "libs/events/kafka_topics.h"

int main(int argc, char** argv) {
  std::string brokers;
  std::string file = "deploy/kafka/topics.conf";
  int replication_factor = 0;
  std::string kafka_settings;
  absl::Duration timeout = absl::Seconds(30);
  switchboard::config::FlagSet flags("kafka_topics");
  flags.Add("brokers", &brokers, "Kafka bootstrap servers");
  flags.Add("file", &file, "the topics file");
  flags.Add("replication_factor", &replication_factor,
            "override every topic's replication factor (1 for a single local broker)");
  flags.Add("kafka_settings", &kafka_settings,
            "client settings, key=value,key=value (security, SASL, TLS)");
  flags.Add("timeout", &timeout, "how long to wait for the brokers");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "kafka_topics: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (brokers.empty()) {
    std::fprintf(stderr, "kafka_topics: --brokers is required\n");
    return 2;
  }
  std::ifstream in(file);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  if (!in || text.empty()) {
    std::fprintf(stderr, "kafka_topics: cannot read %s\n", file.c_str());
    return 2;
  }
  auto specs = switchboard::events::ParseTopicSpecs(text);
  auto settings = switchboard::events::ParseKafkaSettings(kafka_settings);
  if (!specs.ok() || !settings.ok()) {
    std::fprintf(stderr, "kafka_topics: %s\n",
                 std::string((specs.ok() ? settings.status() : specs.status()).message()).c_str());
    return 2;
  }
  if (replication_factor > 0) switchboard::events::OverrideReplication(*specs, replication_factor);
  auto lines = switchboard::events::CreateTopics(brokers, *settings, *specs, timeout);
  if (!lines.ok()) {
    std::fprintf(stderr, "kafka_topics: %s\n", std::string(lines.status().message()).c_str());
    return 1;
  }
  for (const std::string& line : *lines) std::printf("%s\n", line.c_str());
  return 0;
}
