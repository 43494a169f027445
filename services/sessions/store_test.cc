// Every store case on both backends: a SQLite file in a temporary folder,
// and a fresh database on a real PostgreSQL.
#include <algorithm>
#include <atomic>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/protoutil/time.h"
#include "libs/storage/postgres.h"
#include "libs/storage/postgres_group_commit.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/store_backends.h"
#include "services/sessions/postgres_store.h"
#include "services/sessions/sqlite_store.h"

namespace switchboard::sessions {
namespace {

using testing::Backend;

constexpr char kTopic[] = "switchboard.sessions.v1";

class SessionStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  SessionStoreTest() : place_(testing::NewStorePlace(GetParam(), "sessions.db")) {
    Open();
  }

  ~SessionStoreTest() override { Close(); }

  void Close() {
    // Stop the writer before the store it calls back into goes.
    if (committer_) committer_->Stop();
    if (pg_committer_) pg_committer_->Stop();
    store_.reset();
    committer_.reset();
    pg_committer_.reset();
    db_.reset();
  }

  // Opens the store (again, as after a restart).
  void Open() {
    Close();
    if (GetParam() == Backend::kPostgres) {
      auto writer =
          storage::PostgresConnection::OpenMigrated(place_.uri, PostgresSessionsMigrations());
      ASSERT_TRUE(writer.ok()) << writer.status();
      pg_committer_ = std::make_unique<storage::PostgresGroupCommitter>(*std::move(writer));
      std::vector<std::unique_ptr<storage::PostgresConnection>> readers;
      for (int i = 0; i < 2; ++i) readers.push_back(*storage::PostgresConnection::Open(place_.uri));
      store_ = std::make_unique<PostgresSessionStore>(pg_committer_.get(), std::move(readers),
                                                      kTopic, [this] { ++commits_; });
      return;
    }
    db_ = *OpenSessionsDatabase({place_.path});
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    std::vector<std::unique_ptr<storage::Database>> readers;
    readers.push_back(*storage::Database::Open({place_.path}));
    readers.push_back(*storage::Database::Open({place_.path}));
    store_ = std::make_unique<SqliteSessionStore>(committer_.get(), std::move(readers), kTopic,
                                                  [this] { ++commits_; });
  }

  int64_t OutboxRows() { return testing::OutboxRows(place_); }

  // Transactions the store's committer has committed.
  int64_t Transactions() const {
    return committer_ ? committer_->stats().commits : pg_committer_->stats().commits;
  }

  absl::Status Apply(SessionWrite write) {
    return testing::ApplyAndWait(*store_, std::move(write));
  }

  static SessionRecord Record(const std::string& id, const std::string& customer,
                              v1::SessionState state, int64_t created_seconds) {
    SessionRecord r;
    r.session.set_session_id(id);
    r.session.set_customer_id(customer);
    r.session.set_state(state);
    r.session.set_channel(common::v1::CHANNEL_CHAT);
    r.session.set_category(common::v1::CATEGORY_GENERAL);
    protoutil::ToTimestamp(absl::FromUnixSeconds(created_seconds),
                           r.session.mutable_created_at());
    return r;
  }

  absl::Status Save(const SessionRecord& r) {
    SessionWrite write;
    write.sessions.push_back(r);
    return Apply(std::move(write));
  }

  std::vector<std::string> Ids(const SessionQuery& query) {
    auto sessions = store_->ListSessions(query);
    EXPECT_TRUE(sessions.ok()) << sessions.status();
    std::vector<std::string> ids;
    for (const auto& s : *sessions) ids.push_back(s.session_id());
    return ids;
  }

  static v1::SessionEvent Message(const std::string& session, int64_t seq,
                                  const std::string& key) {
    v1::SessionEvent e;
    e.set_session_id(session);
    e.set_sequence(seq);
    v1::Message* m = e.mutable_message();
    m->set_session_id(session);
    m->set_message_id("m" + std::to_string(seq));
    m->set_sequence(seq);
    m->set_text("text " + std::to_string(seq));
    m->set_client_message_id(key);
    return e;
  }

