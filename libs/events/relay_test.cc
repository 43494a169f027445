#include "libs/events/relay.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/events/envelope.h"
#include "libs/events/json_lines_sink.h"
#include "libs/events/outbox_test_backends.h"
#include "libs/events/read_json_lines.h"
#include "libs/storage/test_dir.h"
#include "prometheus/registry.h"

namespace switchboard::events {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// A sink that keeps what it confirmed and fails on demand: everything while
// `failing`, or the records of chosen keys (and, per the Sink contract, the
// later records with those keys).
class FakeSink : public Sink {
 public:
  std::vector<absl::Status> Publish(
      const std::vector<OutboxRecord>& records) override {
    if (on_publish_) on_publish_(records);
    absl::MutexLock lock(&mu_);
    ++calls_;
    std::vector<absl::Status> results;
    for (const OutboxRecord& record : records) {
      if (failing_ || failing_keys_.contains(record.key)) {
        results.push_back(absl::UnavailableError("broker down"));
      } else {
        published_.push_back(record);
        results.push_back(absl::OkStatus());
      }
    }
    return results;
  }

  void SetFailing(bool failing) {
    absl::MutexLock lock(&mu_);
    failing_ = failing;
  }
  void SetFailingKeys(absl::flat_hash_set<std::string> keys) {
    absl::MutexLock lock(&mu_);
    failing_keys_ = std::move(keys);
  }
  // Runs on the relay thread before each Publish.
  void OnPublish(std::function<void(const std::vector<OutboxRecord>&)> f) {
    on_publish_ = std::move(f);
  }

  // Waits (at most 10 s) until at least `n` records were confirmed.
  std::vector<OutboxRecord> AwaitPublished(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return published_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    return published_;
  }
  // Waits (at most 10 s) until Publish ran at least `n` times.
  void AwaitCalls(int n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return calls_ >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  }
  std::vector<OutboxRecord> published() {
    absl::MutexLock lock(&mu_);
    return published_;
  }

 private:
  std::function<void(const std::vector<OutboxRecord>&)> on_publish_;
  absl::Mutex mu_;
  bool failing_ = false;
  absl::flat_hash_set<std::string> failing_keys_;
  int calls_ = 0;
  std::vector<OutboxRecord> published_;
};

// The same cases on SQLite and on a real PostgreSQL.
class RelayTest : public ::testing::TestWithParam<OutboxBackendKind> {
 protected:
  void SetUp() override {
    backend_ = OutboxBackend::Make(GetParam());
    registry_ = std::make_shared<prometheus::Registry>();
    options_.poll_interval = absl::Hours(1);  // Tests wake it explicitly.
    options_.initial_backoff = absl::Milliseconds(5);
    options_.max_backoff = absl::Milliseconds(20);
    options_.clock = &clock_;
  }

  void TearDown() override {
    if (relay_ != nullptr) relay_->Stop(absl::ZeroDuration());
  }

  void StartRelay(Sink* sink) {
    relay_ = std::make_unique<Relay>(backend_->NewStore(), sink, *registry_,
                                     options_);
  }

  v1::Event Sealed(const std::string& agent_id, int load) {
    v1::Event event;
    event.mutable_agent_load_changed()->set_agent_id(agent_id);
    event.mutable_agent_load_changed()->set_load(load);
    EXPECT_TRUE(Seal(event, "presence", agent_id, clock_.Now()).ok());
    return event;
  }

  // Commits an event as a service does: with a state change, in one
  // transaction, then wakes the relay.
  absl::Status CommitEvent(const v1::Event& event) {
    absl::Status status = backend_->CommitEvent(TopicFor("presence"), event);
    if (relay_ != nullptr) relay_->Notify();
    return status;
  }

  int64_t OutboxRows() {
    return static_cast<int64_t>(backend_->Rows().size());
  }

