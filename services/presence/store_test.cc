#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/storage/postgres.h"
#include "libs/storage/postgres_group_commit.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/store_backends.h"
#include "services/presence/postgres_store.h"
#include "services/presence/sqlite_store.h"

namespace switchboard::presence {
namespace {

using testing::Backend;

constexpr char kTopic[] = "switchboard.presence.v1";

// The same cases on each backend: a SQLite file in a temporary folder, and
// a fresh database on a real PostgreSQL.
class PresenceStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  PresenceStoreTest() : place_(testing::NewStorePlace(GetParam(), "presence.db")) {
    Open();
  }

  // Opens the store (again, as after a restart).
  void Open() {
    store_.reset();
    committer_.reset();
    db_.reset();
    postgres_committer_.reset();
    if (GetParam() == Backend::kPostgres) {
      auto db = storage::PostgresConnection::OpenMigrated(place_.uri, PostgresPresenceMigrations());
      ASSERT_TRUE(db.ok()) << db.status();
      postgres_committer_ = std::make_unique<storage::PostgresGroupCommitter>(*std::move(db));
      store_ = std::make_unique<PostgresPresenceStore>(postgres_committer_.get(), kTopic,
                                                       [this] { commits_.fetch_add(1); });
      return;
    }
    db_ = *storage::Database::Open({place_.path});
    ASSERT_TRUE(db_->Migrate(PresenceMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqlitePresenceStore>(committer_.get(), kTopic,
                                                   [this] { commits_.fetch_add(1); });
  }

  absl::Status Apply(PresenceWrite write) {
    return testing::ApplyAndWait(*store_, std::move(write));
  }

  int64_t OutboxRows() { return testing::OutboxRows(place_); }

  const testing::StorePlace place_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<storage::PostgresGroupCommitter> postgres_committer_;
  std::unique_ptr<PresenceStore> store_;
  std::atomic<int> commits_{0};
};

// An unconfirmed chat reservation of `session` at `agent`.
ReservationRecord Held(const std::string& agent, const std::string& session) {
  return ReservationRecord{agent, session, common::v1::CHANNEL_CHAT, false,
                           absl::FromUnixSeconds(1000), absl::FromUnixSeconds(1060)};
}

AgentRecord Agent(const std::string& id, v1::AgentStatus status) {
  AgentRecord agent;
  agent.agent_id = id;
  agent.status = status;
  agent.profile.set_display_name("名字");
  v1::ChannelCapacity* chat = agent.profile.add_capacities();
  chat->set_channel(common::v1::CHANNEL_CHAT);
  chat->set_capacity(4);
  agent.status_changed_at = absl::FromUnixSeconds(1000);
  agent.idle_since = absl::FromUnixSeconds(900);
  agent.lease_expires_at = absl::InfinitePast();
  agent.revision = 7;
  agent.profile_set_by = "sup-1";
  agent.profile_set_at = absl::FromUnixSeconds(800);
  return agent;
}

TEST_P(PresenceStoreTest, StateAndEventsSurviveReopening) {
  PresenceWrite write;
  write.agents.push_back(Agent("agent-1", v1::AGENT_STATUS_ONLINE));
  ReservationRecord reservation{"agent-1", "s-1", common::v1::CHANNEL_CHAT, false,
                                absl::FromUnixSeconds(1000), absl::FromUnixSeconds(1060), 42};
  write.upserted_reservations.push_back(reservation);
  events::v1::Event event;
  event.set_event_id("e-1");
  event.set_type("presence.agent_status_changed");
  event.set_entity_id("agent-1");
  event.mutable_agent_status_changed()->set_agent_id("agent-1");
  write.events.push_back(event);
  ASSERT_TRUE(Apply(write).ok());
  EXPECT_EQ(commits_.load(), 1);
  EXPECT_EQ(OutboxRows(), 1);

  Open();
  auto contents = store_->Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->agents.size(), 1u);
  const AgentRecord& agent = contents->agents[0];
  EXPECT_EQ(agent.status, v1::AGENT_STATUS_ONLINE);
  EXPECT_EQ(agent.profile.display_name(), "名字");
  EXPECT_EQ(agent.lease_expires_at, absl::InfinitePast());
  EXPECT_EQ(agent.idle_since, absl::FromUnixSeconds(900));
  EXPECT_EQ(agent.revision, 7);
  EXPECT_EQ(agent.profile_set_by, "sup-1");
  EXPECT_EQ(agent.profile_set_at, absl::FromUnixSeconds(800));
  ASSERT_EQ(contents->reservations.size(), 1u);
  EXPECT_EQ(contents->reservations[0].expires_at, absl::FromUnixSeconds(1060));
  EXPECT_FALSE(contents->reservations[0].assigned);
  EXPECT_EQ(contents->reservations[0].holder_id, 42);

  PresenceWrite release;
  release.deleted_reservations.push_back(reservation);
  ASSERT_TRUE(Apply(release).ok());
  EXPECT_TRUE(store_->Load()->reservations.empty());
}

TEST_P(PresenceStoreTest, AFailedWriteLeavesNothingBehind) {
  PresenceWrite orphan;
  // The reservation's agent does not exist: the foreign key fails the write,
  // and its event must not reach the outbox.
  orphan.upserted_reservations.push_back(ReservationRecord{
      "ghost", "s-1", common::v1::CHANNEL_CHAT, true, absl::UnixEpoch(),
      absl::InfiniteFuture()});
  events::v1::Event event;
  event.set_event_id("e-2");
  event.mutable_agent_load_changed()->set_agent_id("ghost");
  orphan.events.push_back(event);
  EXPECT_FALSE(Apply(orphan).ok());
  EXPECT_EQ(OutboxRows(), 0);
  EXPECT_EQ(commits_.load(), 0);
  EXPECT_TRUE(store_->Load()->reservations.empty());
}

// What OrderedCommits relies on: writes commit in Apply's order (the last
// revision of an agent written wins) and report in that order.
TEST_P(PresenceStoreTest, WritesCommitAndReportInCallOrder) {
  constexpr int kWrites = 50;
  absl::Mutex mu;
  std::vector<int> reported;
  absl::Notification all_done;
  for (int i = 1; i <= kWrites; ++i) {
    PresenceWrite write;
    AgentRecord agent = Agent("agent-1", v1::AGENT_STATUS_ONLINE);
    agent.revision = i;
    write.agents.push_back(agent);
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
  auto contents = store_->Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->agents.size(), 1u);
  EXPECT_EQ(contents->agents[0].revision, kWrites);
}

TEST_P(PresenceStoreTest, AWriteBeyondItsCapacityGuardCommitsNothing) {
  PresenceWrite first;
  first.agents.push_back(Agent("agent-1", v1::AGENT_STATUS_ONLINE));
  first.upserted_reservations.push_back(Held("agent-1", "s-1"));
  first.capacity_guards.push_back({"agent-1", common::v1::CHANNEL_CHAT, 1});
  ASSERT_TRUE(Apply(first).ok());

  PresenceWrite second;
  second.upserted_reservations.push_back(Held("agent-1", "s-2"));
  second.capacity_guards.push_back({"agent-1", common::v1::CHANNEL_CHAT, 1});
  events::v1::Event event;
  event.set_event_id("e-3");
  event.set_type("presence.agent_load_changed");
  event.set_entity_id("agent-1");
  event.mutable_agent_load_changed()->set_agent_id("agent-1");
  second.events.push_back(event);
  absl::Status refused = Apply(second);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_NE(refused.message().find("agent-1"), absl::string_view::npos) << refused;
  EXPECT_EQ(OutboxRows(), 0);
  EXPECT_EQ(store_->Load()->reservations.size(), 1u);

  // Within a larger capacity it passes.
  second.capacity_guards[0].capacity = 2;
  EXPECT_TRUE(Apply(second).ok());
  EXPECT_EQ(store_->Load()->reservations.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Backends, PresenceStoreTest,
                         testing::AllBackends(), testing::BackendName);

// Two store instances on one database, as two presence processes would be,
// each with its own writer connection, both reserving the one chat slot of
// the same agents at once: the capacity guard (the agent's row lock, then
// the count) lets exactly one reservation per agent commit. Without it both
// would: neither write conflicts with the other's rows.
TEST(PostgresPresenceStoreRaceTest, TwoStoresReservingTheSameAgentsNeverExceedTheirCapacity) {
  const std::string uri = testing::SharedPostgresServer().CreateDatabase();
  auto open = [&uri]() {
    auto db = storage::PostgresConnection::OpenMigrated(uri, PostgresPresenceMigrations());
    EXPECT_TRUE(db.ok()) << db.status();
    return std::make_unique<storage::PostgresGroupCommitter>(*std::move(db));
  };
  auto committer_a = open();
  auto committer_b = open();
  PostgresPresenceStore a(committer_a.get(), kTopic, nullptr);
  PostgresPresenceStore b(committer_b.get(), kTopic, nullptr);

  constexpr int kAgents = 20;
  auto agent_id = [](int i) { return absl::StrCat("agent-", i); };
  {
    PresenceWrite agents;
    for (int i = 0; i < kAgents; ++i) {
      AgentRecord agent = Agent(agent_id(i), v1::AGENT_STATUS_ONLINE);
      agent.profile.mutable_capacities(0)->set_capacity(1);
      agents.agents.push_back(agent);
    }
    absl::Notification seeded;
    a.Apply(std::move(agents), [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      seeded.Notify();
    });
    seeded.WaitForNotification();
  }

  absl::Mutex mu;
  std::map<std::string, std::vector<absl::StatusCode>> outcomes;
  std::atomic<int> left{2 * kAgents};
  absl::Notification all_done, go;
  auto reserve_all = [&](PresenceStore& store, const std::string& prefix) {
    go.WaitForNotification();
    for (int i = 0; i < kAgents; ++i) {
      PresenceWrite write;
      write.upserted_reservations.push_back(Held(agent_id(i), prefix + agent_id(i)));
      write.capacity_guards.push_back({agent_id(i), common::v1::CHANNEL_CHAT, 1});
      store.Apply(std::move(write), [&, i](absl::Status s) {
        {
          absl::MutexLock lock(&mu);
          outcomes[agent_id(i)].push_back(s.code());
        }
        if (left.fetch_sub(1) == 1) all_done.Notify();
      });
    }
  };
  std::thread thread_a(reserve_all, std::ref(a), "a-");
  std::thread thread_b(reserve_all, std::ref(b), "b-");
  go.Notify();
  thread_a.join();
  thread_b.join();
  all_done.WaitForNotification();

  for (int i = 0; i < kAgents; ++i) {
    std::vector<absl::StatusCode> codes = outcomes[agent_id(i)];
    std::sort(codes.begin(), codes.end());
    EXPECT_EQ(codes, (std::vector<absl::StatusCode>{absl::StatusCode::kOk,
                                                    absl::StatusCode::kFailedPrecondition}))
        << agent_id(i);
  }
  auto db = storage::PostgresConnection::Open(uri);
  ASSERT_TRUE(db.ok()) << db.status();
  auto most = (*db)->Query(
      "SELECT COALESCE(MAX(n), 0), COUNT(*) FROM "
      "(SELECT COUNT(*) AS n FROM reservations GROUP BY agent_id) AS held");
  ASSERT_TRUE(most.ok()) << most.status();
  EXPECT_EQ(most->Int(0, 0), 1);
  EXPECT_EQ(most->Int(0, 1), kAgents);
}

TEST(SqlitePresenceMigrationTest, AnOlderFileIsUpgradedAndKeepsItsReservations) {
  const std::string path = storage::MakeTempDir() + "/presence.db";
  const std::vector<std::string>& all = PresenceMigrations();
  {
    // A file written before reservations had holders.
    auto db = *storage::Database::Open({path});
    ASSERT_TRUE(db->Migrate({all[0], all[1]}).ok());
    ASSERT_TRUE(db->Execute("INSERT INTO agents VALUES ('agent-1', 1, x'', 0, 0, 0, 3)").ok());
    ASSERT_TRUE(db->Execute("INSERT INTO reservations VALUES ('s-1', 'agent-1', 1, 1, 0, 0)").ok());
  }
  auto db = storage::Database::OpenMigrated({path}, all);
  ASSERT_TRUE(db.ok()) << db.status();
  storage::GroupCommitter committer(db->get());
  SqlitePresenceStore store(&committer, kTopic, nullptr);
  auto contents = store.Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->reservations.size(), 1u);
  EXPECT_TRUE(contents->reservations[0].assigned);
  EXPECT_EQ(contents->reservations[0].holder_id, 0);
  // No supervisor set its profile: nobody, never.
  ASSERT_EQ(contents->agents.size(), 1u);
  EXPECT_TRUE(contents->agents[0].profile_set_by.empty());
  EXPECT_EQ(contents->agents[0].profile_set_at, absl::InfinitePast());
  committer.Stop();
}

}  // namespace
}  // namespace switchboard::presence
