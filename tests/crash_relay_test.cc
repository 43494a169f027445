// The outbox relay killed mid-publish (kill -9 at libs/fault points), with a
// real Kafka broker and the identity server as a real process publishing
// VerificationStarted events through it.
//
// Customers start verifications one after another (each call's challenge id
// is the per-key witness of commit order), while identity is killed first
// right after a batch was handed to the Kafka producer (before its delivery
// reports), then right after the broker confirmed a batch (before its outbox
// rows are deleted). After each crash every customer retries its
// interrupted call with the same request id, so every committed challenge
// ends up acknowledged. Then the topic is read back: every acknowledged
// challenge arrives at least once, in order per customer, and de-duplicating
// by event id leaves exactly one event per challenge.
#include <grpcpp/grpcpp.h>
#include <librdkafka/rdkafkacpp.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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
#include "switchboard/identity/v1/identity_service.grpc.pb.h"

namespace switchboard {
namespace {

using identity::v1::IdentityService;

constexpr int kCustomers = 12;
constexpr char kTopic[] = "switchboard.identity.v1";

// One Kafka record of the topic, where it was read.
struct Record {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  events::v1::Event event;
};

// Reads the whole topic from the start until every challenge of `expected`
// was seen and then nothing new arrives for `quiet` (or 120 s pass).
std::vector<Record> ReadTopic(const std::string& brokers, std::set<std::string> expected,
                              absl::Duration quiet) {
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", brokers, error);
  conf->set("group.id", absl::StrCat("crash-relay-", absl::ToUnixNanos(absl::Now())), error);
  conf->set("auto.offset.reset", "earliest", error);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), error));
  EXPECT_NE(consumer, nullptr) << error;
  consumer->subscribe({kTopic});
  std::vector<Record> records;
  absl::Time last = absl::Now();
  const absl::Time give_up = absl::Now() + absl::Seconds(120);
  while ((!expected.empty() || absl::Now() - last < quiet) && absl::Now() < give_up) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(200));
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    Record record;
    record.partition = message->partition();
    record.offset = message->offset();
    record.key = message->key() != nullptr ? *message->key() : "";
    EXPECT_TRUE(record.event.ParseFromArray(message->payload(), message->len()));
    expected.erase(record.event.verification_started().challenge_id());
    records.push_back(std::move(record));
    last = absl::Now();
  }
  consumer->close();
  return records;
}

class CrashRelayTest : public ::testing::Test {
 protected:
  CrashRelayTest()
      : dir_(storage::MakeTempDir()),
        // The key folder identity finds in its data folder.
        tokens_(testing::TestTokens::InFolder(dir_ + "/keys", "identity")) {
    auto specs = events::ParseTopicSpecs(testing::ReadFile(
        std::string(std::getenv("TEST_SRCDIR")) + "/switchboard/deploy/kafka/topics.conf"));
    EXPECT_TRUE(specs.ok()) << specs.status();
    events::OverrideReplication(*specs, 1);
    auto created = events::CreateTopics(broker_.address(), {}, *specs, absl::Seconds(30));
    EXPECT_TRUE(created.ok()) << created.status();
  }

  // Starts identity publishing to the broker, killing itself at `fault`
  // ("" for none).
  void StartIdentity(const std::string& fault) {
    std::vector<std::string> flags = {
        "--data_dir=" + dir_,
        "--port=0",
        "--metrics_port=0",
        "--bind_address=127.0.0.1",
        "--kafka_brokers=" + broker_.address(),
        "--kafka_delivery_timeout=10s",
        "--resend_interval=0s",
        "--max_starts_per_hour=1000000",
        "--drain_deadline=3s"};
    if (!fault.empty()) flags.push_back("--fault_point=" + fault);
    identity_ = std::make_unique<testing::ServerProcess>("services/identity/identity_server",
                                                         flags, dir_ + "/identity.log");
    ASSERT_GT(identity_->grpc_port(), 0) << identity_->log();
    stub_ = IdentityService::NewStub(grpc::CreateChannel(identity_->address(),
                                                         grpc::InsecureChannelCredentials()));
  }