  // Waits (at most 10 s) until the outbox holds `n` rows; deletes commit
  // just after the sink confirmed.
  bool AwaitOutboxRows(int64_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (OutboxRows() != n) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(2));
    }
    return true;
  }

  // The value of the metric `name` on the registry.
  double Metric(const std::string& name) {
    for (const prometheus::MetricFamily& family : registry_->Collect()) {
      if (family.name != name) continue;
      EXPECT_FALSE(family.help.empty()) << name;
      const prometheus::ClientMetric& metric = family.metric.at(0);
      return family.type == prometheus::MetricType::Counter
                 ? metric.counter.value
                 : metric.gauge.value;
    }
    ADD_FAILURE() << "no metric " << name;
    return -1;
  }

  static std::vector<std::string> EventIds(
      const std::vector<OutboxRecord>& records) {
    std::vector<std::string> ids;
    for (const OutboxRecord& r : records) ids.push_back(r.event_id);
    return ids;
  }

  std::unique_ptr<OutboxBackend> backend_;
  std::shared_ptr<prometheus::Registry> registry_;
  FakeClock clock_;
  Relay::Options options_;
  std::unique_ptr<Relay> relay_;
};

TEST_P(RelayTest, PublishesCommittedEventsInOrderAndDeletesThem) {
  FakeSink sink;
  StartRelay(&sink);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    v1::Event event = Sealed(absl::StrCat("agent-", i % 2), i);
    ids.push_back(event.event_id());
    ASSERT_TRUE(CommitEvent(event).ok());
  }
  std::vector<OutboxRecord> published = sink.AwaitPublished(5);
  EXPECT_THAT(EventIds(published), ElementsAreArray(ids));
  EXPECT_EQ(published[0].topic, "switchboard.presence.v1");
  EXPECT_EQ(published[1].key, "agent-1");
  EXPECT_EQ(published[1].type, "presence.agent_load_changed");
  relay_->Stop(absl::Seconds(5));
  EXPECT_EQ(OutboxRows(), 0);
  EXPECT_EQ(Metric("switchboard_outbox_published_total"), 5);
  EXPECT_EQ(Metric("switchboard_outbox_depth"), 0);
  EXPECT_EQ(Metric("switchboard_outbox_publish_failures_total"), 0);
}

TEST_P(RelayTest, TheGaugesCatchUpWhenTheRelayDrainsABacklogInFullPasses) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(CommitEvent(Sealed("agent-1", i)).ok());
  options_.batch_size = 2;
  FakeSink sink;
  StartRelay(&sink);
  EXPECT_EQ(Metric("switchboard_outbox_depth"), 5);
  sink.AwaitPublished(5);
  ASSERT_TRUE(AwaitOutboxRows(0));
  // Full passes skip the count (the poll interval is an hour); the last,
  // short one counts again.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Metric("switchboard_outbox_depth") != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_EQ(Metric("switchboard_outbox_depth"), 0);
  EXPECT_EQ(Metric("switchboard_outbox_published_total"), 5);
}

TEST_P(RelayTest, EventsOfRolledBackWritesNeverAppear) {
  FakeSink sink;
  StartRelay(&sink);
  // A write that appends its event and then fails: its transaction (on
  // SQLite its savepoint in the group commit) rolls both back.
  absl::Status failed = backend_->CommitEvent(
      TopicFor("presence"), Sealed("a", 1), /*fail_after_append=*/true);
  EXPECT_EQ(failed.code(), absl::StatusCode::kFailedPrecondition);
  // A failing write must not take its neighbour's event down with it.
  const v1::Event kept = Sealed("b", 2);
  ASSERT_TRUE(CommitEvent(kept).ok());

  relay_->Stop(absl::Seconds(5));
  EXPECT_THAT(EventIds(sink.published()), ElementsAre(kept.event_id()));
  EXPECT_EQ(OutboxRows(), 0);
}

