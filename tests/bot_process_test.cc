// The bot binary as operators run it: started as a process with a fresh data
// folder and the repository's knowledge base, health-checked, asked in both
// languages, stopped with SIGTERM, restarted; with the built-in base and
// the models built with the binary.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/metrics/scrape.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/bot/v1/bot_service.grpc.pb.h"

namespace switchboard {
namespace {

using bot::v1::BotService;

constexpr char kBinary[] = "services/bot/bot_server";

class BotProcessTest : public ::testing::Test {
 protected:
  BotProcessTest() : data_dir_(storage::MakeTempDir()) {}

  std::vector<std::string> Flags() const {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    return {"--data_dir=" + data_dir_,
            "--port=0",
            "--metrics_port=0",
            "--bind_address=127.0.0.1",
            "--drain_deadline=3s",
            absl::StrCat("--knowledge_base=", srcdir ? srcdir : ".",
                         "/switchboard/services/bot/kb/intents.kb")};
  }

  std::unique_ptr<BotService::Stub> Connect(const testing::ServerProcess& server) {
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.grpc_port()),
                                   grpc::InsecureChannelCredentials());
    return BotService::NewStub(channel_);
  }

  std::string Token(auth::Role role, const std::string& subject) {
    // The server made the development keys in its data folder.
    return testing::TestTokens::FromFolder(data_dir_ + "/keys", "bot").For(role, subject);
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  // One turn, asked as sessions asks it (service role).
  bot::v1::AnswerResponse Ask(BotService::Stub& stub, const std::string& session,
                              const std::string& turn, const std::string& text) {
    bot::v1::AnswerRequest request;
    request.set_session_id(session);
    request.set_turn_id(turn);
    request.set_text(text);
    request.set_channel(common::v1::CHANNEL_CHAT);
    bot::v1::AnswerResponse response;
    grpc::Status status =
        stub.Answer(Context(Token(auth::Role::kService, "sessions")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << text << ": " << status.error_message();
    return response;
  }

  void ExpectServing() {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::health::v1::HealthCheckRequest check;
    check.set_service("switchboard.bot.v1.BotService");
    grpc::health::v1::HealthCheckResponse serving;
    grpc::ClientContext context;
    ASSERT_TRUE(health->Check(&context, check, &serving).ok());
    EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }

  // Scrapes until `needle` shows up (a call is counted when the server sees
  // it close), up to 5 s.
  std::string MetricsWith(const testing::ServerProcess& server, const std::string& needle) {
    std::string metrics;
    for (int i = 0; i < 100 && !absl::StrContains(metrics, needle); ++i) {
      metrics = metrics::ScrapeMetrics("127.0.0.1", server.metrics_port()).value_or("");
      usleep(50'000);
    }
    return metrics;
  }

  std::string data_dir_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(BotProcessTest, AnswersBothLanguagesEscalatesReloadsAndRestartsOnTheSameBase) {
  std::string version;
  {
    testing::ServerProcess server(kBinary, Flags(), data_dir_ + "/first.log");
    ASSERT_GT(server.grpc_port(), 0) << server.log();
    auto stub = Connect(server);
    ExpectServing();

    bot::v1::AnswerResponse english = Ask(*stub, "s-en", "m-1", "my withdrawal is pending");
    EXPECT_EQ(english.outcome(), bot::v1::ANSWER_OUTCOME_ANSWERED);
    EXPECT_EQ(english.answered_intent_id(), "withdrawal_pending");
    EXPECT_EQ(english.reply_language(), "en");
    EXPECT_FALSE(english.reply_text().empty());
    version = english.knowledge_base_version();
    EXPECT_FALSE(version.empty());

    bot::v1::AnswerResponse chinese = Ask(*stub, "s-zh", "m-1", "充值没到账");
    EXPECT_EQ(chinese.outcome(), bot::v1::ANSWER_OUTCOME_ANSWERED);
    EXPECT_EQ(chinese.answered_intent_id(), "deposit_not_credited");
    EXPECT_EQ(chinese.reply_language(), "zh-CN");
    EXPECT_EQ(chinese.category(), common::v1::CATEGORY_DEPOSIT);

    // An explicit request for a human always escalates, with the context.
    bot::v1::AnswerResponse human =
        Ask(*stub, "s-en", "m-2", "I want to talk to a real person");
    EXPECT_EQ(human.outcome(), bot::v1::ANSWER_OUTCOME_ESCALATED);
    EXPECT_EQ(human.handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
    EXPECT_EQ(human.handoff().category(), common::v1::CATEGORY_WITHDRAWAL);

    // Reloading the unchanged file keeps the same version.
    bot::v1::ReloadKnowledgeBaseResponse reload;
    ASSERT_TRUE(stub->ReloadKnowledgeBase(Context(Token(auth::Role::kSupervisor, "sup")).get(),
                                          {}, &reload)
                    .ok());
    EXPECT_EQ(reload.version(), version);
    EXPECT_EQ(reload.previous_version(), version);
    EXPECT_GT(reload.intent_count(), 0);

    const std::string handled =
        "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"ReloadKnowledgeBase\","
        "grpc_service=\"switchboard.bot.v1.BotService\",grpc_type=\"unary\"} 1";
    const std::string metrics = MetricsWith(server, handled);
    EXPECT_TRUE(absl::StrContains(metrics, handled)) << metrics;
    EXPECT_TRUE(absl::StrContains(
        metrics, "switchboard_bot_answers_total{category=\"withdrawal\",outcome=\"answered\"} 1"))
        << metrics;
    EXPECT_TRUE(absl::StrContains(
        metrics, "switchboard_bot_answers_total{category=\"deposit\",outcome=\"answered\"} 1"));
    EXPECT_TRUE(absl::StrContains(
        metrics, "switchboard_bot_escalations_total{reason=\"customer_requested\"} 1"));
    // At start and by the call.
    EXPECT_TRUE(absl::StrContains(
        metrics, "switchboard_bot_knowledge_base_reloads_total{result=\"ok\"} 2"));
    EXPECT_TRUE(absl::StrContains(
        metrics, absl::StrCat("switchboard_bot_knowledge_base_intents ", reload.intent_count())));

    EXPECT_EQ(server.Terminate(absl::Seconds(8)), 0) << server.log();
  }

  // Every turn reached the event file before the process exited, without
  // the customer's text.
  const std::string events = testing::ReadFile(data_dir_ + "/events/bot.jsonl");
  int turns = 0;
  for (absl::string_view line : absl::StrSplit(events, '\n', absl::SkipEmpty())) {
    if (absl::StrContains(line, "\"type\":\"bot.turn_completed\"")) ++turns;
  }
  EXPECT_EQ(turns, 3) << events;
  EXPECT_TRUE(absl::StrContains(events, "\"type\":\"bot.knowledge_base_reload\""));
  EXPECT_TRUE(absl::StrContains(events, "\"key\":\"s-zh\""));
  EXPECT_FALSE(absl::StrContains(events, "my withdrawal is pending")) << events;
  EXPECT_FALSE(absl::StrContains(events, "real person")) << events;

  testing::ServerProcess restarted(kBinary, Flags(), data_dir_ + "/second.log");
  ASSERT_GT(restarted.grpc_port(), 0) << restarted.log();
  auto stub = Connect(restarted);
  ExpectServing();
  bot::v1::ListIntentsRequest list;
  list.set_page_size(1);
  bot::v1::ListIntentsResponse listed;
  ASSERT_TRUE(
      stub->ListIntents(Context(Token(auth::Role::kAgent, "ana")).get(), list, &listed).ok());
  EXPECT_EQ(listed.knowledge_base_version(), version);
  EXPECT_EQ(listed.intents_size(), 1);
  // A new turn after the restart is answered from the same base.
  bot::v1::AnswerResponse again = Ask(*stub, "s-zh", "m-2", "充值没到账");
  EXPECT_EQ(again.answered_intent_id(), "deposit_not_credited");
  EXPECT_EQ(again.knowledge_base_version(), version);
  EXPECT_EQ(restarted.Terminate(absl::Seconds(8)), 0) << restarted.log();
}

// Started from a folder without the repository and without
// --knowledge_base, the bot answers from the base built into it, the same
// version as the file's. Either way it loads the models trained when the
// binary was built (the file has the same content) instead of training.
TEST_F(BotProcessTest, StartsFromAnyDirectoryWithTheBuiltInBase) {
  constexpr char kBuiltModels[] = "\"models\":\"built with the binary\"";
  std::string file_version;
  {
    testing::ServerProcess server(kBinary, Flags(), data_dir_ + "/file.log");
    ASSERT_GT(server.grpc_port(), 0) << server.log();
    auto stub = Connect(server);
    file_version = Ask(*stub, "s-1", "m-1", "充值没到账").knowledge_base_version();
    EXPECT_EQ(server.Terminate(absl::Seconds(8)), 0) << server.log();
    EXPECT_TRUE(absl::StrContains(server.log(), kBuiltModels)) << server.log();
  }
  std::vector<std::string> flags = Flags();
  flags.pop_back();  // --knowledge_base
  char previous[4096];
  ASSERT_NE(getcwd(previous, sizeof(previous)), nullptr);
  const std::string elsewhere = storage::MakeTempDir();
  ASSERT_EQ(chdir(elsewhere.c_str()), 0);
  testing::ServerProcess server(kBinary, flags, data_dir_ + "/built_in.log");
  ASSERT_EQ(chdir(previous), 0);
  ASSERT_GT(server.grpc_port(), 0) << server.log();
  auto stub = Connect(server);
  bot::v1::AnswerResponse answer = Ask(*stub, "s-2", "m-1", "my withdrawal is pending");
  EXPECT_EQ(answer.answered_intent_id(), "withdrawal_pending");
  EXPECT_EQ(answer.knowledge_base_version(), file_version);
  EXPECT_EQ(server.Terminate(absl::Seconds(8)), 0) << server.log();
  EXPECT_TRUE(absl::StrContains(server.log(), kBuiltModels)) << server.log();
}

}  // namespace
}  // namespace switchboard
