#include <atomic>
#include <map>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/storage/postgres.h"
#include "libs/storage/postgres_group_commit.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/store_backends.h"
#include "services/routing/postgres_store.h"
#include "services/routing/sqlite_store.h"

namespace switchboard::routing {
namespace {

using testing::Backend;

constexpr char kTopic[] = "switchboard.routing.v1";

// The same cases on each backend: a SQLite file in a temporary folder, and
// a fresh database on a real PostgreSQL.
class RoutingStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  RoutingStoreTest() : place_(testing::NewStorePlace(GetParam(), "routing.db")) {
    Open();
  }

  // Opens the store (again, as after a restart).
  void Open() {
    store_.reset();
    committer_.reset();
    db_.reset();
    postgres_committer_.reset();
    if (GetParam() == Backend::kPostgres) {
      auto db = storage::PostgresConnection::OpenMigrated(place_.uri, PostgresRoutingMigrations());
      ASSERT_TRUE(db.ok()) << db.status();
      postgres_committer_ = std::make_unique<storage::PostgresGroupCommitter>(*std::move(db));
      store_ = std::make_unique<PostgresRoutingStore>(postgres_committer_.get(), kTopic,
                                                      [this] { commits_.fetch_add(1); });
      return;
    }
    db_ = *storage::Database::Open({place_.path});
    ASSERT_TRUE(db_->Migrate(RoutingMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteRoutingStore>(committer_.get(), kTopic,
                                                  [this] { commits_.fetch_add(1); });
  }

  absl::Status Apply(RoutingWrite write) {
    return testing::ApplyAndWait(*store_, std::move(write));
  }

  int64_t OutboxRows() { return testing::OutboxRows(place_); }

  const testing::StorePlace place_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<storage::PostgresGroupCommitter> postgres_committer_;
  std::unique_ptr<RoutingStore> store_;
  std::atomic<int> commits_{0};
};

EntryRecord Waiting(const std::string& session) {
  EntryRecord r;
  r.key = EntryKey(v1::ENTRY_KIND_SESSION, session);
  r.entry.set_kind(v1::ENTRY_KIND_SESSION);
  r.entry.set_session_id(session);
  r.entry.set_state(v1::ENTRY_STATE_WAITING);
  r.entry.mutable_handoff()->set_summary("存款未到账");
  r.order = 1234;
  r.excluded = {"a1", "a2"};
  return r;
}

TEST_P(RoutingStoreTest, QueueAndAssignmentsSurviveRestart) {
  RoutingWrite write;
  write.upserted_entries.push_back(Waiting("s-1"));
  EntryRecord assigned = Waiting("s-2");
  assigned.entry.set_state(v1::ENTRY_STATE_ASSIGNED);
  assigned.assigned_agent_id = "a1";
  assigned.accepted_offer_id = "offer-9";
  assigned.accepted_at = absl::FromUnixSeconds(2000);
  assigned.requeued_from = "a0";
  write.upserted_entries.push_back(assigned);
  EntryRecord gone = Waiting("s-3");
  write.upserted_entries.push_back(gone);
  SettingsRecord settings{"a1", {}, absl::FromUnixSeconds(1500)};
  settings.settings.set_auto_accept(true);
  write.settings.push_back(settings);
  ASSERT_TRUE(Apply(std::move(write)).ok());
  RoutingWrite del;
  del.deleted_entries.push_back(gone.key);
  ASSERT_TRUE(Apply(std::move(del)).ok());

  Open();
  absl::StatusOr<RoutingStore::Contents> contents = store_->Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->entries.size(), 2u);
  std::map<std::string, EntryRecord> by_key;
  for (auto& e : contents->entries) by_key[e.key] = e;
  EXPECT_EQ(by_key["session:s-1"].entry.handoff().summary(), "存款未到账");
  EXPECT_EQ(by_key["session:s-1"].order, 1234);
  EXPECT_EQ(by_key["session:s-1"].excluded, (std::vector<std::string>{"a1", "a2"}));
  EXPECT_EQ(by_key["session:s-1"].offered_at, absl::InfinitePast());
  const EntryRecord& a = by_key["session:s-2"];
  EXPECT_EQ(a.entry.state(), v1::ENTRY_STATE_ASSIGNED);
  EXPECT_EQ(a.assigned_agent_id, "a1");
  EXPECT_EQ(a.accepted_offer_id, "offer-9");
  EXPECT_EQ(a.accepted_at, absl::FromUnixSeconds(2000));
  EXPECT_EQ(a.requeued_from, "a0");
  ASSERT_EQ(contents->settings.size(), 1u);
  EXPECT_TRUE(contents->settings[0].settings.auto_accept());
}

TEST_P(RoutingStoreTest, AcceptIntentsHoldersAndOwedReleasesSurviveRestart) {
  RoutingWrite write;
  EntryRecord offered = Waiting("s-1");
  offered.entry.set_state(v1::ENTRY_STATE_OFFERED);
  offered.offer_id = "offer-1";
  offered.holder_id = 41;
  offered.accepting = true;
  write.upserted_entries.push_back(offered);
  write.owed_releases.push_back({"a1", "s-2", 7, absl::FromUnixSeconds(10)});
  write.owed_releases.push_back({"a2", "s-3", 8, absl::FromUnixSeconds(11)});
  write.holder_ceiling = 1000;
  ASSERT_TRUE(Apply(std::move(write)).ok());
  // A newer owed release of the same session at the agent covers the older;
  // the ceiling only rises.
  RoutingWrite more;
  more.owed_releases.push_back({"a1", "s-2", 9, absl::FromUnixSeconds(12)});
  more.holder_ceiling = 500;
  ASSERT_TRUE(Apply(std::move(more)).ok());
  // Settling the older release (holder 7) leaves the newer one owed;
  // settling a2's deletes it. A late write of a lower holder id does not
  // lower the owed one.
  RoutingWrite settle;
  settle.owed_releases.push_back({"a1", "s-2", 8, absl::FromUnixSeconds(13)});
  settle.settled_releases.push_back({"a1", "s-2", 7, absl::InfinitePast()});
  settle.settled_releases.push_back({"a2", "s-3", 8, absl::InfinitePast()});
  ASSERT_TRUE(Apply(std::move(settle)).ok());

  Open();
  absl::StatusOr<RoutingStore::Contents> contents = store_->Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->entries.size(), 1u);
  EXPECT_TRUE(contents->entries[0].accepting);
  EXPECT_EQ(contents->entries[0].holder_id, 41);
  ASSERT_EQ(contents->owed_releases.size(), 1u);
  EXPECT_EQ(contents->owed_releases[0].agent_id, "a1");
  EXPECT_EQ(contents->owed_releases[0].holder_id, 9);
  EXPECT_EQ(contents->holder_ceiling, 1000);
}

TEST_P(RoutingStoreTest, ClosedOffersAreFoundByIdAndPrunedOldestFirst) {
  RoutingWrite write;
  for (int i = 0; i < 3; ++i) {
    ClosedOfferRecord closed;
    closed.offer_id = "offer-" + std::to_string(i);
    closed.agent_id = "a1";
    closed.offer.set_offer_id(closed.offer_id);
    closed.offer.set_outcome(v1::OFFER_OUTCOME_DECLINED);
    closed.closed_at = absl::FromUnixSeconds(100 + i);
    if (i == 2) {
      v1::Assignment assignment;
      assignment.set_session_id("s-2");
      closed.assignment = assignment;
    }
    write.closed_offers.push_back(closed);
  }
  ASSERT_TRUE(Apply(std::move(write)).ok());
  absl::StatusOr<std::optional<ClosedOfferRecord>> found = store_->FindClosedOffer("offer-2");
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->agent_id, "a1");
  ASSERT_TRUE((*found)->assignment.has_value());
  EXPECT_EQ((*found)->assignment->session_id(), "s-2");
  EXPECT_EQ((*found)->closed_at, absl::FromUnixSeconds(102));
  EXPECT_FALSE((*store_->FindClosedOffer("offer-0"))->assignment.has_value());
  EXPECT_FALSE(store_->FindClosedOffer("nope")->has_value());
  // Start-up reads open work only.
  EXPECT_TRUE(store_->Load()->entries.empty());