  // StartVerification for `customer` with `request_id`: the challenge id,
  // or "" if the call failed.
  std::string Start(const std::string& customer, const std::string& request_id) {
    identity::v1::StartVerificationRequest request;
    request.set_customer_id(customer);
    request.set_method(common::v1::VERIFICATION_METHOD_TOTP);
    request.set_request_id(request_id);
    identity::v1::StartVerificationResponse response;
    grpc::ClientContext context;
    auth::AttachToken(context, tokens_.For(auth::Role::kCustomer, customer));
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!stub_->StartVerification(&context, request, &response).ok()) return "";
    return response.challenge_id();
  }

  // Each customer first retries its interrupted call, if any, then makes
  // calls one after another until `calls` of its own succeeded or a call
  // fails (the server died).
  void Generate(int calls) {
    std::vector<std::thread> threads;
    for (int c = 0; c < kCustomers; ++c) {
      threads.emplace_back([this, c, calls] {
        const std::string customer = absl::StrCat("cust-", c);
        for (int made = 0; made < calls;) {
          int& next = next_call_[c];
          const std::string challenge = Start(customer, absl::StrCat(customer, "-", next));
          if (challenge.empty()) return;  // Retried with the same id next time.
          // A retry of an interrupted call whose first attempt was committed
          // returns that challenge: acknowledged now, in its place.
          absl::MutexLock lock(&mu_);
          acked_[customer].push_back(challenge);
          ++next;
          ++made;
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }

  // Generates until identity dies at its fault point.
  void GenerateUntilTheCrash(const std::string& point) {
    bool crashed = false;
    const absl::Time limit = absl::Now() + absl::Seconds(120);
    while (!crashed && absl::Now() < limit) {
      Generate(5);
      crashed = identity_->WaitForExit(absl::Milliseconds(100));
    }
    ASSERT_TRUE(crashed) << "identity never reached " << point;
    EXPECT_TRUE(absl::StrContains(identity_->log(),
                                  absl::StrCat("\"event\":\"fault_point_hit\",\"point\":\"",
                                               point, "\"")))
        << identity_->log();
  }

  bool OutboxDrained() {
    return metrics::ScrapeMetrics("127.0.0.1", identity_->metrics_port())
               .value_or("")
               .find("switchboard_outbox_depth 0\n") != std::string::npos;
  }

  testing::KafkaBroker broker_;
  const std::string dir_;
  testing::TestTokens tokens_;
  std::unique_ptr<testing::ServerProcess> identity_;
  std::unique_ptr<IdentityService::Stub> stub_;
  int next_call_[kCustomers] = {};
  absl::Mutex mu_;
  std::map<std::string, std::vector<std::string>> acked_ ABSL_GUARDED_BY(mu_);
};

TEST_F(CrashRelayTest, KilledMidPublishEveryEventArrivesInOrderAndDeduplicatesToOnce) {
  // Killed with a batch handed to the producer, before its delivery reports.
  ASSERT_NO_FATAL_FAILURE(StartIdentity("relay.after_produce:4"));
  ASSERT_NO_FATAL_FAILURE(GenerateUntilTheCrash("relay.after_produce"));
  // Killed with a batch confirmed by the broker, before its rows are deleted.
  ASSERT_NO_FATAL_FAILURE(StartIdentity("relay.before_delete:3"));
  ASSERT_NO_FATAL_FAILURE(GenerateUntilTheCrash("relay.before_delete"));
  // Back for good: the interrupted calls are retried, a few more made.
  ASSERT_NO_FATAL_FAILURE(StartIdentity(""));
  Generate(3);
  bool drained = false;
  const absl::Time drain_limit = absl::Now() + absl::Seconds(120);
  while (!(drained = OutboxDrained()) && absl::Now() < drain_limit) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(drained) << identity_->log();

  std::map<std::string, std::vector<std::string>> acked;
  size_t acknowledged = 0;
  {
    absl::MutexLock lock(&mu_);
    acked = acked_;
  }
  std::set<std::string> all;
  for (const auto& [customer, challenges] : acked) {
    acknowledged += challenges.size();
    all.insert(challenges.begin(), challenges.end());
  }
  const std::vector<Record> records = ReadTopic(broker_.address(), all, absl::Seconds(5));

  // De-duplicate by event id, as a consumer does; keep each event's first
  // arrival, per key in partition order.
  std::set<std::string> seen;
  int duplicates = 0;
  std::map<std::string, std::vector<const Record*>> by_key;
  std::map<std::string, std::set<std::string>> events_of_challenge;
  for (const Record& record : records) {
    ASSERT_TRUE(record.event.has_verification_started()) << record.event.type();
    EXPECT_EQ(record.key, record.event.entity_id());
    const std::string& challenge = record.event.verification_started().challenge_id();
    events_of_challenge[challenge].insert(record.event.event_id());
    if (!seen.insert(record.event.event_id()).second) {
      ++duplicates;
      continue;
    }
    by_key[record.key].push_back(&record);
  }
  std::printf("crash relay: %zu acknowledged challenges, %zu records, %d duplicates\n",
              acknowledged, records.size(), duplicates);
  EXPECT_GT(acknowledged, static_cast<size_t>(kCustomers * 3));
  // The crash after the broker's confirmation publishes that batch again.
  EXPECT_GT(duplicates, 0) << "the relay was not killed mid-publish";

  for (const auto& [customer, challenges] : acked) {
    const std::vector<const Record*>& arrived = by_key[customer];
    std::vector<std::string> order;
    for (size_t i = 0; i < arrived.size(); ++i) {
      order.push_back(arrived[i]->event.verification_started().challenge_id());
      if (i > 0) {
        // One key, one partition, read in offset order.
        EXPECT_EQ(arrived[i]->partition, arrived[0]->partition) << customer;
        EXPECT_GT(arrived[i]->offset, arrived[i - 1]->offset) << customer;
      }
    }
    // Every acknowledged challenge, in the order its calls were answered,
    // and nothing else: each committed challenge was acknowledged.
    EXPECT_EQ(order, challenges) << customer;
    for (const std::string& challenge : challenges) {
      EXPECT_EQ(events_of_challenge[challenge].size(), 1u)
          << challenge << " has several events: not exactly once";
    }
  }
  EXPECT_EQ(by_key.size(), acked.size()) << "events of customers nobody called";
  EXPECT_EQ(identity_->Terminate(absl::Seconds(10)), 0) << identity_->log();
}

}  // namespace
}  // namespace switchboard
