#include "services/routing/sqlite_store.h"

#include <map>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/storage/test_dir.h"

namespace switchboard::routing {
namespace {

class SqliteRoutingStoreTest : public ::testing::Test {
 protected:
  SqliteRoutingStoreTest() : path_(storage::MakeTempDir() + "/routing.db") { Open(); }

  void Open() {
    store_.reset();
    committer_.reset();
    db_.reset();
    db_ = *storage::Database::Open({path_});
    ASSERT_TRUE(db_->Migrate(RoutingMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteRoutingStore>(committer_.get(), "switchboard.routing.v1",
                                                  nullptr);
  }

  absl::Status Apply(RoutingWrite write) {
    absl::Notification done;
    absl::Status result;
    store_->Apply(std::move(write), [&](absl::Status s) {
      result = s;
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  std::string path_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteRoutingStore> store_;
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

TEST_F(SqliteRoutingStoreTest, QueueAndAssignmentsSurviveRestart) {
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

}  // namespace
}  // namespace switchboard::routing
