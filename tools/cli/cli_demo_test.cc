// `switchboard demo` against real presence, routing, sessions, bot and
// feedback processes: once with a short presence lease (agent one's lease
// really lapses), once forcing the SetStatus OFFLINE drop; both print the
// timeline and the response-time figures. Also the CLI's exit codes for a
// bad command, bad flags and a failing call.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/token.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "tools/cli/cli.h"

namespace switchboard::cli {
namespace {

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

struct Result {
  int code;
  std::string out;
  std::string err;
};

class CliDemoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(storage::MakeTempDir());
    ASSERT_TRUE(auth::LoadOrCreateKey(*dir_ + "/token.key", true).ok());
    const int presence = FreePort(), routing = FreePort(), sessions = FreePort(),
              bot = FreePort(), feedback = FreePort();
    const auto flags = [](int port, std::vector<std::string> more) {
      more.insert(more.end(), {"--data_dir=" + *dir_, absl::StrCat("--port=", port),
                               "--metrics_port=0", "--bind_address=127.0.0.1",
                               "--drain_deadline=3s"});
      return more;
    };
    const auto at = [](int port) { return absl::StrCat("127.0.0.1:", port); };
    const std::string srcdir = std::getenv("TEST_SRCDIR");
    servers_ = new std::vector<std::unique_ptr<testing::ServerProcess>>();
    servers_->push_back(std::make_unique<testing::ServerProcess>(
        "services/bot/bot_server",
        flags(bot, {"--knowledge_base=" + srcdir + "/switchboard/services/bot/kb/intents.kb"}),
        *dir_ + "/bot.log"));
    servers_->push_back(std::make_unique<testing::ServerProcess>(
        "services/presence/presence_server",
        flags(presence, {"--lease=3s", "--sweep_interval=200ms"}), *dir_ + "/presence.log"));
    servers_->push_back(std::make_unique<testing::ServerProcess>(
        "services/routing/routing_server",
        flags(routing, {"--presence_address=" + at(presence), "--sessions_address=" + at(sessions),
                        "--dispatch_interval=100ms"}),
        *dir_ + "/routing.log"));
    servers_->push_back(std::make_unique<testing::ServerProcess>(
        "services/sessions/sessions_server",
        flags(sessions, {"--bot_address=" + at(bot), "--routing_address=" + at(routing),
                         "--routing_retry_interval=200ms", "--sweep_interval=200ms"}),
        *dir_ + "/sessions.log"));
    servers_->push_back(std::make_unique<testing::ServerProcess>(
        "services/feedback/feedback_server",
        flags(feedback, {"--sessions_address=" + at(sessions), "--routing_address=" + at(routing)}),
        *dir_ + "/feedback.log"));
    common_ = new std::vector<std::string>{
        "--data_dir=" + *dir_,
        "--sessions_address=" + at(sessions),
        "--routing_address=" + at(routing),
        "--bot_address=" + at(bot),
        "--presence_address=" + at(presence),
        "--feedback_address=" + at(feedback),
        // Nothing listens here: calls to identity fail with UNAVAILABLE.
        "--identity_address=" + at(FreePort()),
        "--deadline=3s"};
  }

  static void TearDownTestSuite() {
    for (auto& server : *servers_) EXPECT_EQ(server->Terminate(absl::Seconds(10)), 0);
    delete servers_;
    delete common_;
    delete dir_;
  }

  void SetUp() override {
    for (auto& server : *servers_) ASSERT_GT(server->grpc_port(), 0) << server->log();
  }

  static Result Cli(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.end(), common_->begin(), common_->end());
    std::istringstream in(input);
    std::ostringstream out, err;
    Io io{in, out, err};
    const int code = cli::Run(args, io);
    return {code, out.str(), err.str()};
  }

  static std::string Logs() {
    std::string logs;
    for (auto& server : *servers_) logs += server->log();
    return logs;
  }

  static std::string* dir_;
  static std::vector<std::unique_ptr<testing::ServerProcess>>* servers_;
  static std::vector<std::string>* common_;
};

std::string* CliDemoTest::dir_ = nullptr;
std::vector<std::unique_ptr<testing::ServerProcess>>* CliDemoTest::servers_ = nullptr;
std::vector<std::string>* CliDemoTest::common_ = nullptr;

