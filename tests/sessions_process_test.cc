// The sessions binary as operators run it: started as a process with a fresh
// data folder, no bot and routing unreachable, health-checked, called,
// stopped with SIGTERM, restarted.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/metrics/scrape.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard {
namespace {

using sessions::v1::SessionsService;

constexpr char kBinary[] = "services/sessions/sessions_server";

class SessionsProcessTest : public ::testing::Test {
 protected:
  SessionsProcessTest() : data_dir_(storage::MakeTempDir()) {}

  // No bot (every chat goes to a human) and a routing address nobody
  // listens on (sessions wait QUEUED-pending and are retried).
  std::vector<std::string> Flags() const {
    return {"--data_dir=" + data_dir_,        "--port=0",
            "--metrics_port=0",               "--bind_address=127.0.0.1",
            "--drain_deadline=3s",            "--bot_address=",
            "--routing_address=127.0.0.1:1",  "--routing_timeout=200ms",
            "--routing_retry_interval=200ms"};
  }

  std::unique_ptr<SessionsService::Stub> Connect(const testing::ServerProcess& server) {
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.grpc_port()),
                                   grpc::InsecureChannelCredentials());
    return SessionsService::NewStub(channel_);
  }

  std::string Token(auth::Role role, const std::string& subject) {
    // The server made the development keys in its data folder.
    return testing::TestTokens::FromFolder(data_dir_ + "/keys", "sessions").For(role, subject);
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  sessions::v1::Session Get(SessionsService::Stub& stub, const std::string& id) {
    sessions::v1::GetSessionRequest request;
    request.set_session_id(id);
    sessions::v1::GetSessionResponse response;
    EXPECT_TRUE(
        stub.GetSession(Context(Token(auth::Role::kSupervisor, "sup")).get(), request, &response)
            .ok());
    return response.session();
  }

  // Scrapes until `needle` shows up (metrics lag calls slightly), up to 5 s.
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

TEST_F(SessionsProcessTest, NoBotAndNoRoutingStillQueuesDurablyAcrossRestarts) {
  std::string session_id;
  {
    testing::ServerProcess server(kBinary, Flags(), data_dir_ + "/first.log");
    ASSERT_GT(server.grpc_port(), 0) << server.log();
    auto stub = Connect(server);

    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::health::v1::HealthCheckRequest check;
    check.set_service("switchboard.sessions.v1.SessionsService");
    grpc::health::v1::HealthCheckResponse serving;
    grpc::ClientContext health_context;
    ASSERT_TRUE(health->Check(&health_context, check, &serving).ok());
    EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);

    sessions::v1::CreateSessionRequest create;
    create.set_channel(common::v1::CHANNEL_CHAT);
    create.set_category(common::v1::CATEGORY_DEPOSIT);
    create.mutable_first_message()->set_text("My USDT deposit has not arrived");
    create.set_request_id("req-1");
    sessions::v1::CreateSessionResponse created;
    ASSERT_TRUE(stub->CreateSession(Context(Token(auth::Role::kCustomer, "cust-1")).get(),
                                    create, &created)
                    .ok());
    session_id = created.session().session_id();
    EXPECT_EQ(created.session().state(), sessions::v1::SESSION_STATE_BOT);

    // No bot configured: the customer is handed to a human at once.
    sessions::v1::Session session;
    for (int i = 0; i < 100; ++i) {
      session = Get(*stub, session_id);
      if (session.state() == sessions::v1::SESSION_STATE_QUEUED) break;
      usleep(50'000);
    }
    ASSERT_EQ(session.state(), sessions::v1::SESSION_STATE_QUEUED);
    EXPECT_EQ(session.handoff().reason(), common::v1::ESCALATION_REASON_BOT_UNAVAILABLE);

    const std::string metrics = MetricsWith(server, "switchboard_sessions_routing_failures_total 2");
    EXPECT_TRUE(absl::StrContains(metrics, "switchboard_sessions{state=\"queued\"} 1")) << metrics;
    EXPECT_TRUE(absl::StrContains(metrics, "switchboard_sessions_routing_pending 1")) << metrics;

    // A stream open at shutdown is ended with a clear status.
    sessions::v1::StreamSessionEventsRequest stream_request;
    stream_request.set_session_id(session_id);
    auto stream_context = Context(Token(auth::Role::kCustomer, "cust-1"));
    auto stream = stub->StreamSessionEvents(stream_context.get(), stream_request);
    sessions::v1::StreamSessionEventsResponse message;
    bool caught_up = false;
    while (!caught_up && stream->Read(&message)) caught_up = message.has_caught_up();
    ASSERT_TRUE(caught_up);

    EXPECT_EQ(server.Terminate(absl::Seconds(8)), 0) << server.log();
    while (stream->Read(&message)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }

  const std::string events = testing::ReadFile(data_dir_ + "/events/sessions.jsonl");
  EXPECT_TRUE(absl::StrContains(events, "\"type\":\"sessions.session_created\""));
  EXPECT_TRUE(absl::StrContains(events, "\"type\":\"sessions.message_sent\""));
  EXPECT_TRUE(absl::StrContains(events, "\"type\":\"sessions.session_escalated\""));
  // Message text never goes into events.
  EXPECT_FALSE(absl::StrContains(events, "USDT deposit")) << events;

  testing::ServerProcess restarted(kBinary, Flags(), data_dir_ + "/second.log");
  ASSERT_GT(restarted.grpc_port(), 0) << restarted.log();
  auto stub = Connect(restarted);
  sessions::v1::Session session = Get(*stub, session_id);
  EXPECT_EQ(session.state(), sessions::v1::SESSION_STATE_QUEUED);
  EXPECT_EQ(session.message_count(), 1);
  // Still waiting to be handed to routing after the restart.
  EXPECT_TRUE(absl::StrContains(MetricsWith(restarted, "switchboard_sessions_routing_pending 1"),
                                "switchboard_sessions_routing_pending 1"));
  // A retried CreateSession returns the first session.
  sessions::v1::CreateSessionRequest create;
  create.set_channel(common::v1::CHANNEL_CHAT);
  create.set_request_id("req-1");
  sessions::v1::CreateSessionResponse created;
  ASSERT_TRUE(stub->CreateSession(Context(Token(auth::Role::kCustomer, "cust-1")).get(), create,
                                  &created)
                  .ok());
  EXPECT_TRUE(created.replayed());
  EXPECT_EQ(created.session().session_id(), session_id);
  EXPECT_EQ(restarted.Terminate(absl::Seconds(8)), 0);
}

}  // namespace
}  // namespace switchboard
