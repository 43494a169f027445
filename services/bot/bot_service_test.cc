#include "services/bot/bot_service.h"

#include <fstream>
#include <memory>

#include "gtest/gtest.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_tokens.h"
#include "prometheus/text_serializer.h"
#include "services/bot/sqlite_event_log.h"

namespace switchboard::bot {
namespace {

using auth::Role;
using testing::ContextWithToken;

constexpr char kRealBase[] = "services/bot/kb/intents.kb";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The bot as main() wires it (SQLite outbox, group commit, blocking pool),
// on a copy of the real knowledge base, behind a real server.
class BotServiceTest : public ::testing::Test {
 protected:
  BotServiceTest()
      : dir_(storage::MakeTempDir()),
        kb_path_(dir_ + "/intents.kb"),
        db_(*storage::Database::Open({dir_ + "/bot.db"})) {
    std::ofstream(kb_path_) << ReadFile(kRealBase);
    EXPECT_TRUE(db_->Migrate(BotMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    log_ = std::make_unique<SqliteEventLog>(committer_.get(), "switchboard.bot.v1", nullptr);
    metrics_ = std::make_unique<BotMetrics>(registry_);
    bot_ = std::make_unique<Bot>(kb_path_, log_.get(), RealClock(), metrics_.get(), BotOptions());
    EXPECT_TRUE(bot_->Reload("startup").ok());
    service_ = std::make_unique<BotService>(bot_.get(), &tokens_.verifier(), RealClock(), &pool_);
    server_ = std::make_unique<testing::TestServer>(std::vector<grpc::Service*>{service_.get()});
    stub_ = v1::BotService::NewStub(server_->channel());
  }

  ~BotServiceTest() override {
    server_.reset();
    pool_.Stop();
    committer_->Stop();
  }

  std::string Service() { return tokens_.For(Role::kService, "sessions"); }
  std::string Supervisor() { return tokens_.For(Role::kSupervisor, "sup-1"); }
  std::string Agent() { return tokens_.For(Role::kAgent, "agent-1"); }
  std::string Customer() { return tokens_.For(Role::kCustomer, "c-1"); }

  static v1::AnswerRequest Turn(const std::string& session, const std::string& turn,
                                const std::string& text) {
    v1::AnswerRequest request;
    request.set_session_id(session);
    request.set_turn_id(turn);
    request.set_text(text);
    request.set_channel(common::v1::CHANNEL_CHAT);
    return request;
  }

  grpc::Status Answer(const std::string& token, const v1::AnswerRequest& request,
                      v1::AnswerResponse* response = nullptr) {
    v1::AnswerResponse ignored;
    return stub_->Answer(ContextWithToken(token).get(), request, response ? response : &ignored);
  }

  grpc::Status List(const std::string& token, const v1::ListIntentsRequest& request,
                    v1::ListIntentsResponse* response = nullptr) {
    v1::ListIntentsResponse ignored;
    return stub_->ListIntents(ContextWithToken(token).get(), request,
                              response ? response : &ignored);
  }

  grpc::Status Reload(const std::string& token, v1::ReloadKnowledgeBaseResponse* response) {
    return stub_->ReloadKnowledgeBase(ContextWithToken(token).get(), {}, response);
  }

  grpc::Status Reset(const std::string& token, const std::string& session,
                     v1::ResetDialogueResponse* response) {
    v1::ResetDialogueRequest request;
    request.set_session_id(session);
    return stub_->ResetDialogue(ContextWithToken(token).get(), request, response);
  }

  int OutboxRows(const std::string& type) {
    int count = 0;
    EXPECT_TRUE(committer_
                    ->Commit([&](storage::Database& db) -> absl::Status {
                      auto rows = db.Prepare("SELECT COUNT(*) FROM outbox WHERE type = ?");
                      if (!rows.ok()) return rows.status();
                      rows->Bind(1, type);
                      absl::StatusOr<bool> row = rows->Step();
                      if (!row.ok()) return row.status();
                      count = static_cast<int>(rows->ColumnInt(0));
                      return absl::OkStatus();
                    })
                    .ok());
    return count;
  }

  std::string MetricsText() {
    return prometheus::TextSerializer().Serialize(registry_.Collect());
  }

  testing::TestTokens tokens_{"bot"};
  server::BlockingPool pool_{4};
  std::string dir_;
  std::string kb_path_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteEventLog> log_;
  prometheus::Registry registry_;
  std::unique_ptr<BotMetrics> metrics_;
  std::unique_ptr<Bot> bot_;
  std::unique_ptr<BotService> service_;
  std::unique_ptr<testing::TestServer> server_;
  std::unique_ptr<v1::BotService::Stub> stub_;
};

TEST_F(BotServiceTest, AnswersRetriesAndRecordsEachTurnOnce) {
  v1::AnswerResponse response;
  ASSERT_TRUE(Answer(Service(), Turn("s-1", "m-1", "充值没到账"), &response).ok());
  EXPECT_EQ(response.outcome(), v1::ANSWER_OUTCOME_ANSWERED);
  EXPECT_EQ(response.answered_intent_id(), "deposit_not_credited");
  EXPECT_EQ(response.reply_language(), "zh-CN");
  EXPECT_FALSE(response.knowledge_base_version().empty());

  v1::AnswerResponse retry;
  ASSERT_TRUE(Answer(Service(), Turn("s-1", "m-1", "充值没到账"), &retry).ok());
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(retry.reply_text(), response.reply_text());

  v1::AnswerResponse follow_up;
  ASSERT_TRUE(Answer(Supervisor(), Turn("s-1", "m-2", "still not there"), &follow_up).ok());
  EXPECT_EQ(follow_up.answered_intent_id(), "deposit_still_missing");
  EXPECT_EQ(follow_up.reply_language(), "en");

  v1::AnswerResponse human;
  ASSERT_TRUE(Answer(Service(), Turn("s-1", "m-3", "转人工"), &human).ok());
  EXPECT_EQ(human.outcome(), v1::ANSWER_OUTCOME_ESCALATED);
  EXPECT_EQ(human.handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
  EXPECT_EQ(human.handoff().category(), common::v1::CATEGORY_DEPOSIT);

  EXPECT_EQ(OutboxRows("bot.turn_completed"), 3);
  EXPECT_EQ(OutboxRows("bot.knowledge_base_reload"), 1);
  const std::string metrics = MetricsText();
  EXPECT_NE(metrics.find("switchboard_bot_answers_total{category=\"deposit\",outcome=\"answered\"} 2"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find(
                "switchboard_bot_escalations_total{reason=\"customer_requested\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("switchboard_bot_answer_confidence_count 3"), std::string::npos);
  EXPECT_NE(metrics.find("switchboard_bot_knowledge_base_reloads_total{result=\"ok\"} 1"),
            std::string::npos);
}

TEST_F(BotServiceTest, EveryAuthFailureIsRefused) {
  const v1::AnswerRequest turn = Turn("s-1", "m-1", "hello");
  EXPECT_EQ(Answer("", turn).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Answer("not-a-token", turn).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  std::string tampered = Service();
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Answer(tampered, turn).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auth::Principal expired{"sup-1", Role::kSupervisor, absl::Now() - absl::Minutes(10)};
  EXPECT_EQ(Answer(tokens_.Access(expired, absl::Now() - absl::Hours(1)), turn).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  testing::TestTokens other_key("bot");
  EXPECT_EQ(Answer(other_key.For(Role::kService, "sessions"), turn).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Only sessions may answer as a service, and only with a token for the bot.
  EXPECT_EQ(Answer(tokens_.For(Role::kService, "routing"), turn).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Answer(tokens_.ServiceToken("sessions", "routing"), turn).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Answer(Customer(), turn).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Answer(Agent(), turn).error_code(), grpc::StatusCode::PERMISSION_DENIED);

  EXPECT_EQ(List(Customer(), {}).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(List("", {}).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(List(Agent(), {}).ok());

  v1::ReloadKnowledgeBaseResponse reload;
  EXPECT_EQ(Reload(Customer(), &reload).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reload(Agent(), &reload).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reload("", &reload).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  v1::ResetDialogueResponse reset;
  EXPECT_EQ(Reset(Customer(), "s-1", &reset).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reset(Agent(), "s-1", &reset).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reset("", "s-1", &reset).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  EXPECT_EQ(OutboxRows("bot.turn_completed"), 0);  // nothing was answered
}

TEST_F(BotServiceTest, BadInputGetsInvalidArgumentOrARephraseRequest) {
  std::vector<v1::AnswerRequest> invalid = {
      Turn("s-1", "m-1", ""),
      Turn("s-1", "m-1", std::string(4001, 'a')),
      Turn("s-1", "m-1", "bell\x07"),
      Turn("", "m-1", "hello"),
      Turn("s-1", "", "hello"),
      Turn(std::string(129, 's'), "m-1", "hello"),
  };
  invalid.push_back(Turn("s-1", "m-1", "hello"));
  invalid.back().set_category(static_cast<common::v1::Category>(42));
  invalid.push_back(Turn("s-1", "m-1", ""));
  invalid.back().set_quick_reply_id("intent:nope");
  for (const auto& request : invalid) {
    grpc::Status status = Answer(Service(), request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << request.ShortDebugString() << " " << status.error_message();
    EXPECT_FALSE(status.error_message().empty());
  }
  // Invalid UTF-8 cannot even be parsed as a proto3 string.
  grpc::Status bad_utf8 = Answer(Service(), Turn("s-1", "m-1", "\xff\xfe bad"));
  EXPECT_EQ(bad_utf8.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad_utf8.error_message();

  int turn = 0;
  for (const char* text : {"😀😀😀", "？！。。。", "!!!"}) {
    v1::AnswerResponse response;
    ASSERT_TRUE(
        Answer(Service(), Turn("s-noise-" + std::to_string(++turn), "n-1", text), &response).ok())
        << text;
    EXPECT_EQ(response.outcome(), v1::ANSWER_OUTCOME_NOT_UNDERSTOOD);
    EXPECT_FALSE(response.reply_text().empty());
  }

  v1::ListIntentsRequest bad_page;
  bad_page.set_page_token("!!!");
  EXPECT_EQ(List(Agent(), bad_page).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListIntentsRequest big_page;
  big_page.set_page_size(501);
  EXPECT_EQ(List(Agent(), big_page).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListIntentsRequest long_query;
  long_query.set_query(std::string(101, 'q'));
  EXPECT_EQ(List(Agent(), long_query).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListIntentsRequest bad_language;
  bad_language.set_language("fr");
  EXPECT_EQ(List(Agent(), bad_language).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ResetDialogueResponse reset;
  EXPECT_EQ(Reset(Service(), "", &reset).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(Answer(Service(), Turn("s-1", "m-9", "hello")).ok());
}

TEST_F(BotServiceTest, ListIntentsPagesFiltersAndLabels) {
  std::vector<std::string> ids;
  v1::ListIntentsRequest request;
  request.set_page_size(20);
  for (int page = 0; page < 10; ++page) {
    v1::ListIntentsResponse response;
    ASSERT_TRUE(List(Agent(), request, &response).ok());
    for (const auto& intent : response.intents()) {
      ids.push_back(intent.intent_id());
      EXPECT_EQ(intent.titles_size(), 2);
      EXPECT_EQ(intent.answers_size(), 2);
      EXPECT_GT(intent.example_count(), 0);
    }
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  EXPECT_EQ(static_cast<int>(ids.size()), static_cast<int>(bot_->knowledge_base()->intents.size()));
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));

  v1::ListIntentsRequest frozen;
  frozen.set_category(common::v1::CATEGORY_FROZEN_FUNDS);
  v1::ListIntentsResponse frozen_list;
  ASSERT_TRUE(List(Supervisor(), frozen, &frozen_list).ok());
  ASSERT_FALSE(frozen_list.intents().empty());
  for (const auto& intent : frozen_list.intents()) EXPECT_TRUE(intent.sensitive());

  v1::ListIntentsRequest memo;
  memo.set_query("Deposit_Not");
  memo.set_language("zh-CN");
  v1::ListIntentsResponse memo_list;
  ASSERT_TRUE(List(Supervisor(), memo, &memo_list).ok());
  bool found = false;
  for (const auto& intent : memo_list.intents()) {
    if (intent.intent_id() == "deposit_not_credited") {
      found = true;
      EXPECT_EQ(intent.quick_replies(0).label(), "选错了网络");
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(BotServiceTest, ReloadRejectsABrokenFileAndKeepsServing) {
  v1::ReloadKnowledgeBaseResponse same;
  ASSERT_TRUE(Reload(Supervisor(), &same).ok());
  EXPECT_EQ(same.version(), same.previous_version());
  EXPECT_GE(same.intent_count(), 40);
  EXPECT_GT(same.example_count(), same.intent_count());
  EXPECT_GT(same.loaded_at().seconds(), 0);

  std::ofstream(kb_path_, std::ios::app) << "\nintent: half_done\ncategory: deposit\n";
  v1::ReloadKnowledgeBaseResponse broken;
  grpc::Status status = Reload(Supervisor(), &broken);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("intent 'half_done' has no zh-CN title"),
            std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("intents.kb:"), std::string::npos);

  v1::AnswerResponse answer;
  ASSERT_TRUE(Answer(Service(), Turn("s-1", "m-1", "how do I reset my password"), &answer).ok());
  EXPECT_EQ(answer.knowledge_base_version(), same.version());

  std::remove(kb_path_.c_str());
  EXPECT_EQ(Reload(Supervisor(), &broken).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(OutboxRows("bot.knowledge_base_reload"), 4);
  EXPECT_NE(MetricsText().find("switchboard_bot_knowledge_base_reloads_total{result=\"failed\"} 2"),
            std::string::npos);

  v1::ResetDialogueResponse reset;
  ASSERT_TRUE(Reset(Service(), "s-1", &reset).ok());
  EXPECT_TRUE(reset.existed());
  ASSERT_TRUE(Reset(Supervisor(), "s-1", &reset).ok());
  EXPECT_FALSE(reset.existed());
}

}  // namespace
}  // namespace switchboard::bot
