#include "services/bot/dialogues.h"

#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "libs/events/envelope.h"
#include "libs/storage/postgres.h"
#include "libs/testing/postgres.h"
#include "services/bot/postgres_dialogues.h"
#include "services/bot/postgres_event_log.h"

namespace switchboard::bot {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);
constexpr absl::Duration kExpiry = absl::Minutes(30);
constexpr char kTopic[] = "switchboard.bot.v1";

enum class Backend { kMemory, kPostgres };

testing::PostgresServer& SharedServer() {
  static testing::PostgresServer server;
  return server;
}

// The store contract on each backend. `replica_` is a second store on the
// same dialogues, as another bot replica would hold it: on PostgreSQL a
// second store on the same database, in memory the same store (memory is
// never shared between processes).
class DialogueStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kMemory) {
      MemoryDialogueStore::Options options;
      options.idle_expiry = kExpiry;
      store_ = std::make_unique<MemoryDialogueStore>(options);
      replica_ = store_.get();
      return;
    }
    const std::string uri = SharedServer().CreateDatabase();
    ASSERT_TRUE(storage::PostgresConnection::OpenMigrated(uri, PostgresBotMigrations()).ok());
    store_ = std::make_unique<PostgresDialogueStore>(uri, kExpiry, kTopic, nullptr);
    second_ = std::make_unique<PostgresDialogueStore>(uri, kExpiry, kTopic, nullptr);
    replica_ = second_.get();
  }

  std::unique_ptr<DialogueStore> store_;
  std::unique_ptr<DialogueStore> second_;
  DialogueStore* replica_ = nullptr;
};

TEST_P(DialogueStoreTest, KeepsEveryPartOfTheContextPerSession) {
  ASSERT_TRUE(store_
                  ->With("s-1", kStart,
                         [](Dialogue& d, bool existed) {
                           EXPECT_FALSE(existed);
                           d.previous_intent = "deposit_not_credited";
                           d.previous_confidence = 0.75f;
                           d.previous_category = common::v1::CATEGORY_DEPOSIT;
                           d.not_understood_turns = 2;
                           common::v1::CollectedDetail detail;
                           detail.set_key("network");
                           detail.set_value("TRC20");
                           d.details.push_back(detail);
                           v1::AnswerResponse answer;
                           answer.set_reply_text("充值到账需要网络确认");
                           d.turns.emplace_back("t-1", answer);
                         })
                  .ok());
  ASSERT_TRUE(store_
                  ->With("s-2", kStart,
                         [](Dialogue& d, bool existed) {
                           EXPECT_FALSE(existed);
                           EXPECT_TRUE(d.previous_intent.empty());
                         })
                  .ok());
  bool seen = false;
  ASSERT_TRUE(replica_
                  ->With("s-1", kStart + absl::Minutes(1),
                         [&](Dialogue& d, bool existed) {
                           seen = true;
                           EXPECT_TRUE(existed);
                           EXPECT_EQ(d.previous_intent, "deposit_not_credited");
                           EXPECT_FLOAT_EQ(d.previous_confidence, 0.75f);
                           EXPECT_EQ(d.previous_category, common::v1::CATEGORY_DEPOSIT);
                           EXPECT_EQ(d.not_understood_turns, 2);
                           ASSERT_EQ(d.details.size(), 1u);
                           EXPECT_EQ(d.details[0].value(), "TRC20");
                           ASSERT_EQ(d.turns.size(), 1u);
                           EXPECT_EQ(d.turns[0].first, "t-1");
                           EXPECT_EQ(d.turns[0].second.reply_text(), "充值到账需要网络确认");
                           EXPECT_EQ(d.last_seen, kStart + absl::Minutes(1));
                         })
                  .ok());
  EXPECT_TRUE(seen);
  ASSERT_TRUE(store_->ExpireIdle(kStart + absl::Minutes(2)).ok());
  EXPECT_EQ(store_->size(), 2);
}

TEST_P(DialogueStoreTest, IdleDialoguesExpire) {
  ASSERT_TRUE(store_->With("s-1", kStart, [](Dialogue& d, bool) { d.not_understood_turns = 2; })
                  .ok());
  ASSERT_TRUE(store_->With("s-2", kStart + absl::Minutes(20), [](Dialogue&, bool) {}).ok());
  // Touching s-1 after its expiry starts afresh.
  ASSERT_TRUE(replica_
                  ->With("s-1", kStart + absl::Minutes(31),
                         [](Dialogue& d, bool existed) {
                           EXPECT_FALSE(existed);
                           EXPECT_EQ(d.not_understood_turns, 0);
                         })
                  .ok());
  EXPECT_EQ(store_->ExpireIdle(kStart + absl::Minutes(51)).value(), 1);  // s-2
  EXPECT_EQ(store_->size(), 1);
  EXPECT_FALSE(replica_->Erase("s-1", kStart + absl::Hours(2)).value());  // expired: not live
  EXPECT_EQ(store_->ExpireIdle(kStart + absl::Hours(2)).value(), 0);
  EXPECT_EQ(store_->size(), 0);
}