  const testing::StorePlace place_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<storage::PostgresGroupCommitter> pg_committer_;
  std::unique_ptr<SessionStore> store_;
  // Successful commits the store reported (its after_commit).
  std::atomic<int> commits_{0};
};

TEST_P(SessionStoreTest, RoundTripsSessionsEventsAndKeys) {
  SessionRecord r = Record("s-1", "cust-1", v1::SESSION_STATE_QUEUED, 1000);
  r.session.set_last_sequence(4);
  r.create_request_id = "req-1";
  r.request_ids = {"a", "b"};
  r.routing_pending = true;
  r.routing_version = 3;
  r.enqueue.set_session_id("s-1");
  r.enqueue.set_at_head(true);
  r.bot_since = absl::FromUnixSeconds(100);
  r.first_queued_at = absl::FromUnixSeconds(200);
  r.agent_messages = 2;
  r.resolved_by = "agent-1";
  r.bot_turn_sequence = 4;
  r.pending_callback_id = "cb-1";
  r.pending_callback_session_id = "s-2";
  SessionWrite write;
  write.sessions.push_back(r);
  v1::SessionEvent created;
  created.set_session_id("s-1");
  created.set_sequence(1);
  created.mutable_state_changed()->set_state(v1::SESSION_STATE_BOT);
  write.session_events.push_back(created);
  write.session_events.push_back(Message("s-1", 2, "k2"));
  write.session_events.push_back(Message("s-1", 3, ""));
  write.session_events.push_back(Message("s-1", 4, "k4"));
  write.fingerprints = {{"m2", "fp2"}, {"m4", "fp4"}};
  events::v1::Event event;
  event.mutable_session_created()->set_session_id("s-1");
  ASSERT_TRUE(events::Seal(event, "sessions", "s-1", absl::Now()).ok());
  write.events.push_back(event);
  ASSERT_TRUE(Apply(write).ok());

  Open();  // as after a restart
  auto open = store_->LoadOpen();
  ASSERT_TRUE(open.ok()) << open.status();
  ASSERT_EQ(open->size(), 1u);
  const SessionRecord& loaded = (*open)[0];
  EXPECT_EQ(loaded.session.customer_id(), "cust-1");
  EXPECT_EQ(loaded.create_request_id, "req-1");
  EXPECT_EQ(loaded.request_ids, (std::deque<std::string>{"a", "b"}));
  EXPECT_TRUE(loaded.routing_pending);
  EXPECT_EQ(loaded.routing_version, 3);
  EXPECT_TRUE(loaded.enqueue.at_head());
  EXPECT_EQ(loaded.bot_since, absl::FromUnixSeconds(100));
  EXPECT_EQ(loaded.first_queued_at, absl::FromUnixSeconds(200));
  EXPECT_EQ(loaded.state_since, absl::InfinitePast());
  EXPECT_EQ(loaded.agent_messages, 2);
  EXPECT_EQ(loaded.resolved_by, "agent-1");
  EXPECT_EQ(loaded.bot_turn_sequence, 4);
  EXPECT_EQ(loaded.pending_callback_id, "cb-1");
  EXPECT_EQ(loaded.pending_callback_session_id, "s-2");

  auto k2 = store_->FindMessage("s-1", "k2");
  ASSERT_TRUE(k2.ok() && k2->has_value());
  EXPECT_EQ((*k2)->fingerprint, "fp2");
  EXPECT_EQ((*k2)->message.sequence(), 2);
  EXPECT_FALSE(store_->FindMessage("s-1", "k3")->has_value());
  EXPECT_FALSE(store_->FindMessage("s-1", "")->has_value());
  EXPECT_FALSE(store_->FindMessage("s-9", "k2")->has_value());
  EXPECT_EQ(**store_->FindCreated("cust-1", "req-1"), "s-1");
  EXPECT_FALSE(store_->FindCreated("cust-2", "req-1")->has_value());
  EXPECT_FALSE(store_->FindCreated("cust-1", "")->has_value());
  EXPECT_EQ((*store_->ReadSession("s-1"))->session.state(), v1::SESSION_STATE_QUEUED);
  EXPECT_FALSE(store_->ReadSession("s-9")->has_value());

  auto events = store_->ReadEvents("s-1", 1, 3, 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].sequence(), 2);
  EXPECT_EQ((*events)[1].sequence(), 3);
  EXPECT_EQ(store_->ReadEvents("s-1", 0, 4, 2)->size(), 2u);

