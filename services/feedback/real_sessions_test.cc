// Feedback against the REAL sessions server (its binary, as a process): a
// rating is accepted only once sessions says the session was resolved, the
// resolving agent and the session's details come from sessions, and the
// rated session is closed with reason RATED.
#include <memory>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/client/peer.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_tokens.h"
#include "services/feedback/feedback_service.h"
#include "services/feedback/grpc_peers.h"
#include "services/feedback/sqlite_store.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard::feedback {
namespace {

using auth::Role;
using grpc::StatusCode;
namespace sv1 = sessions::v1;

// Routing is not needed here: complaints wait for it in the store.
class NoRouting : public RoutingPort {
 public:
  absl::Status EnqueueComplaint(const v1::Complaint&) override {
    return absl::UnavailableError("no routing in this test");
  }
  absl::Status CancelComplaint(const std::string&) override {
    return absl::UnavailableError("no routing in this test");
  }
};

TEST(RealSessionsTest, RatesOnlyWhatTheRealSessionsServerSaysWasResolved) {
  const std::string dir = storage::MakeTempDir();
  // The keys of a deployment: sessions reads them from a key folder.
  testing::TestTokens tokens("feedback");
  tokens.WriteFolder(dir + "/keys");
  auto token = [&](Role role, const std::string& subject) { return tokens.For(role, subject); };

  // Sessions without bot or routing: chats wait QUEUED for an assignment.
  testing::ServerProcess sessions_process(
      "services/sessions/sessions_server",
      {"--data_dir=" + dir + "/sessions", "--keys_dir=" + dir + "/keys", "--port=0",
       "--metrics_port=0", "--bind_address=127.0.0.1", "--bot_address=",
       "--routing_address=", "--drain_deadline=1s"},
      dir + "/sessions.log");
  ASSERT_GT(sessions_process.grpc_port(), 0) << sessions_process.log();
  const std::string address = absl::StrCat("127.0.0.1:", sessions_process.grpc_port());
  auto sessions_stub = sv1::SessionsService::NewStub(client::PeerChannel(address));

  // Feedback wired as main() does, against that process.
  const std::string path = dir + "/feedback.db";
  auto db = *storage::Database::Open({path});
  ASSERT_TRUE(db->Migrate(FeedbackMigrations()).ok());
  storage::GroupCommitter committer(db.get());
  SqliteFeedbackStore store(&committer, path, "switchboard.feedback.v1", nullptr);
  auto registry = std::make_shared<prometheus::Registry>();
  FeedbackMetrics metrics(*registry);
  client::ServiceToken service_token(&tokens.service_signer("feedback"), "feedback", "sessions");
  GrpcSessions sessions(client::PeerChannel(address), &service_token, absl::Seconds(5));
  NoRouting routing;
  Feedback feedback(&store, &sessions, &routing, RealClock(), &metrics, FeedbackOptions());
  ASSERT_TRUE(feedback.Load().ok());
  server::BlockingPool pool(4);
  FeedbackService service(&feedback, &tokens.verifier(), RealClock(), &pool);
  auto server = std::make_unique<testing::TestServer>(std::vector<grpc::Service*>{&service},
                                                      registry);
  auto stub = v1::FeedbackService::NewStub(server->channel());

  const std::string customer = token(Role::kCustomer, "cust-1");
  sv1::CreateSessionRequest create;
  create.set_channel(common::v1::CHANNEL_CHAT);
  create.set_category(common::v1::CATEGORY_DEPOSIT);
  create.mutable_first_message()->set_text("My deposit has not arrived.");
  sv1::CreateSessionResponse created;
  grpc::Status status = sessions_stub->CreateSession(
      testing::ContextWithToken(customer).get(), create, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::string session_id = created.session().session_id();

  v1::SubmitFeedbackRequest rate;
  rate.set_session_id(session_id);
  rate.mutable_ratings()->set_response_speed(4);
  rate.mutable_ratings()->set_professionalism(5);
  rate.mutable_ratings()->set_problem_resolution(5);
  rate.set_overall_satisfaction(5);
  rate.set_comment("Sorted in minutes.");
  v1::SubmitFeedbackResponse rated;
  status = stub->SubmitFeedback(testing::ContextWithToken(customer).get(), rate, &rated);
  EXPECT_EQ(status.error_code(), StatusCode::FAILED_PRECONDITION) << status.error_message();

  sv1::AssignAgentRequest assign;
  assign.set_session_id(session_id);
  assign.set_agent_id("ana");
  assign.set_offer_id("offer-1");
  sv1::AssignAgentResponse assigned;
  status = sessions_stub->AssignAgent(
      testing::ContextWithToken(tokens.ServiceToken("routing", "sessions")).get(), assign,
      &assigned);
  ASSERT_TRUE(status.ok()) << status.error_message();
  sv1::ResolveSessionRequest resolve;
  resolve.set_session_id(session_id);
  sv1::ResolveSessionResponse resolved;
  status = sessions_stub->ResolveSession(
      testing::ContextWithToken(token(Role::kAgent, "ana")).get(), resolve, &resolved);
  ASSERT_TRUE(status.ok()) << status.error_message();

  // Another customer, an unknown session: NOT_FOUND, from the real check.
  status = stub->SubmitFeedback(
      testing::ContextWithToken(token(Role::kCustomer, "cust-2")).get(), rate, &rated);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND) << status.error_message();
  v1::SubmitFeedbackRequest unknown = rate;
  unknown.set_session_id("no-such-session");
  status = stub->SubmitFeedback(testing::ContextWithToken(customer).get(), unknown, &rated);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND) << status.error_message();

