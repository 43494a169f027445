// The presence binary as operators run it: started as a process with a fresh
// data folder, health-checked, called, stopped with SIGTERM, restarted.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/token.h"
#include "libs/metrics/scrape.h"
#include "libs/storage/test_dir.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"

namespace switchboard {
namespace {

using presence::v1::PresenceService;

// A child process whose stderr goes to a file we can read.
class ServerProcess {
 public:
  ServerProcess(const std::string& data_dir, const std::string& log_path) {
    const std::string binary = absl::StrCat(std::getenv("TEST_SRCDIR"),
                                            "/switchboard/services/presence/presence_server");
    pid_ = fork();
    if (pid_ == 0) {
      int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(log, STDERR_FILENO);
      const std::string data_flag = "--data_dir=" + data_dir;
      execl(binary.c_str(), binary.c_str(), data_flag.c_str(), "--port=0",
            "--metrics_port=0", "--bind_address=127.0.0.1", "--drain_deadline=3s",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    // The server logs its ports once it listens.
    const std::regex started("\"grpc_port\":([0-9]+),\"metrics_port\":([0-9]+)");
    for (int i = 0; i < 300 && grpc_port_ == 0; ++i) {
      std::ifstream in(log_path);
      std::stringstream text;
      text << in.rdbuf();
      std::smatch match;
      const std::string log = text.str();
      if (std::regex_search(log, match, started)) {
        grpc_port_ = std::stoi(match[1]);
        metrics_port_ = std::stoi(match[2]);
      } else {
        usleep(50'000);
      }
    }
  }

  ~ServerProcess() {
    if (pid_ > 0 && !stopped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Sends SIGTERM and returns the exit code, or -1 if it did not exit
  // within `limit` (then it is killed).
  int Terminate(absl::Duration limit) {
    kill(pid_, SIGTERM);
    const absl::Time give_up = absl::Now() + limit;
    int status = 0;
    while (absl::Now() < give_up) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        stopped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      usleep(20'000);
    }
    return -1;
  }

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }

 private:
  pid_t pid_ = -1;
  bool stopped_ = false;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class PresenceProcessTest : public ::testing::Test {
 protected:
  PresenceProcessTest() : data_dir_(storage::MakeTempDir()) {}

  std::unique_ptr<PresenceService::Stub> Connect(const ServerProcess& server) {
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.grpc_port()),
                                   grpc::InsecureChannelCredentials());
    return PresenceService::NewStub(channel_);
  }

  std::string Token(auth::Role role, const std::string& subject) {
    // The server created the development key in its data folder.
    auto key = auth::LoadOrCreateKey(data_dir_ + "/token.key", false);
    EXPECT_TRUE(key.ok()) << key.status();
    auth::TokenCodec codec(*key);
    return *auth::MintAccessToken(codec, {subject, role, absl::Now() + absl::Hours(1)},
                                  absl::Now());
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  std::string data_dir_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(PresenceProcessTest, ServesDrainsOnSigtermAndKeepsStateAcrossRestarts) {
  {
    ServerProcess server(data_dir_, data_dir_ + "/first.log");
    ASSERT_GT(server.grpc_port(), 0) << ReadFile(data_dir_ + "/first.log");
    auto stub = Connect(server);

    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::health::v1::HealthCheckRequest check;
    check.set_service("switchboard.presence.v1.PresenceService");
    grpc::health::v1::HealthCheckResponse serving;
    grpc::ClientContext health_context;
    ASSERT_TRUE(health->Check(&health_context, check, &serving).ok());
    EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);

    presence::v1::SetStatusRequest request;
    request.set_status(presence::v1::AGENT_STATUS_BUSY);
    presence::v1::SetStatusResponse response;
    ASSERT_TRUE(stub->SetStatus(Context(Token(auth::Role::kAgent, "ana")).get(), request,
                                &response)
                    .ok());

    // Counted when the server sees the call close: poll briefly.
    const std::string handled =
        "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"SetStatus\","
        "grpc_service=\"switchboard.presence.v1.PresenceService\",grpc_type=\"unary\"} 1";
    std::string metrics;
    for (int attempt = 0; attempt < 100 && metrics.find(handled) == std::string::npos;
         ++attempt) {
      metrics = metrics::ScrapeMetrics("127.0.0.1", server.metrics_port()).value_or("");
      usleep(50'000);
    }
    EXPECT_NE(metrics.find(handled), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("switchboard_presence_agents{status=\"busy\"} 1"), std::string::npos);

    // A watcher open at shutdown is ended with a clear status.
    auto watch_context = Context(Token(auth::Role::kService, "routing"));
    auto watch = stub->WatchPresence(watch_context.get(), {});
    presence::v1::WatchPresenceResponse message;
    ASSERT_TRUE(watch->Read(&message));

    EXPECT_EQ(server.Terminate(absl::Seconds(8)), 0) << ReadFile(data_dir_ + "/first.log");
    while (watch->Read(&message)) {
    }
    EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }

  // The status change reached the event file before the process exited.
  const std::string events = ReadFile(data_dir_ + "/events/presence.jsonl");
  EXPECT_NE(events.find("\"type\":\"presence.agent_status_changed\""), std::string::npos);
  EXPECT_NE(events.find("\"key\":\"ana\""), std::string::npos);

  ServerProcess restarted(data_dir_, data_dir_ + "/second.log");
  ASSERT_GT(restarted.grpc_port(), 0) << ReadFile(data_dir_ + "/second.log");
  auto stub = Connect(restarted);
  presence::v1::GetAgentRequest get;
  get.set_agent_id("ana");
  presence::v1::GetAgentResponse agent;
  ASSERT_TRUE(
      stub->GetAgent(Context(Token(auth::Role::kSupervisor, "sup")).get(), get, &agent).ok());
  EXPECT_EQ(agent.agent().status(), presence::v1::AGENT_STATUS_BUSY);
  EXPECT_EQ(restarted.Terminate(absl::Seconds(8)), 0);
}

}  // namespace
}  // namespace switchboard