  auto oldest = store_->ReadMessages("s-1", 0, 0, false, 10);
  ASSERT_EQ(oldest->size(), 3u);
  EXPECT_EQ((*oldest)[0].sequence(), 2);
  auto newest = store_->ReadMessages("s-1", 0, 4, true, 10);
  ASSERT_EQ(newest->size(), 2u);
  EXPECT_EQ((*newest)[0].sequence(), 3);
  EXPECT_TRUE(store_->ReadMessages("other", 0, 0, false, 10)->empty());

  EXPECT_EQ(OutboxRows(), 1);
}

TEST_P(SessionStoreTest, AMessagedSessionRewritesOnlyWhatAMessageChanges) {
  SessionRecord r = Record("s-1", "cust-1", v1::SESSION_STATE_QUEUED, 100);
  r.create_request_id = "req-1";
  r.routing_pending = true;
  ASSERT_TRUE(Save(r).ok());
  // What a message changes, on a copy whose other fields differ from the
  // row: those must not reach the store.
  SessionRecord messaged = r;
  messaged.session.set_message_count(1);
  messaged.session.set_last_sequence(4);
  messaged.customer_messages = 1;
  messaged.bot_turn_sequence = 4;
  messaged.create_request_id = "not-written";
  messaged.routing_pending = false;
  messaged.session.set_state(v1::SESSION_STATE_CLOSED);
  SessionWrite write;
  write.messaged_sessions.push_back(Messaged(messaged));
  write.session_events.push_back(Message("s-1", 4, "k4"));
  ASSERT_TRUE(Apply(std::move(write)).ok());

  std::optional<SessionRecord> stored = *store_->ReadSession("s-1");
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->session.message_count(), 1);
  EXPECT_EQ(stored->session.last_sequence(), 4);
  EXPECT_EQ(stored->customer_messages, 1);
  EXPECT_EQ(stored->bot_turn_sequence, 4);
  EXPECT_EQ(stored->create_request_id, "req-1");
  EXPECT_TRUE(stored->routing_pending);
  // The indexed state column was left alone: the session lists as QUEUED.
  SessionQuery queued;
  queued.states = {v1::SESSION_STATE_QUEUED};
  EXPECT_EQ(Ids(queued), std::vector<std::string>{"s-1"});

  // A session that is not stored fails the write, naming it.
  SessionWrite missing;
  missing.messaged_sessions.push_back(
      Messaged(Record("s-9", "cust-1", v1::SESSION_STATE_QUEUED, 100)));
  const absl::Status failed = Apply(std::move(missing));
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal) << failed;
  EXPECT_TRUE(absl::StrContains(failed.message(), "s-9")) << failed;
}

