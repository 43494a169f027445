#include "libs/events/postgres_outbox.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/events/relay.h"
#include "libs/storage/postgres.h"
#include "libs/testing/postgres.h"
#include "prometheus/registry.h"

// What only PostgreSQL's outbox has to guarantee: appends from several
// connections, and several relays at once. The cases both backends share are
// in outbox_test and relay_test.
namespace switchboard::events {
namespace {

class PostgresOutboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new testing::PostgresServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    uri_ = server_->CreateDatabase();
    db_ = Connect();
    ASSERT_TRUE(db_->Migrate({kPostgresOutboxMigration}).ok());
  }

  std::unique_ptr<storage::PostgresConnection> Connect() {
    absl::StatusOr<std::unique_ptr<storage::PostgresConnection>> db =
        storage::PostgresConnection::Open(uri_);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? *std::move(db) : nullptr;
  }

  static v1::Event Sealed(const std::string& key, int sequence) {
    v1::Event event;
    event.mutable_agent_load_changed()->set_agent_id(key);
    event.mutable_agent_load_changed()->set_load(sequence);
    EXPECT_TRUE(Seal(event, "presence", key, absl::Now()).ok());
    return event;
  }

  // The id of `event_id`'s row, or -1.
  int64_t IdOf(const std::string& event_id) {
    absl::StatusOr<storage::PostgresRows> rows =
        db_->Query("SELECT id FROM outbox WHERE event_id = $1", {event_id});
    return rows.ok() && rows->size() == 1 ? rows->Int(0, 0) : -1;
  }

  static std::vector<std::string> Keys(const std::vector<OutboxRecord>& records) {
    std::vector<std::string> keys;
    for (const OutboxRecord& record : records) keys.push_back(record.key);
    return keys;
  }

  static testing::PostgresServer* server_;
  std::string uri_;
  std::unique_ptr<storage::PostgresConnection> db_;
};

testing::PostgresServer* PostgresOutboxTest::server_ = nullptr;