  RoutingWrite prune;
  prune.prune_closed_offers_before = absl::FromUnixSeconds(102);
  prune.prune_closed_offers_limit = 1;
  ASSERT_TRUE(Apply(std::move(prune)).ok());
  EXPECT_FALSE(store_->FindClosedOffer("offer-0")->has_value());
  EXPECT_TRUE(store_->FindClosedOffer("offer-1")->has_value());
  prune.prune_closed_offers_before = absl::FromUnixSeconds(102);
  prune.prune_closed_offers_limit = 10;
  ASSERT_TRUE(Apply(std::move(prune)).ok());
  EXPECT_FALSE(store_->FindClosedOffer("offer-1")->has_value());
  EXPECT_TRUE(store_->FindClosedOffer("offer-2")->has_value());
}

events::v1::Event Event(const std::string& id, const std::string& session) {
  events::v1::Event event;
  event.set_event_id(id);
  event.set_type("routing.session_queued");
  event.set_entity_id(session);
  return event;
}

TEST_P(RoutingStoreTest, SchedulesAndTheirVersionSurviveRestart) {
  RoutingWrite write;
  for (const char* id : {"weekdays", "support", "gone"}) {
    v1::Schedule schedule;
    schedule.set_schedule_id(id);
    schedule.set_version(3);
    schedule.set_time_zone("Asia/Shanghai");
    write.schedules.push_back(schedule);
  }
  write.schedule_version = 3;
  ASSERT_TRUE(Apply(std::move(write)).ok());
  RoutingWrite change;
  change.deleted_schedules.push_back("gone");
  change.schedule_version = 4;
  ASSERT_TRUE(Apply(std::move(change)).ok());
  // The version only rises.
  RoutingWrite stale;
  stale.schedule_version = 2;
  ASSERT_TRUE(Apply(std::move(stale)).ok());

  Open();
  absl::StatusOr<RoutingStore::ScheduleContents> contents = store_->LoadSchedules();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->schedules.size(), 2u);
  EXPECT_EQ(contents->schedules[0].schedule_id(), "support");
  EXPECT_EQ(contents->schedules[1].schedule_id(), "weekdays");
  EXPECT_EQ(contents->schedules[1].time_zone(), "Asia/Shanghai");
  EXPECT_EQ(contents->version, 4);
}