TEST_P(RelayTest, RowsAreDeletedOnlyAfterTheSinkConfirms) {
  FakeSink sink;
  std::vector<int64_t> rows_during_publish;
  sink.OnPublish([&](const std::vector<OutboxRecord>& records) {
    rows_during_publish.push_back(OutboxRows());
  });
  sink.SetFailing(true);
  StartRelay(&sink);
  ASSERT_TRUE(CommitEvent(Sealed("a", 1)).ok());
  ASSERT_TRUE(CommitEvent(Sealed("a", 2)).ok());
  sink.AwaitCalls(4);
  EXPECT_EQ(OutboxRows(), 2);  // Failed: kept.

  sink.SetFailing(false);
  sink.AwaitPublished(2);
  relay_->Stop(absl::Seconds(5));
  EXPECT_EQ(OutboxRows(), 0);
  // Every Publish, including the successful one, saw its rows still there.
  ASSERT_FALSE(rows_during_publish.empty());
  for (int64_t rows : rows_during_publish) EXPECT_GE(rows, 1);
  EXPECT_EQ(rows_during_publish.back(), 2);
}

TEST_P(RelayTest, FailingSinkKeepsRowsWhileWritesGoOnThenDrainsInOrder) {
  FakeSink sink;
  sink.SetFailing(true);
  StartRelay(&sink);
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    v1::Event event = Sealed(absl::StrCat("agent-", i % 3), i);
    ids.push_back(event.event_id());
    // The service keeps committing while the sink is down.
    ASSERT_TRUE(CommitEvent(event).ok());
  }
  sink.AwaitCalls(3);
  EXPECT_EQ(OutboxRows(), 20);
  EXPECT_GE(Metric("switchboard_outbox_publish_failures_total"), 3);
  EXPECT_EQ(Metric("switchboard_outbox_published_total"), 0);
  EXPECT_TRUE(sink.published().empty());

  sink.SetFailing(false);
  std::vector<OutboxRecord> published = sink.AwaitPublished(20);
  EXPECT_THAT(EventIds(published), ElementsAreArray(ids));
  relay_->Stop(absl::Seconds(5));
  EXPECT_EQ(OutboxRows(), 0);
  EXPECT_EQ(Metric("switchboard_outbox_published_total"), 20);
  EXPECT_EQ(Metric("switchboard_outbox_depth"), 0);
}

TEST_P(RelayTest, OneFailingKeyDelaysOnlyItsOwnEvents) {
  FakeSink sink;
  sink.SetFailingKeys({"agent-2"});
  options_.batch_size = 3;  // Several passes, each with both keys.
  StartRelay(&sink);
  std::vector<std::string> ids1, ids2;
  for (int i = 0; i < 6; ++i) {
    const std::string agent = i % 2 == 0 ? "agent-1" : "agent-2";
    v1::Event event = Sealed(agent, i);
    (i % 2 == 0 ? ids1 : ids2).push_back(event.event_id());
    ASSERT_TRUE(CommitEvent(event).ok());
  }
  // agent-1's events get through although agent-2's keep failing.
  EXPECT_THAT(EventIds(sink.AwaitPublished(3)), ElementsAreArray(ids1));
  EXPECT_TRUE(AwaitOutboxRows(3));

  sink.SetFailingKeys({});
  std::vector<OutboxRecord> published = sink.AwaitPublished(6);
  std::vector<std::string> got2;
  for (const OutboxRecord& r : published) {
    if (r.key == "agent-2") got2.push_back(r.event_id);
  }
  EXPECT_THAT(got2, ElementsAreArray(ids2));
}

TEST_P(RelayTest, NotifyWakesTheRelayBeforeThePollInterval) {
  FakeSink sink;
  StartRelay(&sink);  // Polls once an hour.
  const v1::Event first = Sealed("a", 1);
  ASSERT_TRUE(CommitEvent(first).ok());
  sink.AwaitPublished(1);
  // The relay is now idle; only Notify can wake it within the test.
  const v1::Event second = Sealed("a", 2);
  ASSERT_TRUE(CommitEvent(second).ok());
  EXPECT_THAT(EventIds(sink.AwaitPublished(2)),
              ElementsAre(first.event_id(), second.event_id()));
}

