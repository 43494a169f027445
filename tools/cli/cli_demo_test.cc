// `switchboard demo` against real presence, routing, sessions, bot and
// feedback processes: once with a short presence lease (agent one's lease
// really lapses), once forcing the SetStatus OFFLINE drop; both print the
// timeline and the response-time figures. Also the CLI's exit codes for a
// bad command, bad flags and a failing call, and attachments from a
// customer to an agent, scanned by a real clamd.
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "libs/auth/key_folder.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/clamd/clamd.h"
#include "libs/testing/process.h"
#include "libs/testing/reserved_port.h"
#include "tools/cli/cli.h"

namespace switchboard::cli {
namespace {

struct Result {
  int code;
  std::string out;
  std::string err;
};

class CliDemoTest : public ::testing::Test {
 protected:
  // Ports: each server listens on port 0 and reports the port it got, and
  // is started after the servers it calls, except routing and sessions,
  // which call each other: routing's port is reserved before sessions
  // starts. Identity's address is a reserved port nobody listens on.
  static void SetUpTestSuite() {
    dir_ = new std::string(storage::MakeTempDir());
    // The development keys every server and the CLI read.
    ASSERT_TRUE(auth::EnsureKeyFolder(*dir_ + "/keys").ok());
    routing_port_ = new testing::ReservedPort();
    no_identity_ = new testing::ReservedPort();
    const auto flags = [](int port, std::vector<std::string> more) {
      more.insert(more.end(), {"--data_dir=" + *dir_, absl::StrCat("--port=", port),
                               "--metrics_port=0", "--bind_address=127.0.0.1",
                               "--drain_deadline=3s"});
      return more;
    };
    const std::string srcdir = std::getenv("TEST_SRCDIR");
    servers_ = new std::vector<std::unique_ptr<testing::ServerProcess>>();
    const auto start = [](const std::string& name, std::vector<std::string> flags) {
      servers_->push_back(std::make_unique<testing::ServerProcess>(
          absl::StrCat("services/", name, "/", name, "_server"), std::move(flags),
          absl::StrCat(*dir_, "/", name, ".log")));
      return servers_->back()->address();
    };
    const std::string bot = start(
        "bot",
        flags(0, {"--knowledge_base=" + srcdir + "/switchboard/services/bot/kb/intents.kb"}));
    const std::string presence =
        start("presence", flags(0, {"--lease=3s", "--sweep_interval=200ms"}));
    const std::string routing = routing_port_->address();
    clamd_ = new testing::ClamdServer();
    const std::string sessions =
        start("sessions", flags(0, {"--bot_address=" + bot, "--routing_address=" + routing,
                                    "--routing_retry_interval=200ms",
                                    "--sweep_interval=200ms",
                                    "--clamd_address=" + clamd_->unix_address(),
                                    "--scan_interval=200ms"}));
    start("routing", flags(routing_port_->port(),
                           {"--presence_address=" + presence, "--sessions_address=" + sessions,
                            "--dispatch_interval=100ms"}));
    const std::string feedback = start(
        "feedback", flags(0, {"--sessions_address=" + sessions, "--routing_address=" + routing}));
    common_ = new std::vector<std::string>{
        "--data_dir=" + *dir_,
        "--sessions_address=" + sessions,
        "--routing_address=" + routing,
        "--bot_address=" + bot,
        "--presence_address=" + presence,
        "--feedback_address=" + feedback,
        // Nothing listens here: calls to identity fail with UNAVAILABLE.
        "--identity_address=" + no_identity_->address(),
        "--deadline=3s"};
  }

  static void TearDownTestSuite() {
    for (auto& server : *servers_) EXPECT_EQ(server->Terminate(absl::Seconds(10)), 0);
    delete servers_;
    delete clamd_;
    delete common_;
    delete routing_port_;
    delete no_identity_;
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
  static testing::ReservedPort* routing_port_;
  static testing::ReservedPort* no_identity_;
  static testing::ClamdServer* clamd_;
  static std::vector<std::unique_ptr<testing::ServerProcess>>* servers_;
  static std::vector<std::string>* common_;
};

std::string* CliDemoTest::dir_ = nullptr;
testing::ReservedPort* CliDemoTest::routing_port_ = nullptr;
testing::ReservedPort* CliDemoTest::no_identity_ = nullptr;
testing::ClamdServer* CliDemoTest::clamd_ = nullptr;
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
  // The supervisor views below need agents and a queue: a quick demo run
  // makes them, whichever order the tests run in.
  Result demo = Cli({"demo", "--max_lapse_wait=0s"});
  ASSERT_EQ(demo.code, 0) << demo.out << demo.err;
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

