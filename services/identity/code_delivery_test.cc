#include "services/identity/code_delivery.h"

#include <fstream>
#include <sstream>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/events/outbox.h"
#include "libs/events/postgres_outbox.h"
#include "libs/events/relay.h"
#include "libs/protoutil/time.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/postgres.h"
#include "services/identity/postgres_store.h"
#include "services/identity/sqlite_store.h"

namespace switchboard::identity {
namespace {

constexpr char kTopic[] = "switchboard.identity.code-delivery.v1";

// Records what it is given; fails records whose key is in `failing`.
class FakeSink : public events::Sink {
 public:
  std::vector<absl::Status> Publish(const std::vector<events::OutboxRecord>& records) override {
    absl::MutexLock lock(&mu_);
    std::vector<absl::Status> out;
    for (const auto& r : records) {
      if (failing_ == r.key) {
        out.push_back(absl::UnavailableError("broker down"));
      } else {
        published_.push_back(r);
        out.push_back(absl::OkStatus());
      }
    }
    return out;
  }
  std::vector<events::OutboxRecord> published() {
    absl::MutexLock lock(&mu_);
    return published_;
  }
  void set_failing(std::string key) {
    absl::MutexLock lock(&mu_);
    failing_ = std::move(key);
  }

 private:
  absl::Mutex mu_;
  std::vector<events::OutboxRecord> published_;
  std::string failing_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

v1::CodeDeliveryRequest Request(const std::string& code, absl::Time expires_at) {
  v1::CodeDeliveryRequest request;
  request.set_delivery_id(RandomId("dlv_"));
  request.set_customer_id("cust-1");
  request.set_method(common::v1::VERIFICATION_METHOD_SMS_OTP);
  request.set_address("+8613800138000");
  request.set_code(code);
  request.set_language("en");
  protoutil::ToTimestamp(expires_at, request.mutable_expires_at());
  request.set_challenge_id("chl_1");
  return request;
}

TEST(CodeDeliveryTest, RequestsTravelSealedThroughTheOutboxToTheirOwnSink) {
  const std::string path = storage::MakeTempDir() + "/identity.db";
  auto db = *storage::Database::Open({path});
  ASSERT_TRUE(db->Migrate(IdentityMigrations()).ok());
  storage::GroupCommitter committer(db.get());
  SecretBox box(std::string(32, 'k'));
  FakeClock clock;
  OutboxCodeNotifier notifier(&committer, &box, kTopic, &clock, nullptr);
  const v1::CodeDeliveryRequest request = Request("428913", clock.Now() + absl::Minutes(5));
  ASSERT_TRUE(notifier.Deliver(request).ok());
  // An analytics event of the same customer, committed after it.
  events::v1::Event event;
  event.mutable_verification_started()->set_customer_id("cust-1");
  ASSERT_TRUE(events::Seal(event, "identity", "cust-1", clock.Now()).ok());
  ASSERT_TRUE(committer
                  .Commit([&](storage::Database& db) {
                    return events::AppendToOutbox(db, "switchboard.identity.v1", event);
                  })
                  .ok());

  // At rest, neither the code nor the address is readable.
  const std::string at_rest = ReadFile(path) + ReadFile(path + "-wal");
  ASSERT_FALSE(at_rest.empty());
  EXPECT_EQ(at_rest.find("428913"), std::string::npos);
  EXPECT_EQ(at_rest.find("+8613800138000"), std::string::npos);

  FakeSink events_sink, delivery_sink;
  prometheus::Registry registry;
  CodeDeliverySink sink(&events_sink, &delivery_sink, &box, kTopic, &clock, registry);
  {
    events::Relay relay(*storage::Database::Open({path}), &committer, &sink, registry,
                        events::Relay::Options());
    relay.Notify();
    relay.Stop(absl::Seconds(5));
  }
  committer.Stop();
  ASSERT_EQ(delivery_sink.published().size(), 1u);
  const events::OutboxRecord delivered = delivery_sink.published()[0];
  EXPECT_EQ(delivered.topic, kTopic);
  EXPECT_EQ(delivered.key, "cust-1");
  EXPECT_EQ(delivered.event_id, request.delivery_id());
  EXPECT_EQ(delivered.type, kCodeDeliveryType);
  v1::CodeDeliveryRequest received;
  ASSERT_TRUE(received.ParseFromString(delivered.value));
  EXPECT_EQ(received.code(), "428913");
  EXPECT_EQ(received.address(), "+8613800138000");
  // The event went to the event sink, and only it.
  ASSERT_EQ(events_sink.published().size(), 1u);
  EXPECT_EQ(events_sink.published()[0].topic, "switchboard.identity.v1");
}

TEST(CodeDeliveryTest, DropsExpiredAndUnreadableRequestsAndKeepsPerKeyOrder) {
  SecretBox box(std::string(32, 'k'));
  FakeClock clock;
  FakeSink events_sink, delivery_sink;
  prometheus::Registry registry;
  CodeDeliverySink sink(&events_sink, &delivery_sink, &box, kTopic, &clock, registry);

  auto sealed = [&](const v1::CodeDeliveryRequest& request, const std::string& key) {
    events::OutboxRecord record;
    record.topic = kTopic;
    record.key = key;
    record.event_id = request.delivery_id();
    record.type = kCodeDeliveryType;
    record.value = box.Seal(request.SerializeAsString(), request.delivery_id());
    return record;
  };
  events::OutboxRecord expired =
      sealed(Request("111111", clock.Now() - absl::Seconds(1)), "cust-1");
  events::OutboxRecord unreadable =
      sealed(Request("222222", clock.Now() + absl::Minutes(1)), "cust-1");
  unreadable.event_id = "dlv_other";  // wrong associated data
  events::OutboxRecord live = sealed(Request("333333", clock.Now() + absl::Minutes(1)), "cust-2");
  events::OutboxRecord later_event;
  later_event.topic = "switchboard.identity.v1";
  later_event.key = "cust-2";
  events::OutboxRecord other_event = later_event;
  other_event.key = "cust-3";

  delivery_sink.set_failing("cust-2");
  std::vector<absl::Status> statuses =
      sink.Publish({expired, unreadable, live, later_event, other_event});
  ASSERT_EQ(statuses.size(), 5u);
  EXPECT_TRUE(statuses[0].ok());  // dropped, confirmed
  EXPECT_TRUE(statuses[1].ok());  // dropped, confirmed
  EXPECT_FALSE(statuses[2].ok());
  EXPECT_FALSE(statuses[3].ok()) << "an event after a failed record of its key";
  EXPECT_TRUE(statuses[4].ok());
  EXPECT_TRUE(delivery_sink.published().empty());
}

TEST(CodeDeliveryTest, OnPostgresRequestsAreSealedIntoTheSharedOutbox) {
  testing::PostgresServer server;
  const std::string uri = server.CreateDatabase();
  ASSERT_TRUE(storage::PostgresConnection::OpenMigrated(uri, PostgresIdentityMigrations()).ok());
  storage::PostgresPool pool(uri);
  SecretBox box(std::string(32, 'k'));
  FakeClock clock;
  int notified = 0;
  OutboxCodeNotifier notifier(&pool, &box, kTopic, &clock, [&] { ++notified; });
  const v1::CodeDeliveryRequest request = Request("428913", clock.Now() + absl::Minutes(5));
  ASSERT_TRUE(notifier.Deliver(request).ok());
  EXPECT_EQ(notified, 1);

  events::PostgresOutboxStore outbox(*storage::PostgresConnection::Open(uri));
  auto claimed = outbox.Claim(10);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_EQ(claimed->size(), 1u);
  const events::OutboxRecord& row = (*claimed)[0];
  EXPECT_EQ(row.topic, kTopic);
  EXPECT_EQ(row.key, "cust-1");
  EXPECT_EQ(row.event_id, request.delivery_id());
  EXPECT_EQ(row.type, kCodeDeliveryType);
  // At rest, neither the code nor the address is readable; the box opens it.
  EXPECT_EQ(row.value.find("428913"), std::string::npos);
  EXPECT_EQ(row.value.find("+8613800138000"), std::string::npos);
  auto opened = box.Open(row.value, request.delivery_id());
  ASSERT_TRUE(opened.ok()) << opened.status();
  v1::CodeDeliveryRequest received;
  ASSERT_TRUE(received.ParseFromString(*opened));
  EXPECT_EQ(received.code(), "428913");
  ASSERT_TRUE(outbox.Finish({row.outbox_id}).ok());
}

}  // namespace
}  // namespace switchboard::identity
