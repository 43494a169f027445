// Presence publishing to a real Kafka broker: events arrive once per event
// id in per-agent order; a broker outage never fails an RPC and the outbox
// drains when the broker returns; a crash between commit and delivery loses
// nothing (duplicates, if any, carry the same event id and are counted).
#include <grpcpp/grpcpp.h>
#include <librdkafka/rdkafkacpp.h>
#include <unistd.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/events/kafka_topics.h"
#include "libs/metrics/scrape.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/kafka_broker.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/events/v1/event.pb.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"

namespace switchboard {
namespace {

using presence::v1::AgentStatus;

constexpr char kBinary[] = "services/presence/presence_server";
constexpr char kTopic[] = "switchboard.presence.v1";

// Reads the whole topic from the start until `count` records came or 30 s
// passed; returns the events in the order of each partition.
std::vector<events::v1::Event> ReadTopic(const std::string& brokers, size_t count) {
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", brokers, error);
  conf->set("group.id", absl::StrCat("reader-", absl::ToUnixNanos(absl::Now())), error);
  conf->set("auto.offset.reset", "earliest", error);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), error));
  consumer->subscribe({kTopic});
  std::vector<events::v1::Event> out;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (out.size() < count && absl::Now() < give_up) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(200));
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    events::v1::Event event;
    EXPECT_TRUE(event.ParseFromArray(message->payload(), message->len()));
    EXPECT_EQ(*message->key(), event.entity_id());
    out.push_back(std::move(event));
  }
  consumer->close();
  return out;
}

class KafkaPresenceTest : public ::testing::Test {
 protected:
  KafkaPresenceTest() : data_dir_(storage::MakeTempDir()) {
    // Topics are created up front, as in production (deploy/kafka).
    auto created = events::CreateTopics(broker_.address(), {},
                                        {{kTopic, 3, 1, {{"min.insync.replicas", "1"}}}},
                                        absl::Seconds(20));
    EXPECT_TRUE(created.ok()) << created.status();
  }

  std::vector<std::string> Flags() const {
    return {"--data_dir=" + data_dir_, "--port=0", "--metrics_port=0",
            "--bind_address=127.0.0.1", "--kafka_brokers=" + broker_.address(),
            "--kafka_delivery_timeout=5s", "--lease=1h", "--drain_deadline=3s"};
  }

  grpc::Status SetStatus(const testing::ServerProcess& server, const std::string& agent,
                         AgentStatus status) {
    const std::string token = testing::TestTokens::FromFolder(data_dir_ + "/keys", "presence")
                                  .For(auth::Role::kAgent, agent);
    auto stub = presence::v1::PresenceService::NewStub(
        grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    auth::AttachToken(context, token);
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    presence::v1::SetStatusRequest request;
    request.set_status(status);
    presence::v1::SetStatusResponse response;
    return stub->SetStatus(&context, request, &response);
  }

  // Polls /metrics until `line` shows, for up to `limit`.
  static bool MetricReaches(const testing::ServerProcess& server, const std::string& line,
                            absl::Duration limit) {
    const absl::Time give_up = absl::Now() + limit;
    while (absl::Now() < give_up) {
      if (metrics::ScrapeMetrics("127.0.0.1", server.metrics_port()).value_or("").find(line) !=
          std::string::npos) {
        return true;
      }
      usleep(100'000);
    }
    return false;
  }

  testing::KafkaBroker broker_;
  std::string data_dir_;
};

TEST_F(KafkaPresenceTest, EveryChangeArrivesOnceInOrderAcrossOutageAndCrash) {
  const std::vector<AgentStatus> cycle = {
      presence::v1::AGENT_STATUS_ONLINE, presence::v1::AGENT_STATUS_BUSY,
      presence::v1::AGENT_STATUS_AWAY, presence::v1::AGENT_STATUS_ONLINE};
  // The statuses each agent went through, in order: what the topic must show.
  std::map<std::string, std::vector<int>> expected;
  auto change = [&](const testing::ServerProcess& server, const std::string& agent,
                    AgentStatus status) {
    ASSERT_TRUE(SetStatus(server, agent, status).ok());
    expected[agent].push_back(status);
  };

  auto server = std::make_unique<testing::ServerProcess>(kBinary, Flags(),
                                                         data_dir_ + "/presence.log");
  ASSERT_GT(server->grpc_port(), 0) << server->log();
  for (const std::string agent : {"a1", "a2", "a3"}) {
    for (AgentStatus status : cycle) change(*server, agent, status);
  }

  EXPECT_TRUE(MetricReaches(*server, "switchboard_outbox_published_total 12", absl::Seconds(30)))
      << server->log();

  // Outage: RPCs keep succeeding; events wait in the outbox.
  broker_.Stop();
  for (const std::string agent : {"a1", "a2"}) change(*server, agent, presence::v1::AGENT_STATUS_BUSY);
  EXPECT_TRUE(MetricReaches(*server, "switchboard_outbox_depth 2", absl::Seconds(20)))
      << server->log();
  broker_.Start();
  EXPECT_TRUE(MetricReaches(*server, "switchboard_outbox_depth 0", absl::Seconds(60)))
      << server->log();

  // Crash between commit and delivery: the broker is down, so the change is
  // committed to the outbox but cannot be delivered when the process dies.
  broker_.Stop();
  change(*server, "a3", presence::v1::AGENT_STATUS_OFFLINE);
  server->Kill();
  broker_.Start();
  server = std::make_unique<testing::ServerProcess>(kBinary, Flags(),
                                                    data_dir_ + "/presence.log");
  ASSERT_GT(server->grpc_port(), 0) << server->log();
  EXPECT_TRUE(MetricReaches(*server, "switchboard_outbox_depth 0", absl::Seconds(60)))
      << server->log()
      << metrics::ScrapeMetrics("127.0.0.1", server->metrics_port()).value_or("no metrics");
  EXPECT_EQ(server->Terminate(absl::Seconds(10)), 0);

  size_t total = 0;
  for (const auto& [agent, statuses] : expected) total += statuses.size();
  std::vector<events::v1::Event> events = ReadTopic(broker_.address(), total);

  std::set<std::string> seen;
  int duplicates = 0;
  std::map<std::string, std::vector<int>> received;
  for (const events::v1::Event& event : events) {
    if (!seen.insert(event.event_id()).second) {
      ++duplicates;  // At-least-once: consumers de-duplicate on event_id.
      continue;
    }
    ASSERT_TRUE(event.has_agent_status_changed()) << event.type();
    received[event.entity_id()].push_back(event.agent_status_changed().status());
  }
  std::printf("events: %zu received, %d duplicates\n", events.size(), duplicates);
  EXPECT_EQ(received, expected);
}

}  // namespace
}  // namespace switchboard