TEST_F(CliDemoTest, DemoWithARealPresenceLapse) {
  Result result = Cli({"demo"});
  ASSERT_EQ(result.code, 0) << result.out << result.err << Logs();
  std::printf("%s", result.out.c_str());
  for (const char* expected :
       {"timeline", "bot       answers", "says \"I want to talk to a human agent\"",
        "routing   offers the session to ana", "ana       accepts the offer",
        "drops off the network: heartbeats stop", "queued -> assigned (assigned, agent demo-ben",
        "assigned -> queued (agent_unavailable)", "ben       resolves the session",
        "customer  rates it", "response-time figures", "time to first human response",
        "queue wait 1", "queue wait 2", "time to resolution"}) {
    EXPECT_NE(result.out.find(expected), std::string::npos) << expected << "\n" << result.out;
  }
}

TEST_F(CliDemoTest, DemoSimulatesTheDropWhenTheLeaseIsTooLongToWaitFor) {
  Result result = Cli({"demo", "--max_lapse_wait=0s", "--json"});
  ASSERT_EQ(result.code, 0) << result.out << result.err << Logs();
  EXPECT_NE(result.out.find("goes OFFLINE with SetStatus (simulated"), std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("\"figures\":{\"bot_answer_ms\":"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("\"queue_wait_2_ms\":"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("\"resolution_ms\":"), std::string::npos) << result.out;
  // Every line is a JSON object.
  std::istringstream lines(result.out);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(!line.empty() && line.front() == '{' && line.back() == '}') << line;
  }
}

TEST_F(CliDemoTest, CommandsAgainstTheRunningServices) {
  Result opened = Cli({"customer", "open", "--as=cli-cust", "--category=deposit",
                       "--text=How long do deposits take to arrive?"});
  ASSERT_EQ(opened.code, 0) << opened.err;
  const std::string session = opened.out.substr(0, opened.out.find('\n'));
  ASSERT_FALSE(session.empty());
  Result said = Cli({"customer", "say", session, "thanks", "--as=cli-cust"});
  EXPECT_EQ(said.code, 0) << said.err;
  EXPECT_NE(said.out.find("sent #"), std::string::npos) << said.out;
  Result chat = Cli({"customer", "chat", session, "--as=cli-cust", "--linger=500ms"},
                    "one more line\n");
  EXPECT_EQ(chat.code, 0) << chat.err;
  EXPECT_NE(chat.out.find("customer cli-cust: How long do deposits take to arrive?"),
            std::string::npos)
      << chat.out;
  EXPECT_NE(chat.out.find("bot: "), std::string::npos) << chat.out;
  EXPECT_NE(chat.out.find("customer cli-cust: one more line"), std::string::npos) << chat.out;

  // Another customer sees nothing: NOT_FOUND, exit 1.
  Result other = Cli({"customer", "show", session, "--as=someone-else"});
  EXPECT_EQ(other.code, 1);
  EXPECT_EQ(other.err.rfind("error: NOT_FOUND: ", 0), 0u) << other.err;

  Result queues = Cli({"supervisor", "queues"});
  EXPECT_EQ(queues.code, 0) << queues.err;
  EXPECT_NE(queues.out.find("chat/deposit/en: depth"), std::string::npos) << queues.out;
  Result agents = Cli({"supervisor", "agents", "--json"});
  EXPECT_EQ(agents.code, 0) << agents.err;
  EXPECT_NE(agents.out.find("\"agent_id\":\"demo-"), std::string::npos) << agents.out;
  Result summary = Cli({"supervisor", "summary", "--by=agent"});
  EXPECT_EQ(summary.code, 0) << summary.err;
  EXPECT_NE(summary.out.find("ratings "), std::string::npos) << summary.out;

  // Identity is down: UNAVAILABLE, exit 1.
  Result verify = Cli({"customer", "verify", "--code=123456"});
  EXPECT_EQ(verify.code, 1);
  EXPECT_EQ(verify.err.rfind("error: UNAVAILABLE: ", 0), 0u) << verify.err;
}

TEST_F(CliDemoTest, BadUsageExitsTwo) {
  EXPECT_EQ(Cli({"nonsense"}).code, 2);
  EXPECT_EQ(Cli({"customer", "fly"}).code, 2);
  Result missing = Cli({"customer", "say", "s-1"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("usage: switchboard customer say SESSION TEXT"), std::string::npos);
  Result bad_enum = Cli({"customer", "open", "--channel=fax"});
  EXPECT_EQ(bad_enum.code, 2);
  EXPECT_EQ(bad_enum.err.rfind("error: INVALID_ARGUMENT: --channel: unknown value \"fax\"", 0), 0u)
      << bad_enum.err;
  EXPECT_EQ(Cli({"agent", "online", "--capacity=chat"}).code, 2);
  EXPECT_EQ(Cli({"customer", "open", "--no_such_flag=1"}).code, 2);
  Result help = Cli({"help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("demo"), std::string::npos);
}

}  // namespace
}  // namespace switchboard::cli
