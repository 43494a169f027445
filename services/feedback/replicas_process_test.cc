// Two feedback_server processes on one real PostgreSQL, as two replicas run
// behind a load balancer: a request retried on the other replica gets the
// first answer and writes nothing twice, the open-complaint cap holds
// across them, and every event reaches a relay's sink exactly once.
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/client/peer.h"
#include "libs/events/read_json_lines.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/postgres.h"
#include "libs/testing/process.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/feedback/v1/feedback_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard::feedback {
namespace {

using auth::Role;
namespace sv1 = sessions::v1;

// A count in feedback's tables (its own schema, libs/host).
int64_t Count(const std::string& uri, const std::string& sql) {
  return testing::CountInSchema(uri, "feedback", sql);
}

constexpr char kBinary[] = "services/feedback/feedback_server";

TEST(ReplicasProcessTest, TwoReplicasOnOnePostgresAnswerRetriesOnceAndPublishEachEventOnce) {
  const std::string dir = storage::MakeTempDir();
  testing::PostgresServer postgres;
  const std::string uri = postgres.CreateDatabase();
  // One key folder for the deployment: both replicas and sessions use it.
  testing::TestTokens tokens("feedback");
  tokens.WriteFolder(dir + "/keys");

  // The real sessions server (its own SQLite), without bot or routing.
  testing::ServerProcess sessions_process(
      "services/sessions/sessions_server",
      {"--data_dir=" + dir + "/sessions", "--keys_dir=" + dir + "/keys", "--port=0",
       "--metrics_port=0", "--bind_address=127.0.0.1", "--bot_address=", "--routing_address=",
       "--drain_deadline=1s"},
      dir + "/sessions.log");
  ASSERT_GT(sessions_process.grpc_port(), 0) << sessions_process.log();
  const std::string sessions_address = absl::StrCat("127.0.0.1:", sessions_process.grpc_port());

  // Routing is down (port 1): complaints wait for it in the shared store.
  auto replica = [&](const std::string& name) {
    return std::make_unique<testing::ServerProcess>(
        kBinary,
        std::vector<std::string>{
            "--data_dir=" + dir + "/" + name, "--keys_dir=" + dir + "/keys",
            "--database=" + uri, "--port=0", "--metrics_port=0", "--bind_address=127.0.0.1",
            "--drain_deadline=3s", "--sessions_address=" + sessions_address,
            "--routing_address=127.0.0.1:1", "--routing_sync_interval=100ms",
            "--peer_timeout=2s", "--max_unresolved_complaints=2"},
        dir + "/" + name + ".log");
  };
  auto a = replica("a");
  auto b = replica("b");
  ASSERT_GT(a->grpc_port(), 0) << a->log();
  ASSERT_GT(b->grpc_port(), 0) << b->log();
  auto stub_of = [](const testing::ServerProcess& server) {
    return v1::FeedbackService::NewStub(
        client::PeerChannel(absl::StrCat("127.0.0.1:", server.grpc_port())));
  };
  auto stub_a = stub_of(*a);
  auto stub_b = stub_of(*b);

  // A chat, assigned to ana and resolved, in the real sessions server.
  const std::string customer = tokens.For(Role::kCustomer, "cust-1");
  auto sessions_stub = sv1::SessionsService::NewStub(client::PeerChannel(sessions_address));
  sv1::CreateSessionRequest create;
  create.set_channel(common::v1::CHANNEL_CHAT);
  create.set_category(common::v1::CATEGORY_DEPOSIT);
  create.mutable_first_message()->set_text("My deposit has not arrived.");
  sv1::CreateSessionResponse created;
  grpc::Status status = sessions_stub->CreateSession(
      testing::ContextWithToken(customer).get(), create, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::string session_id = created.session().session_id();
  sv1::AssignAgentRequest assign;
  assign.set_session_id(session_id);
  assign.set_agent_id("ana");
  assign.set_offer_id("offer-1");
  sv1::AssignAgentResponse assigned;
  // A chat starts with the bot; with no bot server sessions hands it to the
  // queue a moment later, and only then can it be assigned.
  for (int attempt = 0; attempt < 100; ++attempt) {
    status = sessions_stub->AssignAgent(
        testing::ContextWithToken(tokens.ServiceToken("routing", "sessions")).get(), assign,
        &assigned);
    if (status.error_code() != grpc::StatusCode::FAILED_PRECONDITION) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(status.ok()) << status.error_message();
  sv1::ResolveSessionRequest resolve;
  resolve.set_session_id(session_id);
  sv1::ResolveSessionResponse resolved;
  status = sessions_stub->ResolveSession(
      testing::ContextWithToken(tokens.For(Role::kAgent, "ana")).get(), resolve, &resolved);
  ASSERT_TRUE(status.ok()) << status.error_message();

  // The rating on A, the client's retry on B: B answers with A's rating.
  v1::SubmitFeedbackRequest rate;
  rate.set_session_id(session_id);
  rate.mutable_ratings()->set_response_speed(4);
  rate.mutable_ratings()->set_professionalism(5);
  rate.mutable_ratings()->set_problem_resolution(5);
  rate.set_overall_satisfaction(5);
  rate.set_request_id("rate-1");
  v1::SubmitFeedbackResponse rated;
  status = stub_a->SubmitFeedback(testing::ContextWithToken(customer).get(), rate, &rated);
  ASSERT_TRUE(status.ok()) << status.error_message() << a->log();
  EXPECT_FALSE(rated.replayed());
  EXPECT_EQ(rated.feedback().agent_id(), "ana");
  v1::SubmitFeedbackResponse retried;
  status = stub_b->SubmitFeedback(testing::ContextWithToken(customer).get(), rate, &retried);
  ASSERT_TRUE(status.ok()) << status.error_message() << b->log();
  EXPECT_TRUE(retried.replayed());
  EXPECT_EQ(retried.feedback().feedback_id(), rated.feedback().feedback_id());

  // A complaint on B, retried on A: one complaint, the first answer.
  v1::FileComplaintRequest complain;
  complain.set_session_id(session_id);
  complain.set_reason(v1::COMPLAINT_REASON_UNRESOLVED);
  complain.set_description("It arrived short by 10 USDT.");
  complain.set_request_id("complain-1");
  v1::FileComplaintResponse filed;
  status = stub_b->FileComplaint(testing::ContextWithToken(customer).get(), complain, &filed);
  ASSERT_TRUE(status.ok()) << status.error_message() << b->log();
  EXPECT_FALSE(filed.replayed());
  v1::FileComplaintResponse refiled;
  status = stub_a->FileComplaint(testing::ContextWithToken(customer).get(), complain, &refiled);
  ASSERT_TRUE(status.ok()) << status.error_message() << a->log();
  EXPECT_TRUE(refiled.replayed());
  EXPECT_EQ(refiled.complaint().complaint_id(), filed.complaint().complaint_id());

  // The cap (2 open) counts the complaints filed through either replica.
  v1::FileComplaintRequest general;
  general.set_reason(v1::COMPLAINT_REASON_PRODUCT);
  general.set_description("Withdrawal fees went up without notice.");
  general.set_request_id("complain-2");
  v1::FileComplaintResponse second;
  status = stub_a->FileComplaint(testing::ContextWithToken(customer).get(), general, &second);
  ASSERT_TRUE(status.ok()) << status.error_message();
  general.set_request_id("complain-3");
  status = stub_b->FileComplaint(testing::ContextWithToken(customer).get(), general, &second);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();

  // A supervisor on A sees what was filed through B.
  v1::GetComplaintRequest get;
  get.set_complaint_id(filed.complaint().complaint_id());
  v1::GetComplaintResponse got;
  status = stub_a->GetComplaint(
      testing::ContextWithToken(tokens.For(Role::kSupervisor, "sup")).get(), get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.complaint().state(), v1::COMPLAINT_STATE_OPEN);

  // Both stop cleanly (each relay flushes); the shared outbox is empty.
  EXPECT_EQ(a->Terminate(absl::Seconds(10)), 0) << a->log();
  EXPECT_EQ(b->Terminate(absl::Seconds(10)), 0) << b->log();
  EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM feedback"), 1);
  EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM complaints"), 2);
  EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM outbox"), 0);

  // One rating and two complaints: three events, each in exactly one
  // replica's events file, once.
  std::map<std::string, int> published;  // event_id -> times
  std::map<std::string, int> types;       // payload -> events
  for (const char* name : {"a", "b"}) {
    const std::string path = absl::StrCat(dir, "/", name, "/events/feedback.jsonl");
    absl::StatusOr<std::vector<events::JsonLine>> lines = events::ReadJsonLines(path);
    if (absl::IsNotFound(lines.status())) continue;  // that replica's relay published none
    ASSERT_TRUE(lines.ok()) << lines.status();
    for (const events::JsonLine& line : *lines) {
      ++published[line.event.event_id()];
      ++types[line.event.has_feedback_submitted() ? "feedback_submitted"
              : line.event.has_complaint_filed()  ? "complaint_filed"
                                                  : "other"];
    }
  }
  EXPECT_EQ(published.size(), 3u);
  for (const auto& [event_id, times] : published) EXPECT_EQ(times, 1) << event_id;
  EXPECT_EQ(types, (std::map<std::string, int>{{"complaint_filed", 2},
                                               {"feedback_submitted", 1}}));
  EXPECT_EQ(sessions_process.Terminate(absl::Seconds(10)), 0);
}

}  // namespace
}  // namespace switchboard::feedback
