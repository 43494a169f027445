#include "libs/events/kafka_sink.h"

#include <librdkafka/rdkafkacpp.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/testing/kafka_broker.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::events {
namespace {

struct Consumed {
  std::string key;
  std::map<std::string, std::string> headers;
  v1::Event event;
};

// Reads `topic` from the start until `count` records arrived and then none
// for `quiet` (or until 60 s pass).
std::vector<Consumed> Consume(const std::string& brokers, const std::string& topic,
                              size_t count, absl::Duration quiet = absl::ZeroDuration()) {
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", brokers, error);
  conf->set("group.id", absl::StrCat("test-", absl::ToUnixNanos(absl::Now())), error);
  conf->set("auto.offset.reset", "earliest", error);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), error));
  EXPECT_NE(consumer, nullptr) << error;
  consumer->subscribe({topic});
  std::vector<Consumed> out;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  absl::Time last = absl::Now();
  while ((out.size() < count || absl::Now() - last < quiet) && absl::Now() < give_up) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(200));
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    last = absl::Now();
    Consumed c;
    c.key = *message->key();
    for (const auto& header : message->headers()->get_all()) {
      c.headers[header.key()] = std::string(static_cast<const char*>(header.value()),
                                            header.value_size());
    }
    EXPECT_TRUE(c.event.ParseFromArray(message->payload(), message->len()));
    out.push_back(std::move(c));
  }
  consumer->close();
  return out;
}

OutboxRecord Record(int64_t id, const std::string& topic, const std::string& agent) {
  v1::Event event;
  event.mutable_agent_status_changed()->set_agent_id(agent);
  EXPECT_TRUE(Seal(event, "presence", agent, absl::Now()).ok());
  return OutboxRecord{id, topic, agent, event.event_id(), event.type(),
                      event.SerializeAsString()};
}

class KafkaSinkTest : public ::testing::Test {
 protected:
  std::unique_ptr<KafkaSink> MakeSink(absl::Duration delivery_timeout = absl::Seconds(30)) {
    KafkaSink::Options options;
    options.brokers = broker_.address();
    options.client_id = "kafka-sink-test";
    options.delivery_timeout = delivery_timeout;
    auto sink = KafkaSink::Create(options);
    EXPECT_TRUE(sink.ok()) << sink.status();
    return std::move(*sink);
  }

  testing::KafkaBroker broker_;
};

TEST_F(KafkaSinkTest, DeliversWithKeysHeadersAndPerKeyOrder) {
  auto sink = MakeSink();
  const std::string topic = "switchboard.presence.v1";
  std::vector<OutboxRecord> records;
  for (int i = 0; i < 6; ++i) records.push_back(Record(i + 1, topic, i % 2 ? "ana" : "bob"));
  for (const absl::Status& status : sink->Publish(records)) EXPECT_TRUE(status.ok()) << status;

  std::vector<Consumed> consumed = Consume(broker_.address(), topic, records.size());
  ASSERT_EQ(consumed.size(), records.size());
  std::map<std::string, std::vector<std::string>> ids_by_key;
  for (const Consumed& c : consumed) {
    EXPECT_EQ(c.key, c.event.entity_id());
    EXPECT_EQ(c.headers.at("event_id"), c.event.event_id());
    EXPECT_EQ(c.headers.at("event_type"), "presence.agent_status_changed");
    EXPECT_EQ(c.headers.at("schema"), "switchboard.events.v1.Event");
    EXPECT_EQ(c.headers.at("producer"), "presence");
    ids_by_key[c.key].push_back(c.event.event_id());
  }
  std::map<std::string, std::vector<std::string>> sent_by_key;
  for (const OutboxRecord& r : records) sent_by_key[r.key].push_back(r.event_id);
  EXPECT_EQ(ids_by_key, sent_by_key);
}

TEST_F(KafkaSinkTest, BrokerDownFailsRecordsWhichSucceedOnceItIsBack) {
  auto sink = MakeSink(absl::Seconds(3));
  const std::string topic = "switchboard.outage.v1";
  const OutboxRecord before = Record(1, topic, "a");
  ASSERT_TRUE(sink->Publish({before})[0].ok());
  broker_.Stop();
  // What the relay would hand over while the broker is down, and again (the
  // same rows) until they are confirmed.
  const std::vector<OutboxRecord> during = {Record(2, topic, "a"), Record(3, topic, "b")};
  std::vector<absl::Status> down = sink->Publish(during);
  for (const absl::Status& status : down) EXPECT_FALSE(status.ok());
  broker_.Start();
  std::vector<absl::Status> back;
  for (int attempt = 0; attempt < 10; ++attempt) {
    back = sink->Publish(during);
    if (back[0].ok() && back[1].ok()) break;
  }
  ASSERT_TRUE(back[0].ok()) << back[0];
  ASSERT_TRUE(back[1].ok()) << back[1];

  // Read back: every event at least once, and once per event id after
  // de-duplication, with key "a" still in order.
  std::vector<Consumed> consumed = Consume(broker_.address(), topic, 3, absl::Seconds(3));
  std::map<std::string, int> copies;
  std::vector<std::string> a_order;
  for (const Consumed& c : consumed) {
    if (++copies[c.event.event_id()] == 1 && c.key == "a") a_order.push_back(c.event.event_id());
  }
  std::printf("outage: %zu records for 3 events\n", consumed.size());
  EXPECT_EQ(copies.size(), 3u);
  for (const OutboxRecord* r : {&before, &during[0], &during[1]}) {
    EXPECT_GE(copies[r->event_id], 1) << r->outbox_id << " was lost";
  }
  EXPECT_EQ(a_order, (std::vector<std::string>{before.event_id, during[0].event_id}));
}

TEST(KafkaSinkOptionsTest, RefusesSettingsThatBreakIdempotence) {
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"enable.idempotence", "false"},
           {"acks", "1"},
           {"max.in.flight.requests.per.connection", "10"},
           {"no.such.setting", "x"}}) {
    KafkaSink::Options options;
    options.brokers = "127.0.0.1:1";
    options.settings[key] = value;
    absl::StatusOr<std::unique_ptr<KafkaSink>> sink = KafkaSink::Create(options);
    EXPECT_EQ(sink.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_NE(sink.status().message().find(key), std::string::npos);
  }
  EXPECT_EQ(KafkaSink::Create({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KafkaSinkOptionsTest, ParsesKeyValueLists) {
  auto settings = ParseKafkaSettings("security.protocol=SASL_SSL, sasl.mechanisms=PLAIN");
  ASSERT_TRUE(settings.ok());
  EXPECT_EQ(settings->at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(settings->at("sasl.mechanisms"), "PLAIN");
  EXPECT_FALSE(ParseKafkaSettings("novalue").ok());
  EXPECT_FALSE(ParseKafkaSettings("=x").ok());
}

}  // namespace
}  // namespace switchboard::events