TEST_P(SessionStoreTest, ARewriteStoresChangedIndexedColumnsAndKeepsTheCreationOnes) {
  SessionRecord r = Record("s-1", "cust-1", v1::SESSION_STATE_QUEUED, 100);
  r.create_request_id = "req-1";
  r.routing_pending = true;
  ASSERT_TRUE(Save(r).ok());
  r.session.set_state(v1::SESSION_STATE_ASSIGNED);
  r.session.set_assigned_agent_id("agent-1");
  r.routing_pending = false;
  // Set at creation and never changed by the logic: a rewrite leaves them.
  r.session.set_customer_id("cust-other");
  r.create_request_id = "req-other";
  ASSERT_TRUE(Save(r).ok());

  std::optional<SessionRecord> stored = *store_->ReadSession("s-1");
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->create_request_id, "req-1");
  EXPECT_FALSE(stored->routing_pending);
  SessionQuery assigned;
  assigned.states = {v1::SESSION_STATE_ASSIGNED};
  EXPECT_EQ(Ids(assigned), std::vector<std::string>{"s-1"});
  SessionQuery agent;
  agent.agent_id = "agent-1";
  EXPECT_EQ(Ids(agent), std::vector<std::string>{"s-1"});
  SessionQuery customer;
  customer.customer_id = "cust-1";
  EXPECT_EQ(Ids(customer), std::vector<std::string>{"s-1"});
  EXPECT_EQ(*store_->FindCreated("cust-1", "req-1"), std::optional<std::string>("s-1"));
}

TEST_P(SessionStoreTest, ARewriteWritesTheIndexPagesOfChangedColumnsOnly) {
  if (GetParam() != Backend::kSqlite) GTEST_SKIP() << "counts SQLite's WAL frames";
  // Enough sessions that each index spans many pages.
  SessionWrite many;
  for (int i = 0; i < 3000; ++i) {
    SessionRecord r = Record(absl::StrCat("s-", i), absl::StrCat("cust-", i),
                             v1::SESSION_STATE_BOT, 1000 + i);
    r.create_request_id = absl::StrCat("req-", i);
    many.sessions.push_back(std::move(r));
  }
  ASSERT_TRUE(Apply(std::move(many)).ok());
  std::unique_ptr<storage::Database> other = *storage::Database::Open({place_.path});
  // Pages one Save writes: the WAL emptied first, then its frames counted.
  auto frames_written = [&](const SessionRecord& r) -> int64_t {
    auto emptied = other->Prepare("PRAGMA wal_checkpoint(TRUNCATE)");
    EXPECT_TRUE(emptied.ok() && emptied->Step().ok() && emptied->ColumnInt(0) == 0);
    EXPECT_TRUE(Save(r).ok());
    auto page = other->Prepare("PRAGMA page_size");
    EXPECT_TRUE(page.ok() && page->Step().ok());
    const int64_t size = std::filesystem::file_size(place_.path + "-wal");
    return (size - 32) / (page->ColumnInt(0) + 24);
  };
  SessionRecord r = Record("s-1500", "cust-1500", v1::SESSION_STATE_BOT, 2500);
  r.create_request_id = "req-1500";
  r.session.set_subject("a new subject");
  // The row's page only: no index of sessions holds the subject.
  EXPECT_EQ(frames_written(r), 1);
  r.session.set_state(v1::SESSION_STATE_QUEUED);
  r.routing_pending = true;
  // And the state index's entry, which moves from the BOT part to the
  // QUEUED part (another page), and the routing-pending index's new entry.
  EXPECT_EQ(frames_written(r), 4);
}

TEST_P(SessionStoreTest, StartUpReadsOpenWorkOnly) {
  ASSERT_TRUE(Save(Record("s-bot", "c", v1::SESSION_STATE_BOT, 1)).ok());
  ASSERT_TRUE(Save(Record("s-resolved", "c", v1::SESSION_STATE_RESOLVED, 2)).ok());
  ASSERT_TRUE(Save(Record("s-closed", "c", v1::SESSION_STATE_CLOSED, 3)).ok());
  SessionRecord cancelling = Record("s-cancelling", "c", v1::SESSION_STATE_CLOSED, 4);
  cancelling.routing_pending = true;
  ASSERT_TRUE(Save(cancelling).ok());
  auto open = store_->LoadOpen();
  ASSERT_TRUE(open.ok()) << open.status();
  std::vector<std::string> ids;
  for (const auto& r : *open) ids.push_back(r.session.session_id());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"s-bot", "s-cancelling", "s-resolved"}));
  EXPECT_EQ(*store_->CountClosed(), 2);
  // Closing a session rewrites its row in place: it leaves the open set.
  SessionRecord closed = Record("s-bot", "c", v1::SESSION_STATE_CLOSED, 1);
  ASSERT_TRUE(Save(closed).ok());
  EXPECT_EQ(store_->LoadOpen()->size(), 2u);
  EXPECT_EQ(*store_->CountClosed(), 3);
}

