#include "services/sessions/sqlite_store.h"

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/storage/test_dir.h"

namespace switchboard::sessions {
namespace {

class SqliteSessionStoreTest : public ::testing::Test {
 protected:
  SqliteSessionStoreTest() : path_(storage::MakeTempDir() + "/sessions.db") { Open(); }

  void Open() {
    store_.reset();
    committer_.reset();
    db_ = *storage::Database::Open({path_});
    ASSERT_TRUE(db_->Migrate(SessionsMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteSessionStore>(
        committer_.get(), *storage::Database::Open({path_}), "switchboard.sessions.v1",
        nullptr);
  }

  absl::Status Apply(SessionWrite write) {
    absl::Notification done;
    absl::Status result;
    store_->Apply(std::move(write), [&](absl::Status s) {
      result = s;
      done.Notify();
    });
    done.WaitForNotification();
    return result;
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

  std::string path_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteSessionStore> store_;
};

TEST_F(SqliteSessionStoreTest, RoundTripsSessionsEventsAndKeys) {
  SessionRecord r;
  r.session.set_session_id("s-1");
  r.session.set_customer_id("cust-1");
  r.session.set_state(v1::SESSION_STATE_QUEUED);
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
  auto contents = store_->Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->sessions.size(), 1u);
  const SessionRecord& loaded = contents->sessions[0];
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
  ASSERT_EQ(contents->keyed_messages.size(), 2u);
  EXPECT_EQ(contents->keyed_messages[0].second.fingerprint, "fp2");
  EXPECT_EQ(contents->keyed_messages[1].second.message.client_message_id(), "k4");

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

  auto outbox = db_->Prepare("SELECT count(*) FROM outbox");
  ASSERT_TRUE(outbox.ok());
  ASSERT_TRUE(*outbox->Step());
  EXPECT_EQ(outbox->ColumnInt(0), 1);
}

TEST_F(SqliteSessionStoreTest, ADuplicateSequenceRollsBackTheWholeWrite) {
  SessionRecord r;
  r.session.set_session_id("s-1");
  r.session.set_customer_id("cust-1");
  SessionWrite first;
  first.sessions.push_back(r);
  first.session_events.push_back(Message("s-1", 1, ""));
  ASSERT_TRUE(Apply(first).ok());
  SessionWrite second;
  r.session.set_customer_id("changed");
  second.sessions.push_back(r);
  second.session_events.push_back(Message("s-1", 1, ""));
  EXPECT_FALSE(Apply(second).ok());
  auto contents = store_->Load();
  EXPECT_EQ(contents->sessions[0].session.customer_id(), "cust-1");
}

}  // namespace
}  // namespace switchboard::sessions