  status = stub->SubmitFeedback(testing::ContextWithToken(customer).get(), rate, &rated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(rated.feedback().agent_id(), "ana");
  EXPECT_EQ(rated.feedback().channel(), common::v1::CHANNEL_CHAT);
  EXPECT_EQ(rated.feedback().category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_TRUE(rated.feedback().has_session_resolved_at());

  // Sessions closed the rated session (reason RATED).
  sv1::GetSessionRequest get;
  get.set_session_id(session_id);
  sv1::GetSessionResponse got;
  status = sessions_stub->GetSession(testing::ContextWithToken(customer).get(), get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.session().state(), sv1::SESSION_STATE_CLOSED);
  EXPECT_EQ(got.session().close_reason(), sv1::CLOSE_REASON_RATED);

  // Closed after resolution: a retry is still answered, and a complaint
  // about it names the agent who resolved it.
  v1::SubmitFeedbackResponse retried;
  ASSERT_TRUE(
      stub->SubmitFeedback(testing::ContextWithToken(customer).get(), rate, &retried).ok());
  EXPECT_TRUE(retried.replayed());
  v1::FileComplaintRequest complain;
  complain.set_session_id(session_id);
  complain.set_reason(v1::COMPLAINT_REASON_UNRESOLVED);
  complain.set_description("It arrived short by 10 USDT.");
  v1::FileComplaintResponse filed;
  status = stub->FileComplaint(testing::ContextWithToken(customer).get(), complain, &filed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(filed.complaint().agent_id(), "ana");
  EXPECT_EQ(filed.complaint().category(), common::v1::CATEGORY_DEPOSIT);

  // Sessions gone: UNAVAILABLE, never an unverified rating.
  EXPECT_EQ(sessions_process.Terminate(absl::Seconds(10)), 0);
  v1::FileComplaintRequest later = complain;
  status = stub->FileComplaint(testing::ContextWithToken(customer).get(), later, &filed);
  EXPECT_EQ(status.error_code(), StatusCode::UNAVAILABLE) << status.error_message();

  server.reset();
  pool.Stop();
}

}  // namespace
}  // namespace switchboard::feedback