TEST_P(SessionStoreTest, ListsPageByIndexNewestFirst) {
  // Two customers, sessions one second apart; ties in time break by id.
  for (int i = 0; i < 6; ++i) {
    SessionRecord r = Record(absl::StrCat("s-", i), i % 2 ? "odd" : "even",
                             i < 4 ? v1::SESSION_STATE_CLOSED : v1::SESSION_STATE_ASSIGNED,
                             100 + i);
    if (i >= 4) r.session.set_assigned_agent_id("agent-1");
    if (i == 5) r.session.set_channel(common::v1::CHANNEL_EMAIL);
    ASSERT_TRUE(Save(r).ok());
  }
  ASSERT_TRUE(Save(Record("s-6b", "odd", v1::SESSION_STATE_BOT, 106)).ok());
  ASSERT_TRUE(Save(Record("s-6a", "odd", v1::SESSION_STATE_BOT, 106)).ok());

  SessionQuery all;
  all.limit = 100;
  EXPECT_EQ(Ids(all), (std::vector<std::string>{"s-6b", "s-6a", "s-5", "s-4", "s-3", "s-2",
                                                "s-1", "s-0"}));
  SessionQuery odd;
  odd.customer_id = "odd";
  odd.limit = 2;
  EXPECT_EQ(Ids(odd), (std::vector<std::string>{"s-6b", "s-6a"}));
  odd.before = {absl::ToUnixMicros(absl::FromUnixSeconds(106)), "s-6a"};
  EXPECT_EQ(Ids(odd), (std::vector<std::string>{"s-5", "s-3"}));
  SessionQuery agent;
  agent.agent_id = "agent-1";
  agent.limit = 10;
  EXPECT_EQ(Ids(agent), (std::vector<std::string>{"s-5", "s-4"}));
  agent.channel = common::v1::CHANNEL_EMAIL;
  EXPECT_EQ(Ids(agent), (std::vector<std::string>{"s-5"}));
  SessionQuery states;
  states.states = {v1::SESSION_STATE_BOT, v1::SESSION_STATE_ASSIGNED};
  states.limit = 3;
  EXPECT_EQ(Ids(states), (std::vector<std::string>{"s-6b", "s-6a", "s-5"}));
  states.before = {absl::ToUnixMicros(absl::FromUnixSeconds(105)), "s-5"};
  EXPECT_EQ(Ids(states), (std::vector<std::string>{"s-4"}));
  SessionQuery closed_even;
  closed_even.customer_id = "even";
  closed_even.states = {v1::SESSION_STATE_CLOSED};
  closed_even.created_after = absl::FromUnixSeconds(101);
  closed_even.created_before = absl::FromUnixSeconds(104);
  closed_even.limit = 10;
  EXPECT_EQ(Ids(closed_even), (std::vector<std::string>{"s-2"}));
  SessionQuery none;
  none.category = common::v1::CATEGORY_KYC;
  EXPECT_TRUE(Ids(none).empty());
}

