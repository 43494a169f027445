// Two bot replicas sharing their dialogue contexts on one PostgreSQL: a
// session's turns may land on either, as a load balancer spreads them.
#include <memory>

#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/storage/postgres.h"
#include "libs/testing/postgres.h"
#include "prometheus/registry.h"
#include "services/bot/bot.h"
#include "services/bot/postgres_dialogues.h"
#include "services/bot/postgres_event_log.h"

namespace switchboard::bot {
namespace {

class Replica {
 public:
  Replica(const std::string& uri, FakeClock* clock)
      : metrics_(registry_),
        dialogues_(uri, absl::Minutes(30), "switchboard.bot.v1", nullptr),
        bot_("", &events_, clock, &metrics_, BotOptions(), &dialogues_) {
    EXPECT_TRUE(bot_.Reload("startup").ok());
  }

  absl::StatusOr<v1::AnswerResponse> Ask(const std::string& session, const std::string& turn_id,
                                         const std::string& text) {
    v1::AnswerRequest request;
    request.set_session_id(session);
    request.set_turn_id(turn_id);
    request.set_text(text);
    v1::AnswerResponse response;
    absl::Status status = absl::InternalError("done not called");
    bot_.Answer(request, &response, [&](absl::Status s) { status = s; });
    if (!status.ok()) return status;
    return response;
  }

  // Turn events that went to the event log instead of committing with
  // their context.
  int TurnEventsLogged() {
    int turns = 0;
    for (const events::v1::Event& event : events_.events()) turns += event.has_turn_completed();
    return turns;
  }

  Bot& bot() { return bot_; }

 private:
  prometheus::Registry registry_;
  BotMetrics metrics_;
  MemoryEventLog events_;
  PostgresDialogueStore dialogues_;
  Bot bot_;
};

class BotReplicasTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new testing::PostgresServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    uri_ = server_->CreateDatabase();
    ASSERT_TRUE(storage::PostgresConnection::OpenMigrated(uri_, PostgresBotMigrations()).ok());
    a_ = std::make_unique<Replica>(uri_, &clock_);
    b_ = std::make_unique<Replica>(uri_, &clock_);
  }

  // bot.turn_completed rows in the shared outbox.
  int64_t TurnEventsInOutbox() {
    auto db = storage::PostgresConnection::Open(uri_);
    if (!db.ok()) return -1;
    auto rows = (*db)->Query("SELECT count(*) FROM outbox WHERE type = 'bot.turn_completed'");
    return rows.ok() ? rows->Int(0, 0) : -1;
  }

  static testing::PostgresServer* server_;
  std::string uri_;
  FakeClock clock_;
  std::unique_ptr<Replica> a_;
  std::unique_ptr<Replica> b_;
};

testing::PostgresServer* BotReplicasTest::server_ = nullptr;

TEST_F(BotReplicasTest, NotUnderstoodTurnsCountAcrossReplicas) {
  auto first = a_->Ask("s-1", "t-1", "tell me a joke");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->not_understood_turns(), 1);
  auto second = b_->Ask("s-1", "t-2", "今天天气怎么样");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->not_understood_turns(), 2);
  auto third = a_->Ask("s-1", "t-3", "sing me a song");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->outcome(), v1::ANSWER_OUTCOME_ESCALATED);
  EXPECT_EQ(third->handoff().reason(), common::v1::ESCALATION_REASON_NOT_UNDERSTOOD);
  // Each turn's event committed with its context, in the shared outbox.
  EXPECT_EQ(TurnEventsInOutbox(), 3);
}

TEST_F(BotReplicasTest, AFollowUpOnTheOtherReplicaKeepsTheTopic) {
  ASSERT_EQ(a_->Ask("s-1", "t-1", "my withdrawal is pending")->answered_intent_id(),
            "withdrawal_pending");
  auto fee = b_->Ask("s-1", "t-2", "what about the fee?");
  ASSERT_TRUE(fee.ok()) << fee.status();
  EXPECT_EQ(fee->answered_intent_id(), "withdrawal_fee");
  EXPECT_EQ(fee->category(), common::v1::CATEGORY_WITHDRAWAL);
}

TEST_F(BotReplicasTest, ATurnRetriedOnTheOtherReplicaGetsTheFirstAnswer) {
  auto first = a_->Ask("s-1", "m-1", "tell me a joke");
  auto retry = b_->Ask("s-1", "m-1", "tell me a joke");
  ASSERT_TRUE(first.ok() && retry.ok());
  EXPECT_FALSE(first->replayed());
  EXPECT_TRUE(retry->replayed());
  EXPECT_EQ(retry->reply_text(), first->reply_text());
  EXPECT_EQ(retry->not_understood_turns(), 1);
  EXPECT_EQ(TurnEventsInOutbox(), 1);
  EXPECT_EQ(a_->TurnEventsLogged() + b_->TurnEventsLogged(), 0);
}

TEST_F(BotReplicasTest, AResetOnOneReplicaIsSeenByTheOther) {
  ASSERT_TRUE(a_->Ask("s-1", "t-1", "tell me a joke").ok());
  EXPECT_TRUE(b_->bot().ResetDialogue("s-1").value());
  EXPECT_FALSE(a_->bot().ResetDialogue("s-1").value());
  EXPECT_EQ(a_->Ask("s-1", "t-2", "tell me a joke")->not_understood_turns(), 1);
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(b_->bot().ExpireDialogues().value(), 1);
  EXPECT_FALSE(a_->bot().ResetDialogue("s-1").value());
}

// A turn the shared store cannot keep is refused, with nothing recorded,
// so that the customer's retry is answered once the store is back.
TEST(BotDialogueStoreDownTest, TurnsAreUnavailableAndRecordNothing) {
  const std::string unreachable = "postgresql://switchboard@127.0.0.1:1/switchboard";
  FakeClock clock;
  Replica replica(unreachable, &clock);
  auto answer = replica.Ask("s-1", "t-1", "my withdrawal is pending");
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(answer.status().message().find("dialogue context could not be kept"),
            std::string::npos)
      << answer.status();
  EXPECT_EQ(replica.TurnEventsLogged(), 0);
  EXPECT_EQ(replica.bot().ResetDialogue("s-1").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(replica.bot().ExpireDialogues().ok());
}

}  // namespace
}  // namespace switchboard::bot
