// Prints Switchboard's events from Kafka as JSON lines, one per event:
//   {"topic":"switchboard.sessions.v1","partition":0,"offset":12,"key":"s-1","event":{...}}
//
//   event_consumer --brokers=127.0.0.1:9092 [--topics=a,b] [--from_beginning]
//                  [--group=NAME] [--count=N] [--idle_exit=10s] [--kafka_settings=k=v,...]
//
// Without --group it reads as a throwaway consumer group (nothing committed).
// Stops after --count events, after --idle_exit without any, or on Ctrl-C.
// Exit 0, or 1 on a Kafka error, 2 on bad flags.
#include <google/protobuf/util/json_util.h>
#include <librdkafka/rdkafkacpp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/config/flags.h"
#include "libs/events/kafka_sink.h"
#include "libs/log/log.h"
#include "switchboard/events/v1/event.pb.h"

namespace {

std::atomic<bool> stop{false};

void OnSignal(int) { stop = true; }

}  // namespace

int main(int argc, char** argv) {
  std::string brokers;
  std::string topics =
      "switchboard.sessions.v1,switchboard.routing.v1,switchboard.bot.v1,"
      "switchboard.presence.v1,switchboard.identity.v1,switchboard.feedback.v1";
  std::string group;
  bool from_beginning = false;
  int64_t count = 0;
  absl::Duration idle_exit = absl::ZeroDuration();
  std::string kafka_settings;
  switchboard::config::FlagSet flags("event_consumer");
  flags.Add("brokers", &brokers, "Kafka bootstrap servers");
  flags.Add("topics", &topics, "comma-separated topics");
  flags.Add("group", &group, "consumer group (commits offsets); empty for a throwaway one");
  flags.Add("from_beginning", &from_beginning, "start at the oldest retained event");
  flags.Add("count", &count, "stop after this many events (0: no limit)");
  flags.Add("idle_exit", &idle_exit, "stop after this long without an event (0: never)");
  flags.Add("kafka_settings", &kafka_settings, "more librdkafka settings, key=value,...");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "event_consumer: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (brokers.empty()) {
    std::fprintf(stderr, "event_consumer: --brokers is required\n");
    return 2;
  }
  auto settings = switchboard::events::ParseKafkaSettings(kafka_settings);
  if (!settings.ok()) {
    std::fprintf(stderr, "event_consumer: %s\n", std::string(settings.status().message()).c_str());
    return 2;
  }
  const bool throwaway = group.empty();
  if (throwaway) group = absl::StrCat("switchboard-event-consumer-", getpid(), "-", absl::ToUnixNanos(absl::Now()));
  (*settings)["bootstrap.servers"] = brokers;
  (*settings)["group.id"] = group;
  (*settings)["auto.offset.reset"] = from_beginning ? "earliest" : "latest";
  (*settings)["enable.auto.commit"] = throwaway ? "false" : "true";
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  for (const auto& [key, value] : *settings) {
    if (conf->set(key, value, error) != RdKafka::Conf::CONF_OK) {
      std::fprintf(stderr, "event_consumer: kafka setting %s: %s\n", key.c_str(), error.c_str());
      return 2;
    }
  }
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), error));
  if (consumer == nullptr) {
    std::fprintf(stderr, "event_consumer: %s\n", error.c_str());
    return 1;
  }
  const std::vector<std::string> topic_list = absl::StrSplit(topics, ',', absl::SkipEmpty());
  if (RdKafka::ErrorCode code = consumer->subscribe(topic_list); code != RdKafka::ERR_NO_ERROR) {
    std::fprintf(stderr, "event_consumer: subscribe: %s\n", RdKafka::err2str(code).c_str());
    return 1;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);

  google::protobuf::util::JsonPrintOptions json;
  json.preserve_proto_field_names = true;
  int64_t printed = 0;
  absl::Time last_event = absl::Now();
  int status = 0;
  while (!stop && (count == 0 || printed < count)) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(200));
    if (message->err() == RdKafka::ERR__TIMED_OUT || message->err() == RdKafka::ERR__PARTITION_EOF) {
      if (idle_exit > absl::ZeroDuration() && absl::Now() - last_event > idle_exit) break;
      continue;
    }
    if (message->err() != RdKafka::ERR_NO_ERROR) {
      switchboard::log::Warning("kafka_consume_error", {{"error", message->errstr()}});
      if (message->err() == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART) continue;
      status = 1;
      break;
    }
    last_event = absl::Now();
    switchboard::events::v1::Event event;
    std::string body;
    if (event.ParseFromArray(message->payload(), message->len())) {
      if (!google::protobuf::util::MessageToJsonString(event, &body, json).ok()) body = "null";
    } else {
      body = "null";
    }
    const std::string key = message->key() ? *message->key() : "";
    std::printf("{\"topic\":\"%s\",\"partition\":%d,\"offset\":%lld,\"key\":\"%s\",\"event\":%s}\n",
                switchboard::log::JsonEscape(message->topic_name()).c_str(), message->partition(),
                static_cast<long long>(message->offset()),
                switchboard::log::JsonEscape(key).c_str(), body.c_str());
    std::fflush(stdout);
    ++printed;
  }
  consumer->close();
  return status;
}