TEST_P(SessionStoreTest, ADuplicateSequenceRollsBackTheWholeWrite) {
  SessionRecord r = Record("s-1", "cust-1", v1::SESSION_STATE_BOT, 1);
  SessionWrite first;
  first.sessions.push_back(r);
  first.session_events.push_back(Message("s-1", 1, ""));
  ASSERT_TRUE(Apply(first).ok());
  SessionWrite second;
  r.session.set_subject("changed");
  second.sessions.push_back(r);
  second.session_events.push_back(Message("s-1", 1, ""));
  EXPECT_FALSE(Apply(second).ok());
  EXPECT_EQ((*store_->ReadSession("s-1"))->session.subject(), "");
  // Nothing commits after a failed write: the log has no holes.
  SessionWrite third;
  third.session_events.push_back(Message("s-1", 2, ""));
  EXPECT_EQ(Apply(third).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_->ReadEvents("s-1", 0, 10, 10)->size(), 1u);
  Open();  // a restart
  EXPECT_TRUE(Apply(third).ok());
}

// Many callers' writes share transactions (group commit), commit in call
// order and are reported in that order, each telling the relay.
TEST_P(SessionStoreTest, WritesShareTransactionsAndAreReportedInCallOrder) {
  ASSERT_TRUE(Save(Record("s-1", "cust-1", v1::SESSION_STATE_BOT, 1)).ok());
  const int64_t transactions_before = Transactions();
  constexpr int kWrites = 200;
  absl::Mutex mu;
  std::vector<int> reported;
  absl::Notification all_reported;
  for (int i = 1; i <= kWrites; ++i) {
    SessionWrite write;
    write.session_events.push_back(Message("s-1", i, absl::StrCat("k", i)));
    store_->Apply(std::move(write), [&, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      absl::MutexLock lock(&mu);
      reported.push_back(i);
      if (reported.size() == kWrites) all_reported.Notify();
    });
  }
  all_reported.WaitForNotification();
  std::vector<int> call_order(kWrites);
  for (int i = 0; i < kWrites; ++i) call_order[i] = i + 1;
  EXPECT_EQ(reported, call_order);
  EXPECT_LT(Transactions() - transactions_before, kWrites);
  EXPECT_EQ(commits_.load(), 1 + kWrites);
  auto events = store_->ReadEvents("s-1", 0, kWrites, kWrites);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), static_cast<size_t>(kWrites));
  EXPECT_EQ(events->back().sequence(), kWrites);
  EXPECT_EQ((*store_->FindMessage("s-1", "k77"))->message.sequence(), 77);
}