TEST_P(RelayTest, PublishesWhatAnEarlierRunLeftBehind) {
  FakeSink sink;
  const v1::Event left = Sealed("a", 1);
  ASSERT_TRUE(CommitEvent(left).ok());  // No relay yet.
  StartRelay(&sink);
  EXPECT_THAT(EventIds(sink.AwaitPublished(1)), ElementsAre(left.event_id()));
}

TEST_P(RelayTest, StopFlushesEventsCommittedWithoutNotify) {
  FakeSink sink;
  options_.batch_size = 4;
  StartRelay(&sink);
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    v1::Event event = Sealed("a", i);
    ids.push_back(event.event_id());
    ASSERT_TRUE(backend_->Append(TopicFor("presence"), event).ok());
  }
  relay_->Stop(absl::Seconds(5));
  EXPECT_THAT(EventIds(sink.published()), ElementsAreArray(ids));
  EXPECT_EQ(OutboxRows(), 0);
}

TEST_P(RelayTest, StopGivesUpAtTheDeadlineAndKeepsTheRows) {
  FakeSink sink;
  sink.SetFailing(true);
  StartRelay(&sink);
  ASSERT_TRUE(CommitEvent(Sealed("a", 1)).ok());
  sink.AwaitCalls(1);
  const absl::Time start = absl::Now();
  relay_->Stop(absl::Milliseconds(100));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(OutboxRows(), 1);
  EXPECT_EQ(Metric("switchboard_outbox_depth"), 1);
}

TEST_P(RelayTest, OldestAgeGaugeFollowsTheClock) {
  FakeSink sink;
  sink.SetFailing(true);
  ASSERT_TRUE(CommitEvent(Sealed("a", 1)).ok());
  clock_.Advance(absl::Seconds(42));
  StartRelay(&sink);
  sink.AwaitCalls(1);
  relay_->Stop(absl::ZeroDuration());
  EXPECT_EQ(Metric("switchboard_outbox_oldest_age_seconds"), 42);
  EXPECT_EQ(Metric("switchboard_outbox_depth"), 1);
}

TEST_P(RelayTest, EndToEndThroughTheJsonLinesSink) {
  const std::string file = storage::MakeTempDir() + "/events.jsonl";
  absl::StatusOr<std::unique_ptr<JsonLinesSink>> sink =
      JsonLinesSink::Open(file);
  ASSERT_TRUE(sink.ok()) << sink.status();
  StartRelay(sink->get());
  std::vector<v1::Event> events;
  for (int i = 0; i < 3; ++i) {
    events.push_back(Sealed(absl::StrCat("agent-", i), i));
    ASSERT_TRUE(CommitEvent(events.back()).ok());
  }
  relay_->Stop(absl::Seconds(5));
  EXPECT_EQ(OutboxRows(), 0);

  absl::StatusOr<std::vector<JsonLine>> lines = ReadJsonLines(file);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_EQ(lines->size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*lines)[i].topic, "switchboard.presence.v1");
    EXPECT_EQ((*lines)[i].key, events[i].entity_id());
    EXPECT_TRUE(MessageDifferencer::Equals((*lines)[i].event, events[i]));
  }
}

TEST_P(RelayTest, TheDepthGaugeShowsWhatAnEarlierRunLeftBeforeTheFirstPassEnds) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(CommitEvent(Sealed("ana", i)).ok());
  FakeSink sink;
  absl::Notification publishing;
  absl::Notification release;
  sink.OnPublish([&](const std::vector<OutboxRecord>&) {
    if (!publishing.HasBeenNotified()) publishing.Notify();
    release.WaitForNotification();
  });
  StartRelay(&sink);
  ASSERT_TRUE(publishing.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // The first pass is stuck in the sink, yet the gauge is already right.
  EXPECT_EQ(Metric("switchboard_outbox_depth"), 3);
  release.Notify();
  ASSERT_TRUE(AwaitOutboxRows(0));
}

INSTANTIATE_TEST_SUITE_P(Backends, RelayTest,
                         ::testing::Values(OutboxBackendKind::kSqlite,
                                           OutboxBackendKind::kPostgres),
                         [](const auto& info) { return OutboxBackendName(info.param); });

}  // namespace
}  // namespace switchboard::events
