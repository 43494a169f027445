// The feedback binary as operators run it: started as a process with a fresh
// data folder and its peers down, health-checked, called, stopped with
// SIGTERM, restarted with its state (and its debt to routing) intact.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/metrics/scrape.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/feedback/v1/feedback_service.grpc.pb.h"

namespace switchboard::feedback {
namespace {

constexpr char kBinary[] = "services/feedback/feedback_server";

class FeedbackProcessTest : public ::testing::Test {
 protected:
  FeedbackProcessTest() : data_dir_(storage::MakeTempDir()) {}

  // Sessions and routing are unreachable (port 1 refuses connections).
  std::vector<std::string> Flags() const {
    return {"--data_dir=" + data_dir_,      "--port=0",
            "--metrics_port=0",             "--bind_address=127.0.0.1",
            "--drain_deadline=3s",          "--sessions_address=127.0.0.1:1",
            "--routing_address=127.0.0.1:1", "--routing_sync_interval=100ms",
            "--peer_timeout=500ms"};
  }

  std::unique_ptr<v1::FeedbackService::Stub> Connect(const testing::ServerProcess& server) {
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.grpc_port()),
                                   grpc::InsecureChannelCredentials());
    return v1::FeedbackService::NewStub(channel_);
  }

  std::string Token(auth::Role role, const std::string& subject) {
    // The server made the development keys in its data folder.
    return testing::TestTokens::FromFolder(data_dir_ + "/keys", "feedback").For(role, subject);
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  // Polls /metrics until it holds `line`; returns whether it did.
  static bool MetricsShow(const testing::ServerProcess& server, const std::string& line,
                          std::string* last) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      *last = metrics::ScrapeMetrics("127.0.0.1", server.metrics_port()).value_or("");
      if (last->find(line) != std::string::npos) return true;
      usleep(50'000);
    }
    return false;
  }

  std::string data_dir_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(FeedbackProcessTest, ServesWithPeersDownDrainsAndKeepsComplaintsAcrossRestarts) {
  std::string complaint_id;
  std::string metrics;
  {
    testing::ServerProcess server(kBinary, Flags(), data_dir_ + "/first.log");
    ASSERT_GT(server.grpc_port(), 0) << server.log();
    auto stub = Connect(server);

    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::health::v1::HealthCheckRequest check;
    check.set_service("switchboard.feedback.v1.FeedbackService");
    grpc::health::v1::HealthCheckResponse serving;
    grpc::ClientContext health_context;
    ASSERT_TRUE(health->Check(&health_context, check, &serving).ok());
    EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);

    // Sessions is down: a rating is refused, never accepted unverified.
    v1::SubmitFeedbackRequest rate;
    rate.set_session_id("s-1");
    rate.mutable_ratings()->set_response_speed(5);
    rate.mutable_ratings()->set_professionalism(5);
    rate.mutable_ratings()->set_problem_resolution(5);
    rate.set_overall_satisfaction(5);
    v1::SubmitFeedbackResponse rated;
    EXPECT_EQ(stub->SubmitFeedback(Context(Token(auth::Role::kCustomer, "cust-1")).get(), rate,
                                   &rated)
                  .error_code(),
              grpc::StatusCode::UNAVAILABLE);

    // Routing is down: a general complaint is still taken, and owed to it.
    v1::FileComplaintRequest file;
    file.set_reason(v1::COMPLAINT_REASON_PRODUCT);
    file.set_description("Withdrawal fees went up without notice.");
    v1::FileComplaintResponse filed;
    ASSERT_TRUE(
        stub->FileComplaint(Context(Token(auth::Role::kCustomer, "cust-1")).get(), file, &filed)
            .ok());
    complaint_id = filed.complaint().complaint_id();
    EXPECT_TRUE(MetricsShow(server, "switchboard_feedback_routing_pending 1", &metrics))
        << metrics;
    EXPECT_NE(metrics.find("switchboard_feedback_peer_unavailable_total{peer=\"sessions\"} 1"),
              std::string::npos)
        << metrics;

    EXPECT_EQ(server.Terminate(absl::Seconds(8)), 0) << server.log();
  }

  const std::string events = testing::ReadFile(data_dir_ + "/events/feedback.jsonl");
  EXPECT_NE(events.find("\"type\":\"feedback.complaint_filed\""), std::string::npos) << events;
  EXPECT_EQ(events.find("Withdrawal fees"), std::string::npos) << "description leaked";

  testing::ServerProcess restarted(kBinary, Flags(), data_dir_ + "/second.log");
  ASSERT_GT(restarted.grpc_port(), 0) << restarted.log();
  auto stub = Connect(restarted);
  v1::GetComplaintRequest get;
  get.set_complaint_id(complaint_id);
  v1::GetComplaintResponse got;
  ASSERT_TRUE(
      stub->GetComplaint(Context(Token(auth::Role::kSupervisor, "sup")).get(), get, &got).ok());
  EXPECT_EQ(got.complaint().state(), v1::COMPLAINT_STATE_OPEN);
  EXPECT_TRUE(MetricsShow(restarted, "switchboard_feedback_complaints{state=\"open\"} 1",
                          &metrics))
      << metrics;
  EXPECT_TRUE(MetricsShow(restarted, "switchboard_feedback_routing_pending 1", &metrics))
      << metrics;
  EXPECT_EQ(restarted.Terminate(absl::Seconds(8)), 0);
}

}  // namespace
}  // namespace switchboard::feedback
