// The presence binary as operators run it: started as a process with a fresh
// data folder, health-checked, called, stopped with SIGTERM, restarted.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/metrics/scrape.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"

namespace switchboard {
namespace {

using presence::v1::PresenceService;

constexpr char kBinary[] = "services/presence/presence_server";

class PresenceProcessTest : public ::testing::Test {
 protected:
  PresenceProcessTest() : data_dir_(storage::MakeTempDir()) {}

  std::vector<std::string> Flags() const {
    return {"--data_dir=" + data_dir_, "--port=0", "--metrics_port=0",
            "--bind_address=127.0.0.1", "--drain_deadline=3s"};
  }

  std::unique_ptr<PresenceService::Stub> Connect(const testing::ServerProcess& server) {
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.grpc_port()),
                                   grpc::InsecureChannelCredentials());
    return PresenceService::NewStub(channel_);
  }

  std::string Token(auth::Role role, const std::string& subject) {
    // The server made the development keys in its data folder.
    return testing::TestTokens::FromFolder(data_dir_ + "/keys", "presence").For(role, subject);
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
    testing::ServerProcess server(kBinary, Flags(), data_dir_ + "/first.log");
    ASSERT_GT(server.grpc_port(), 0) << server.log();
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

    EXPECT_EQ(server.Terminate(absl::Seconds(8)), 0) << server.log();
    while (watch->Read(&message)) {
    }
    EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }

  // The status change reached the event file before the process exited.
  const std::string events = testing::ReadFile(data_dir_ + "/events/presence.jsonl");
  EXPECT_NE(events.find("\"type\":\"presence.agent_status_changed\""), std::string::npos);
  EXPECT_NE(events.find("\"key\":\"ana\""), std::string::npos);

  testing::ServerProcess restarted(kBinary, Flags(), data_dir_ + "/second.log");
  ASSERT_GT(restarted.grpc_port(), 0) << restarted.log();
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