  // A supervisor sets an agent up; once the agent is online, their queue
  // shows (empty queues appear only while someone online could serve them).
  Result profiled = Cli({"supervisor", "profile", "cli-agent", "--categories=deposit",
                         "--languages=en", "--capacity=chat:2"});
  ASSERT_EQ(profiled.code, 0) << profiled.err;
  EXPECT_NE(profiled.out.find("cli-agent  offline  [deposit] [en]  load chat 0/2"),
            std::string::npos)
      << profiled.out;
  Result online;
  std::thread agent([&] { online = Cli({"agent", "online", "--as=cli-agent", "--for=4s"}); });
  Result queues;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(4); absl::Now() < give_up;
       absl::SleepFor(absl::Milliseconds(100))) {
    queues = Cli({"supervisor", "queues"});
    if (queues.out.find("chat/deposit/en: depth") != std::string::npos) break;
  }
  agent.join();
  EXPECT_EQ(online.code, 0) << online.err;
  EXPECT_NE(online.out.find("cli-agent  online  [deposit] [en]"), std::string::npos)
      << online.out;
  EXPECT_EQ(queues.code, 0) << queues.err;
  EXPECT_NE(queues.out.find("chat/deposit/en: depth"), std::string::npos) << queues.out;
  // An agent cannot take more than the supervisor allowed.
  Result greedy = Cli({"agent", "online", "--as=cli-agent", "--capacity=chat:5", "--for=0s"});
  EXPECT_EQ(greedy.code, 1);
  EXPECT_EQ(greedy.err.rfind("error: PERMISSION_DENIED: capacities.capacity", 0), 0u)
      << greedy.err;
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

std::string FirstWord(const std::string& text) { return text.substr(0, text.find_first_of(" \n")); }

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A customer attaches a file and the EICAR test file; clamd passes one and
// rejects the other; an agent who took the session downloads the first and
// is refused the second.
TEST_F(CliDemoTest, AttachmentsFromCustomerToAgent) {
  // The agent takes whatever the bot hands over (it picks the category), with
  // room for sessions other tests left queued.
  Result profiled = Cli({"supervisor", "profile", "file-agent",
                         "--categories=account_security,deposit,withdrawal,trading,kyc,"
                         "technical,frozen_funds,general",
                         "--languages=en", "--capacity=chat:20"});
  ASSERT_EQ(profiled.code, 0) << profiled.err;
  Result opened = Cli({"customer", "open", "--as=file-cust", "--category=kyc", "--language=en"});
  ASSERT_EQ(opened.code, 0) << opened.err;
  const std::string session = FirstWord(opened.out);

  const std::string proof = *dir_ + "/proof.txt";
  WriteFile(proof, "transfer reference 20261202-0042\n");
  const std::vector<std::string> attach = {"customer", "attach", session, proof,
                                           "--message=my transfer reference", "--as=file-cust"};
  Result attached = Cli(attach);
  ASSERT_EQ(attached.code, 0) << attached.err << Logs();
  EXPECT_NE(attached.out.find("  proof.txt  text/plain  33 bytes  PENDING_SCAN\nsent #"),
            std::string::npos)
      << attached.out;
  const std::string attachment = FirstWord(attached.out);
  // Again, as after a lost answer: the same file and message, neither twice.
  Result again = Cli(attach);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(FirstWord(again.out), attachment);
  EXPECT_NE(again.err.find("uploaded by an earlier run"), std::string::npos) << again.err;
  EXPECT_NE(again.out.find("(sent by an earlier run)"), std::string::npos) << again.out;

  WriteFile(*dir_ + "/notes.bin", "notes");
  Result untyped = Cli({"customer", "attach", session, *dir_ + "/notes.bin", "--as=file-cust"});
  EXPECT_EQ(untyped.code, 2);
  EXPECT_NE(untyped.err.find("give it with --type"), std::string::npos) << untyped.err;
  // The server sniffs the bytes: text declared as PNG is refused.
  Result mistyped =
      Cli({"customer", "attach", session, proof, "--type=image/png", "--as=file-cust"});
  EXPECT_EQ(mistyped.code, 1);
  EXPECT_EQ(mistyped.err.rfind("error: INVALID_ARGUMENT: ", 0), 0u) << mistyped.err;

  WriteFile(*dir_ + "/eicar.txt", testing::Eicar());
  Result infected = Cli({"customer", "attach", session, *dir_ + "/eicar.txt", "--as=file-cust"});
  ASSERT_EQ(infected.code, 0) << infected.err;
  const std::string rejected = FirstWord(infected.out);

  // The verdicts arrive on the session's stream.
  Result events;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(15); absl::Now() < give_up;) {
    events = Cli({"customer", "chat", session, "--as=file-cust", "--linger=300ms"});
    if (events.out.find(" is CLEAN") != std::string::npos &&
        events.out.find(" is REJECTED") != std::string::npos) {
      break;
    }
  }
  EXPECT_NE(events.out.find("customer file-cust: my transfer reference [file proof.txt, "),
            std::string::npos)
      << events.out;
  EXPECT_NE(events.out.find("file proof.txt (" + attachment + ") is CLEAN"), std::string::npos)
      << events.out << Logs();
  EXPECT_NE(events.out.find("file eicar.txt (" + rejected + ") is REJECTED: " +
                            testing::kEicarSignature),
            std::string::npos)
      << events.out;