// A file written by the previous schema (migrations 1 to 3): the upgrade
// fills the new columns, so that start-up, lists and key look-ups see the
// old rows.
TEST(SessionsMigrationTest, UpgradesAFileOfThePreviousSchema) {
  const std::string path = storage::MakeTempDir() + "/sessions.db";
  {
    auto old = *storage::Database::Open({path});
    const auto& all = SessionsMigrations();
    ASSERT_TRUE(old->Migrate({all.begin(), all.begin() + 3}).ok());
    auto insert = old->Prepare(
        "INSERT INTO sessions(session_id, customer_id, session, create_request_id, "
        "request_ids, routing_pending, routing_version, enqueue, cancel_reason, "
        "bot_since_micros, bot_turns, state_since_micros, first_queued_at_micros, "
        "customer_messages, bot_messages, agent_messages, assignments, resolved_by, "
        "pending_callback_id, bot_turn_sequence) "
        "VALUES (?, ?, ?, ?, '', 0, 0, '', 0, 0, 0, 0, 0, 0, 0, 0, 0, '', ?, 0)");
    ASSERT_TRUE(insert.ok());
    // 2,500 closed sessions (more than one backfill batch), one assigned
    // chat with a pending callback, and its PHONE session.
    for (int i = 0; i < 2502; ++i) {
      v1::Session s;
      s.set_session_id(absl::StrCat("s-", i));
      s.set_customer_id(i == 2500 || i == 2501 ? "cust-live" : "cust-old");
      s.set_channel(i == 2501 ? common::v1::CHANNEL_PHONE : common::v1::CHANNEL_CHAT);
      s.set_category(common::v1::CATEGORY_DEPOSIT);
      s.set_state(i < 2500 ? v1::SESSION_STATE_CLOSED
                           : i == 2500 ? v1::SESSION_STATE_ASSIGNED
                                       : v1::SESSION_STATE_QUEUED);
      if (i == 2500) s.set_assigned_agent_id("agent-1");
      if (i == 2501) {
        s.set_parent_session_id("s-2500");
        s.mutable_callback()->set_callback_id("cb-7");
      }
      protoutil::ToTimestamp(absl::FromUnixSeconds(1000 + i), s.mutable_created_at());
      ASSERT_TRUE(insert->Bind(1, s.session_id())
                      .Bind(2, s.customer_id())
                      .BindBlob(3, s.SerializeAsString())
                      .Bind(4, i == 7 ? "req-7" : "")
                      .Bind(5, i == 2500 ? "cb-7" : "")
                      .Run()
                      .ok());
    }
    auto event = old->Prepare(
        "INSERT INTO session_events(session_id, sequence, is_message, client_message_id, "
        "fingerprint, event) VALUES ('s-3', 1, 1, 'k-1', 'fp', ?)");
    v1::SessionEvent e;
    e.set_session_id("s-3");
    e.set_sequence(1);
    e.mutable_message()->set_client_message_id("k-1");
    ASSERT_TRUE(event->BindBlob(1, e.SerializeAsString()).Run().ok());
  }
  auto db = OpenSessionsDatabase({path});
  ASSERT_TRUE(db.ok()) << db.status();
  storage::GroupCommitter committer(db->get());
  std::vector<std::unique_ptr<storage::Database>> readers;
  readers.push_back(*storage::Database::Open({path}));
  SqliteSessionStore store(&committer, std::move(readers), "t", nullptr);

  auto open = store.LoadOpen();
  ASSERT_TRUE(open.ok()) << open.status();
  ASSERT_EQ(open->size(), 2u);
  EXPECT_EQ(*store.CountClosed(), 2500);
  auto live = *store.ReadSession("s-2500");
  EXPECT_EQ(live->pending_callback_session_id, "s-2501");
  SessionQuery by_agent;
  by_agent.agent_id = "agent-1";
  auto assigned = store.ListSessions(by_agent);
  ASSERT_EQ(assigned->size(), 1u);
  EXPECT_EQ((*assigned)[0].session_id(), "s-2500");
  SessionQuery old_customer;
  old_customer.customer_id = "cust-old";
  old_customer.limit = 1;
  EXPECT_EQ((*store.ListSessions(old_customer))[0].session_id(), "s-2499");
  EXPECT_EQ(**store.FindCreated("cust-old", "req-7"), "s-7");
  EXPECT_EQ((*store.FindMessage("s-3", "k-1"))->fingerprint, "fp");
  // A second start finds nothing left to fill.
  EXPECT_TRUE(CompleteSessionColumns(**db).ok());
  committer.Stop();
}

AttachmentRecord StoredAttachment(const std::string& id, const std::string& session,
                                  const std::string& uploader, const std::string& blob,
                                  v1::AttachmentState state, int64_t uploaded_seconds,
                                  int64_t size) {
  AttachmentRecord r;
  r.attachment.set_attachment_id(id);
  r.attachment.set_session_id(session);
  r.attachment.set_uploader_id(uploader);
  r.attachment.set_state(state);
  r.attachment.set_size_bytes(size);
  protoutil::ToTimestamp(absl::FromUnixSeconds(uploaded_seconds),
                         r.attachment.mutable_uploaded_at());
  r.upload_id = "up-" + id;
  r.fingerprint = "header of " + id;
  r.blob_key = blob;
  r.updated_at = absl::FromUnixSeconds(uploaded_seconds);
  return r;
}