TEST_F(PostgresOutboxTest, AppendsForOneKeyCommitInIdOrderAcrossConnections) {
  std::unique_ptr<storage::PostgresConnection> first = Connect();
  std::unique_ptr<storage::PostgresConnection> second = Connect();
  std::unique_ptr<storage::PostgresConnection> other_key = Connect();
  const v1::Event early = Sealed("agent-1", 1);
  const v1::Event late = Sealed("agent-1", 2);

  // The first transaction appends and stays open.
  ASSERT_TRUE(first->Begin().ok());
  ASSERT_TRUE(AppendToOutbox(*first, "t", early).ok());

  // Another connection's append for the same key waits for it...
  absl::Notification second_done;
  absl::Status second_status;
  std::thread second_writer([&] {
    second_status = AppendToOutbox(*second, "t", late);
    second_done.Notify();
  });
  // ...while a different key does not.
  EXPECT_TRUE(AppendToOutbox(*other_key, "t", Sealed("agent-2", 1)).ok());
  EXPECT_FALSE(second_done.WaitForNotificationWithTimeout(absl::Milliseconds(300)));

  ASSERT_TRUE(first->Commit().ok());
  ASSERT_TRUE(second_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  second_writer.join();
  ASSERT_TRUE(second_status.ok()) << second_status;
  // Without the wait, `late` could have taken its id before `early` and
  // committed first.
  EXPECT_LT(IdOf(early.event_id()), IdOf(late.event_id()));
}

// Services sharing a database each have an outbox in their own schema and
// key events by the same ids (session ids): their appends must not wait on
// each other, or two commits appending the same keys in opposite orders
// deadlock across services.
TEST_F(PostgresOutboxTest, OutboxesInTwoSchemasOfOneDatabaseDoNotWaitOnEachOther) {
  std::unique_ptr<storage::PostgresConnection> in_sessions;
  std::unique_ptr<storage::PostgresConnection> in_routing;
  for (auto [schema, db] : {std::pair{"sessions", &in_sessions}, {"routing", &in_routing}}) {
    ASSERT_TRUE(storage::CreateSchema(*db_, schema).ok());
    absl::StatusOr<std::string> uri = storage::WithSchema(uri_, schema);
    ASSERT_TRUE(uri.ok()) << uri.status();
    absl::StatusOr<std::unique_ptr<storage::PostgresConnection>> opened =
        storage::PostgresConnection::OpenMigrated(*uri, {kPostgresOutboxMigration});
    ASSERT_TRUE(opened.ok()) << opened.status();
    *db = *std::move(opened);
  }
  ASSERT_TRUE(in_sessions->Begin().ok());
  ASSERT_TRUE(AppendToOutbox(*in_sessions, "t", Sealed("s-1", 1)).ok());
  absl::Notification appended;
  std::thread routing_writer([&] {
    EXPECT_TRUE(AppendToOutbox(*in_routing, "t", Sealed("s-1", 2)).ok());
    appended.Notify();
  });
  EXPECT_TRUE(appended.WaitForNotificationWithTimeout(absl::Seconds(10)))
      << "an append in another schema waited for this one's key";
  ASSERT_TRUE(in_sessions->Commit().ok());
  routing_writer.join();
}

TEST_F(PostgresOutboxTest, AClaimSkipsRowsAnotherRelayHoldsAndTheirKeysLaterRows) {
  for (const char* key : {"a", "b", "a", "b", "c"}) {
    ASSERT_TRUE(AppendToOutbox(*db_, "t", Sealed(key, 0)).ok());
  }
  PostgresOutboxStore one(Connect());
  PostgresOutboxStore two(Connect());

  absl::StatusOr<std::vector<OutboxRecord>> first = one.Claim(1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(Keys(*first), std::vector<std::string>({"a"}));

  // Row 3 ("a") must wait for row 1, which the first relay holds.
  absl::StatusOr<std::vector<OutboxRecord>> second = two.Claim(10);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(Keys(*second), std::vector<std::string>({"b", "b", "c"}));

  ASSERT_TRUE(one.Finish({(*first)[0].outbox_id}).ok());
  std::vector<int64_t> published;
  for (const OutboxRecord& record : *second) published.push_back(record.outbox_id);
  ASSERT_TRUE(two.Finish(published).ok());

  absl::StatusOr<std::vector<OutboxRecord>> rest = two.Claim(10);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(Keys(*rest), std::vector<std::string>({"a"}));
  EXPECT_EQ((*rest)[0].outbox_id, 3);
  ASSERT_TRUE(two.Finish({}).ok());  // Not confirmed: the row stays.
  absl::StatusOr<OutboxStore::Stats> stats = one.ReadStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->depth, 1);
}

TEST_F(PostgresOutboxTest, ALostClaimDeletesNothing) {
  ASSERT_TRUE(AppendToOutbox(*db_, "t", Sealed("a", 0)).ok());
  std::unique_ptr<storage::PostgresConnection> connection = Connect();
  absl::StatusOr<storage::PostgresRows> pid = connection->Query("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid.ok());
  PostgresOutboxStore store(std::move(connection));
  absl::StatusOr<std::vector<OutboxRecord>> claimed = store.Claim(10);
  ASSERT_TRUE(claimed.ok());
  ASSERT_EQ(claimed->size(), 1);

  ASSERT_TRUE(db_->Query("SELECT pg_terminate_backend($1)", {pid->Int(0, 0)}).ok());
  EXPECT_EQ(store.Finish({(*claimed)[0].outbox_id}).code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<OutboxStore::Stats> stats = store.ReadStats();  // Reconnected.
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->depth, 1);  // Published again by the next claim.
}

// Every record any relay's sink confirmed, in confirmation order. Slow
// enough that two relays' passes overlap.
class SharedLog {
 public:
  struct Entry {
    int relay;
    OutboxRecord record;
  };
  void Add(int relay, const OutboxRecord& record) {
    absl::MutexLock lock(&mu_);
    entries_.push_back({relay, record});
  }
  std::vector<Entry> entries() {
    absl::MutexLock lock(&mu_);
    return entries_;
  }
  bool AwaitAtLeast(size_t n, absl::Duration limit) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return entries_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), limit);
  }

 private:
  absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