TEST_P(DialogueStoreTest, EraseReportsWhetherThereWasOne) {
  EXPECT_FALSE(store_->Erase("s-1", kStart).value());
  ASSERT_TRUE(store_->With("s-1", kStart, [](Dialogue&, bool) {}).ok());
  EXPECT_TRUE(replica_->Erase("s-1", kStart).value());
  EXPECT_FALSE(store_->Erase("s-1", kStart).value());
  bool existed = true;
  ASSERT_TRUE(store_->With("s-1", kStart, [&](Dialogue&, bool e) { existed = e; }).ok());
  EXPECT_FALSE(existed);
}

// Turns of one session arriving at two replicas at once take turns on its
// context: none overwrites another's.
TEST_P(DialogueStoreTest, ConcurrentTurnsOfOneSessionLoseNoUpdate) {
  constexpr int kThreads = 8;
  constexpr int kTurnsEach = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    DialogueStore* store = t % 2 == 0 ? store_.get() : replica_;
    threads.emplace_back([store] {
      for (int i = 0; i < kTurnsEach; ++i) {
        absl::Status status =
            store->With("s-1", kStart, [](Dialogue& d, bool) { ++d.not_understood_turns; });
        EXPECT_TRUE(status.ok()) << status;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  int turns = 0;
  ASSERT_TRUE(store_->With("s-1", kStart, [&](Dialogue& d, bool) { turns = d.not_understood_turns; })
                  .ok());
  EXPECT_EQ(turns, kThreads * kTurnsEach);
}

INSTANTIATE_TEST_SUITE_P(Backends, DialogueStoreTest,
                         ::testing::Values(Backend::kMemory, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kMemory ? "Memory" : "Postgres";
                         });

TEST(MemoryDialogueStoreTest, BoundedLeastRecentlyUsedFirst) {
  MemoryDialogueStore::Options options;
  options.max_dialogues = 64;  // one per shard
  options.idle_expiry = absl::Hours(1);
  MemoryDialogueStore store(options);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(
        store.With("s-" + std::to_string(i), kStart + absl::Seconds(i), [](Dialogue&, bool) {})
            .ok());
  }
  EXPECT_LE(store.size(), 64);
  bool existed = false;
  ASSERT_TRUE(
      store.With("s-999", kStart + absl::Seconds(1000), [&](Dialogue&, bool e) { existed = e; })
          .ok());
  EXPECT_TRUE(existed);
}

// A turn's event commits with its context, or neither does.
TEST(PostgresDialogueStoreTest, TheEventCommitsWithTheContextOrNeither) {
  const std::string uri = SharedServer().CreateDatabase();
  ASSERT_TRUE(storage::PostgresConnection::OpenMigrated(uri, PostgresBotMigrations()).ok());
  int commits_notified = 0;
  PostgresDialogueStore store(uri, kExpiry, kTopic, [&] { ++commits_notified; });
  ASSERT_TRUE(store.records_events());
  auto outbox_rows = [&] {
    auto db = storage::PostgresConnection::Open(uri);
    if (!db.ok()) return int64_t{-1};
    auto rows = (*db)->Query("SELECT count(*) FROM outbox WHERE key = 's-1'");
    return rows.ok() ? rows->Int(0, 0) : int64_t{-1};
  };
  events::v1::Event event;
  auto turn = [&](Dialogue& d, bool) {
    ++d.not_understood_turns;
    event.Clear();
    event.mutable_turn_completed()->set_session_id("s-1");
  };

  ASSERT_TRUE(store
                  .WithRecord("s-1", kStart,
                              [&](Dialogue& d, bool existed) {
                                turn(d, existed);
                                ASSERT_TRUE(events::Seal(event, "bot", "s-1", kStart).ok());
                              },
                              &event)
                  .ok());
  EXPECT_EQ(outbox_rows(), 1);
  EXPECT_EQ(commits_notified, 1);

  // The outbox refuses an unsealed event: the context's change rolls back.
  absl::Status refused = store.WithRecord("s-1", kStart, turn, &event);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_EQ(outbox_rows(), 1);
  EXPECT_EQ(commits_notified, 1);
  int turns = 0;
  ASSERT_TRUE(store.With("s-1", kStart, [&](Dialogue& d, bool) { turns = d.not_understood_turns; })
                  .ok());
  EXPECT_EQ(turns, 1);
  // With records nothing (and notifies no relay).
  EXPECT_EQ(outbox_rows(), 1);
  EXPECT_EQ(commits_notified, 1);
}

// A context that does not decode is an error naming the session, not a
// fresh dialogue silently replacing it.
TEST(PostgresDialogueStoreTest, AContextThatDoesNotDecodeIsDataLoss) {
  const std::string uri = SharedServer().CreateDatabase();
  ASSERT_TRUE(storage::PostgresConnection::OpenMigrated(uri, PostgresBotMigrations()).ok());
  PostgresDialogueStore store(uri, kExpiry, kTopic, nullptr);
  ASSERT_TRUE(store.With("s-1", kStart, [](Dialogue&, bool) {}).ok());
  auto db = storage::PostgresConnection::Open(uri);
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)
                  ->Query("UPDATE dialogues SET context = $1",
                          {storage::PostgresParam::Bytes("\xff\xff\xff")})
                  .ok());
  absl::Status status = store.With("s-1", kStart, [](Dialogue&, bool) {});
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("s-1"), std::string::npos) << status;
}

}  // namespace
}  // namespace switchboard::bot