  // An agent not on the session sees nothing.
  Result stranger = Cli({"agent", "attachment", "get", session, attachment, "--as=file-stranger"});
  EXPECT_EQ(stranger.code, 1);
  EXPECT_EQ(stranger.err.rfind("error: NOT_FOUND: ", 0), 0u) << stranger.err;

  // The customer asks for a human; the agent takes the session.
  Result online;
  std::thread agent([&] {
    online = Cli({"agent", "online", "--as=file-agent", "--auto_accept", "--for=5s"});
  });
  Result escalated =
      Cli({"customer", "say", session, "I want to talk to a human agent", "--as=file-cust"});
  EXPECT_EQ(escalated.code, 0) << escalated.err;
  Result shown;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(4); absl::Now() < give_up;
       absl::SleepFor(absl::Milliseconds(100))) {
    shown = Cli({"customer", "show", session, "--as=file-cust"});
    if (shown.out.find("  assigned  ") != std::string::npos) break;
  }
  EXPECT_NE(shown.out.find("agent file-agent"), std::string::npos) << shown.out;

  // Into the current folder under the file's own name, once.
  const std::string downloads = storage::MakeTempDir();
  char* here = getcwd(nullptr, 0);
  ASSERT_EQ(chdir(downloads.c_str()), 0);
  const std::vector<std::string> get = {"agent", "attachment", "get", session, attachment,
                                        "--as=file-agent"};
  Result got = Cli(get);
  Result twice = Cli(get);
  WriteFile("proof.txt", "something else");
  std::vector<std::string> forced = get;
  forced.push_back("--force");
  Result overwritten = Cli(forced);
  EXPECT_EQ(chdir(here), 0);
  free(here);
  EXPECT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(got.out.rfind("wrote proof.txt (SHA-256 checked): " + attachment, 0), 0u) << got.out;
  EXPECT_EQ(twice.code, 1);
  EXPECT_EQ(twice.err,
            "error: ALREADY_EXISTS: proof.txt exists; pass --force to overwrite it, or "
            "--out=PATH\n");
  EXPECT_EQ(overwritten.code, 0) << overwritten.err;
  EXPECT_EQ(testing::ReadFile(downloads + "/proof.txt"), "transfer reference 20261202-0042\n");
  Result json = Cli({"agent", "attachment", "get", session, attachment, "--as=file-agent",
                     "--out=" + downloads + "/copy.txt", "--json"});
  EXPECT_EQ(json.code, 0) << json.err;
  EXPECT_EQ(json.out.rfind("{\"path\":\"" + downloads + "/copy.txt\",\"attachment\":{", 0), 0u)
      << json.out;
  EXPECT_EQ(testing::ReadFile(downloads + "/copy.txt"), "transfer reference 20261202-0042\n");

  Result refused = Cli({"agent", "attachment", "get", session, rejected, "--as=file-agent",
                        "--out=" + downloads + "/eicar.txt"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_EQ(refused.err.rfind("error: FAILED_PRECONDITION: attachment is REJECTED", 0), 0u)
      << refused.err;
  EXPECT_NE(access((downloads + "/eicar.txt").c_str(), F_OK), 0);
  agent.join();
  EXPECT_EQ(online.code, 0) << online.err;
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