TEST_P(RoutingStoreTest, AWriteAndItsEventsCommitTogether) {
  RoutingWrite write;
  write.upserted_entries.push_back(Waiting("s-1"));
  write.events.push_back(Event("e-1", "s-1"));
  ASSERT_TRUE(Apply(std::move(write)).ok());
  EXPECT_EQ(OutboxRows(), 1);
  EXPECT_EQ(commits_.load(), 1);

  // An event without an entity id is refused by the outbox: the entry
  // written with it must not stay either.
  RoutingWrite broken;
  broken.upserted_entries.push_back(Waiting("s-2"));
  broken.events.push_back(Event("e-2", ""));
  EXPECT_FALSE(Apply(std::move(broken)).ok());
  EXPECT_EQ(OutboxRows(), 1);
  EXPECT_EQ(commits_.load(), 1);
  absl::StatusOr<RoutingStore::Contents> contents = store_->Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->entries.size(), 1u);
  EXPECT_EQ(contents->entries[0].key, "session:s-1");
}

// What the router's OrderedCommits relies on: writes commit in Apply's
// order (the last version of an entry written wins) and report in that
// order.
TEST_P(RoutingStoreTest, WritesCommitAndReportInCallOrder) {
  constexpr int kWrites = 50;
  absl::Mutex mu;
  std::vector<int> reported;
  absl::Notification all_done;
  for (int i = 1; i <= kWrites; ++i) {
    RoutingWrite write;
    EntryRecord entry = Waiting("s-1");
    entry.order = i;
    write.upserted_entries.push_back(entry);
    write.holder_ceiling = i;
    store_->Apply(std::move(write), [&, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      absl::MutexLock lock(&mu);
      reported.push_back(i);
      if (static_cast<int>(reported.size()) == kWrites) all_done.Notify();
    });
  }
  all_done.WaitForNotification();
  for (int i = 0; i < kWrites; ++i) EXPECT_EQ(reported[i], i + 1);
  EXPECT_EQ(commits_.load(), kWrites);
  absl::StatusOr<RoutingStore::Contents> contents = store_->Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->entries.size(), 1u);
  EXPECT_EQ(contents->entries[0].order, kWrites);
  EXPECT_EQ(contents->holder_ceiling, kWrites);
}

INSTANTIATE_TEST_SUITE_P(Backends, RoutingStoreTest,
                         testing::AllBackends(), testing::BackendName);

TEST(SqliteRoutingMigrationTest, AnOlderFileIsUpgradedAndKeepsItsEntries) {
  const std::string path = storage::MakeTempDir() + "/routing.db";
  const std::vector<std::string>& all = RoutingMigrations();
  {
    // A file written before holder ids and owed releases.
    auto db = *storage::Database::Open({path});
    ASSERT_TRUE(db->Migrate({all[0], all[1]}).ok());
    v1::QueueEntry entry;
    entry.set_session_id("s-1");
    entry.set_state(v1::ENTRY_STATE_ASSIGNED);
    auto insert = db->Prepare(
        "INSERT INTO entries VALUES ('session:s-1', ?, 5, '', '', '', 0, 0, 0, 'a1', "
        "'offer-1', 0, '')");
    ASSERT_TRUE(insert.ok());
    ASSERT_TRUE(insert->BindBlob(1, entry.SerializeAsString()).Run().ok());
  }
  auto db = storage::Database::OpenMigrated({path}, all);
  ASSERT_TRUE(db.ok()) << db.status();
  storage::GroupCommitter committer(db->get());
  SqliteRoutingStore store(&committer, kTopic, nullptr);
  auto contents = store.Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->entries.size(), 1u);
  EXPECT_EQ(contents->entries[0].assigned_agent_id, "a1");
  EXPECT_EQ(contents->entries[0].holder_id, 0);
  EXPECT_FALSE(contents->entries[0].accepting);
  EXPECT_TRUE(contents->owed_releases.empty());
  EXPECT_EQ(contents->holder_ceiling, 0);
  committer.Stop();
}

}  // namespace
}  // namespace switchboard::routing
