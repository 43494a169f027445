#include "libs/events/kafka_topics.h"

#include <librdkafka/rdkafka.h>

#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace switchboard::events {
namespace {

template <typename T, void (*Destroy)(T*)>
struct Deleter {
  void operator()(T* p) const { Destroy(p); }
};
using Client = std::unique_ptr<rd_kafka_t, Deleter<rd_kafka_t, rd_kafka_destroy>>;
using Queue = std::unique_ptr<rd_kafka_queue_t, Deleter<rd_kafka_queue_t, rd_kafka_queue_destroy>>;
using Event = std::unique_ptr<rd_kafka_event_t, Deleter<rd_kafka_event_t, rd_kafka_event_destroy>>;
using Options = std::unique_ptr<rd_kafka_AdminOptions_t,
                                Deleter<rd_kafka_AdminOptions_t, rd_kafka_AdminOptions_destroy>>;

}  // namespace

absl::StatusOr<std::vector<TopicSpec>> ParseTopicSpecs(absl::string_view text) {
  std::vector<TopicSpec> specs;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = line.substr(0, line.find('#'));
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (fields.empty()) continue;
    const auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("topics file line ", line_number, ": ", what));
    };
    if (fields.size() < 3) return error("expected: name partitions replication [key=value ...]");
    TopicSpec spec;
    spec.name = std::string(fields[0]);
    if (!absl::SimpleAtoi(fields[1], &spec.partitions) || spec.partitions < 1) {
      return error("partitions must be a positive number");
    }
    if (!absl::SimpleAtoi(fields[2], &spec.replication_factor) || spec.replication_factor < 1) {
      return error("replication must be a positive number");
    }
    for (size_t i = 3; i < fields.size(); ++i) {
      const size_t eq = fields[i].find('=');
      if (eq == absl::string_view::npos || eq == 0) {
        return error(absl::StrCat("\"", fields[i], "\" is not key=value"));
      }
      spec.settings[std::string(fields[i].substr(0, eq))] = std::string(fields[i].substr(eq + 1));
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

void OverrideReplication(std::vector<TopicSpec>& specs, int replication_factor) {
  for (TopicSpec& spec : specs) {
    spec.replication_factor = replication_factor;
    auto it = spec.settings.find("min.insync.replicas");
    int min_insync = 0;
    if (it != spec.settings.end() && absl::SimpleAtoi(it->second, &min_insync) &&
        min_insync > replication_factor) {
      it->second = absl::StrCat(replication_factor);
    }
  }
}

absl::StatusOr<std::vector<std::string>> CreateTopics(
    const std::string& brokers, const std::map<std::string, std::string>& client_settings,
    const std::vector<TopicSpec>& specs, absl::Duration timeout) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::map<std::string, std::string> settings = client_settings;
  settings["bootstrap.servers"] = brokers;
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof(error)) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("kafka setting ", key, ": ", error));
    }
  }
  Client client(rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error)));
  if (client == nullptr) return absl::InvalidArgumentError(absl::StrCat("kafka: ", error));

  std::vector<rd_kafka_NewTopic_t*> topics;
  const auto free_topics = [&] {
    for (rd_kafka_NewTopic_t* topic : topics) rd_kafka_NewTopic_destroy(topic);
  };
  for (const TopicSpec& spec : specs) {
    rd_kafka_NewTopic_t* topic = rd_kafka_NewTopic_new(
        spec.name.c_str(), spec.partitions, spec.replication_factor, error, sizeof(error));
    if (topic == nullptr) {
      free_topics();
      return absl::InvalidArgumentError(absl::StrCat("topic ", spec.name, ": ", error));
    }
    topics.push_back(topic);
    for (const auto& [key, value] : spec.settings) {
      rd_kafka_NewTopic_set_config(topic, key.c_str(), value.c_str());
    }
  }
  Options options(rd_kafka_AdminOptions_new(client.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS));
  rd_kafka_AdminOptions_set_request_timeout(
      options.get(), static_cast<int>(absl::ToInt64Milliseconds(timeout)), error, sizeof(error));
  Queue queue(rd_kafka_queue_new(client.get()));
  rd_kafka_CreateTopics(client.get(), topics.data(), topics.size(), options.get(), queue.get());
  free_topics();

  Event event(rd_kafka_queue_poll(queue.get(),
                                  static_cast<int>(absl::ToInt64Milliseconds(timeout)) + 2000));
  if (event == nullptr) {
    return absl::UnavailableError(absl::StrCat("kafka: no answer from ", brokers));
  }
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(
        absl::StrCat("kafka: creating topics failed: ", rd_kafka_event_error_string(event.get())));
  }
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event.get());
  size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
  std::vector<std::string> lines;
  for (size_t i = 0; i < count; ++i) {
    const std::string name = rd_kafka_topic_result_name(results[i]);
    const rd_kafka_resp_err_t code = rd_kafka_topic_result_error(results[i]);
    if (code == RD_KAFKA_RESP_ERR_NO_ERROR) {
      lines.push_back(name + " created");
    } else if (code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      lines.push_back(name + " exists");
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "topic ", name, ": ", rd_kafka_topic_result_error_string(results[i])));
    }
  }
  return lines;
}

}  // namespace switchboard::events