class LoggingSink : public Sink {
 public:
  LoggingSink(int relay, SharedLog* log) : relay_(relay), log_(log) {}
  std::vector<absl::Status> Publish(const std::vector<OutboxRecord>& records) override {
    std::vector<absl::Status> results;
    for (const OutboxRecord& record : records) {
      absl::SleepFor(absl::Microseconds(300));
      log_->Add(relay_, record);
      results.push_back(absl::OkStatus());
    }
    return results;
  }

 private:
  const int relay_;
  SharedLog* const log_;
};

TEST_F(PostgresOutboxTest, TwoRelaysDeliverEveryEventOnceInOrderPerKey) {
  constexpr int kKeys = 6;
  constexpr int kWriters = 4;
  constexpr int kEventsPerWriter = 90;
  constexpr int kEvents = kWriters * kEventsPerWriter;

  SharedLog log;
  LoggingSink sink_one(1, &log);
  LoggingSink sink_two(2, &log);
  Relay::Options options;
  options.batch_size = 8;
  options.poll_interval = absl::Milliseconds(20);
  options.initial_backoff = absl::Milliseconds(5);
  options.max_backoff = absl::Milliseconds(20);
  prometheus::Registry registry_one;
  prometheus::Registry registry_two;
  Relay relay_one(std::make_unique<PostgresOutboxStore>(Connect()), &sink_one, registry_one,
                  options);
  Relay relay_two(std::make_unique<PostgresOutboxStore>(Connect()), &sink_two, registry_two,
                  options);

  // Writers on connections of their own append to every key; a key's next
  // sequence number is taken and committed under its mutex, so per key the
  // commit order is the sequence order, across writers.
  absl::Mutex key_mu[kKeys];
  int next_sequence[kKeys] = {};
  std::vector<std::thread> writers;
  std::vector<absl::Status> failures[kWriters];
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      std::unique_ptr<storage::PostgresConnection> db = Connect();
      for (int i = 0; i < kEventsPerWriter; ++i) {
        const int key = (w + i) % kKeys;
        absl::MutexLock lock(&key_mu[key]);
        const v1::Event event = Sealed(absl::StrCat("key-", key), next_sequence[key]);
        absl::Status status =
            db->InTransaction([&] { return AppendToOutbox(*db, "t", event); });
        if (status.ok()) {
          ++next_sequence[key];
        } else {
          failures[w].push_back(status);
        }
        relay_one.Notify();
        relay_two.Notify();
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  for (const auto& failed : failures) EXPECT_TRUE(failed.empty()) << failed.front();

  EXPECT_TRUE(log.AwaitAtLeast(kEvents, absl::Seconds(60)));
  relay_one.Stop(absl::Seconds(5));
  relay_two.Stop(absl::Seconds(5));

  const std::vector<SharedLog::Entry> entries = log.entries();
  std::set<std::string> event_ids;
  std::map<std::string, std::vector<int>> sequences;
  int by_relay[3] = {};
  for (const SharedLog::Entry& entry : entries) {
    event_ids.insert(entry.record.event_id);
    v1::Event event;
    ASSERT_TRUE(event.ParseFromString(entry.record.value));
    sequences[entry.record.key].push_back(event.agent_load_changed().load());
    ++by_relay[entry.relay];
  }
  EXPECT_EQ(entries.size(), kEvents) << "duplicates or losses";
  EXPECT_EQ(event_ids.size(), kEvents) << "lost events";
  ASSERT_EQ(sequences.size(), kKeys);
  for (const auto& [key, published] : sequences) {
    std::vector<int> expected(published.size());
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<int>(i);
    EXPECT_EQ(published, expected) << key << " out of order";
  }
  // Both relays took part (else this proved nothing about two at once).
  EXPECT_GT(by_relay[1], 0);
  EXPECT_GT(by_relay[2], 0);
  absl::StatusOr<storage::PostgresRows> left = db_->Query("SELECT COUNT(*) FROM outbox");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->Int(0, 0), 0);
}

}  // namespace
}  // namespace switchboard::events