TEST_P(SessionStoreTest, AttachmentsAreFoundByIdKeyStateUploaderAndBlob) {
  SessionRecord open = Record("s-open", "cust-1", v1::SESSION_STATE_BOT, 100);
  SessionRecord closed_long_ago = Record("s-old", "cust-1", v1::SESSION_STATE_CLOSED, 100);
  closed_long_ago.state_since = absl::FromUnixSeconds(1000);
  SessionRecord closed_lately = Record("s-new", "cust-2", v1::SESSION_STATE_CLOSED, 100);
  closed_lately.state_since = absl::FromUnixSeconds(5000);
  SessionWrite write;
  write.sessions = {open, closed_long_ago, closed_lately};
  write.attachments = {
      StoredAttachment("a1", "s-open", "cust-1", "blob-x", v1::ATTACHMENT_STATE_PENDING_SCAN,
                       300, 10),
      StoredAttachment("a2", "s-old", "cust-1", "blob-x", v1::ATTACHMENT_STATE_CLEAN, 200, 20),
      StoredAttachment("a3", "s-old", "cust-1", "blob-y", v1::ATTACHMENT_STATE_DELETED, 250,
                       40),
      StoredAttachment("a4", "s-new", "cust-2", "blob-z", v1::ATTACHMENT_STATE_PENDING_SCAN,
                       100, 80)};
  ASSERT_TRUE(Apply(std::move(write)).ok());

  auto found = store_->FindAttachment("a2");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->attachment.session_id(), "s-old");
  EXPECT_EQ((*found)->fingerprint, "header of a2");
  EXPECT_EQ((*found)->updated_at, absl::FromUnixSeconds(200));
  EXPECT_EQ((*store_->FindUpload("s-old", "cust-1", "up-a2"))->attachment.attachment_id(),
            "a2");
  EXPECT_FALSE(store_->FindUpload("s-old", "cust-2", "up-a2")->has_value());
  EXPECT_FALSE(store_->FindAttachment("a9")->has_value());

  // Pending, least recently changed first.
  auto ids = [](const absl::StatusOr<std::vector<AttachmentRecord>>& records) {
    EXPECT_TRUE(records.ok()) << records.status();
    std::vector<std::string> out;
    for (const auto& r : *records) out.push_back(r.attachment.attachment_id());
    return out;
  };
  const std::vector<std::string> pending = ids(store_->PendingScans(10));
  EXPECT_EQ(pending, (std::vector<std::string>{"a4", "a1"}));
  // cust-1 since 200: a1, a2, a3 (a DELETED file still counted against the day's quota).
  EXPECT_EQ(*store_->UploadedSince("cust-1", absl::FromUnixSeconds(200)),
            (std::pair<int, int64_t>{3, 70}));
  EXPECT_EQ(*store_->UploadedSince("cust-1", absl::FromUnixSeconds(260)),
            (std::pair<int, int64_t>{1, 10}));
  // Sessions closed before 2000: s-old's live file only.
  EXPECT_EQ(ids(store_->ExpiredAttachments(absl::FromUnixSeconds(2000), 10)),
            (std::vector<std::string>{"a2"}));
  EXPECT_TRUE(*store_->BlobInUse("blob-x"));
  EXPECT_FALSE(*store_->BlobInUse("blob-y"));  // only DELETED records name it

  // A verdict updates the record in place.
  AttachmentRecord verdict = *store_->FindAttachment("a1").value();
  verdict.attachment.set_state(v1::ATTACHMENT_STATE_REJECTED);
  verdict.updated_at = absl::FromUnixSeconds(400);
  SessionWrite update;
  update.attachments.push_back(verdict);
  ASSERT_TRUE(Apply(std::move(update)).ok());
  EXPECT_EQ(store_->PendingScans(10)->size(), 1u);
  EXPECT_EQ((*store_->FindAttachment("a1"))->attachment.state(), v1::ATTACHMENT_STATE_REJECTED);

  EXPECT_EQ(ids(store_->ListAttachments("a1", 2)), (std::vector<std::string>{"a2", "a3"}));
}

INSTANTIATE_TEST_SUITE_P(Backends, SessionStoreTest,
                         testing::AllBackends(), testing::BackendName);

}  // namespace
}  // namespace switchboard::sessions
