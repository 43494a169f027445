#include "services/feedback/feedback_service.h"

#include <map>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/client/peer.h"
#include "libs/protoutil/time.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_tokens.h"
#include "services/feedback/grpc_peers.h"
#include "services/feedback/sqlite_store.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard::feedback {
namespace {

using auth::Role;
using grpc::StatusCode;
using testing::ContextWithToken;
namespace sv1 = sessions::v1;
namespace rv1 = routing::v1;

// A plain gRPC server on a free local port (no metrics exposer: fast to stop).
class FakeServer {
 public:
  explicit FakeServer(grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() { Stop(); }
  void Stop() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// Only what feedback calls: GetSession and CloseSession, for callers with
// the service role, over a map of sessions.
class FakeSessionsService final : public sv1::SessionsService::CallbackService {
 public:
  // Checks tokens with `tokens` (as the sessions service: aud "sessions").
  explicit FakeSessionsService(std::unique_ptr<auth::TokenVerifier> tokens)
      : tokens_(std::move(tokens)) {}

  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* context,
                                       const sv1::GetSessionRequest* request,
                                       sv1::GetSessionResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::MutexLock lock(&mu_);
    get_deadlines_.push_back(absl::FromChrono(context->deadline()));
    if (grpc::Status auth = CheckService(*context); !auth.ok()) {
      reactor->Finish(auth);
      return reactor;
    }
    auto it = sessions_.find(request->session_id());
    if (it == sessions_.end()) {
      reactor->Finish(grpc::Status(StatusCode::NOT_FOUND, "no such session"));
      return reactor;
    }
    *response->mutable_session() = it->second;
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* CloseSession(grpc::CallbackServerContext* context,
                                         const sv1::CloseSessionRequest* request,
                                         sv1::CloseSessionResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::MutexLock lock(&mu_);
    if (grpc::Status auth = CheckService(*context); !auth.ok()) {
      reactor->Finish(auth);
      return reactor;
    }
    auto it = sessions_.find(request->session_id());
    if (it == sessions_.end()) {
      reactor->Finish(grpc::Status(StatusCode::NOT_FOUND, "no such session"));
      return reactor;
    }
    closes_.push_back(*request);
    it->second.set_state(sv1::SESSION_STATE_CLOSED);
    it->second.set_close_reason(request->reason());
    *response->mutable_session() = it->second;
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  void Put(sv1::Session session) {
    absl::MutexLock lock(&mu_);
    sessions_[session.session_id()] = std::move(session);
  }
  std::vector<sv1::CloseSessionRequest> closes() {
    absl::MutexLock lock(&mu_);
    return closes_;
  }
  // The deadline of each GetSession call, as this server saw it.
  std::vector<absl::Time> get_deadlines() {
    absl::MutexLock lock(&mu_);
    return get_deadlines_;
  }

 private:
  grpc::Status CheckService(const grpc::ServerContextBase& context) {
    auto principal = auth::AuthenticateCall(context, *tokens_, absl::Now());
    if (!principal.ok() || principal->role != Role::kService ||
        principal->subject != "feedback") {
      return grpc::Status(StatusCode::PERMISSION_DENIED, "services only");
    }
    return grpc::Status::OK;
  }

  const std::unique_ptr<auth::TokenVerifier> tokens_;
  absl::Mutex mu_;
  std::map<std::string, sv1::Session> sessions_;
  std::vector<sv1::CloseSessionRequest> closes_;
  std::vector<absl::Time> get_deadlines_;
};

// Only EnqueueComplaint and CancelComplaint; can be told to refuse.
class FakeRoutingService final : public rv1::RoutingService::CallbackService {
 public:
  grpc::ServerUnaryReactor* EnqueueComplaint(grpc::CallbackServerContext* context,
                                             const rv1::EnqueueComplaintRequest* request,
                                             rv1::EnqueueComplaintResponse*) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::MutexLock lock(&mu_);
    if (down_) {
      reactor->Finish(grpc::Status(StatusCode::UNAVAILABLE, "overloaded"));
      return reactor;
    }
    enqueued_.push_back(*request);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* CancelComplaint(grpc::CallbackServerContext* context,
                                            const rv1::CancelComplaintRequest* request,
                                            rv1::CancelComplaintResponse*) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::MutexLock lock(&mu_);
    if (down_) {
      reactor->Finish(grpc::Status(StatusCode::UNAVAILABLE, "overloaded"));
      return reactor;
    }
    cancelled_.push_back(*request);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  void set_down(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  std::vector<rv1::EnqueueComplaintRequest> enqueued() {
    absl::MutexLock lock(&mu_);
    return enqueued_;
  }
  std::vector<rv1::CancelComplaintRequest> cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

 private:
  absl::Mutex mu_;
  bool down_ = false;
  std::vector<rv1::EnqueueComplaintRequest> enqueued_;
  std::vector<rv1::CancelComplaintRequest> cancelled_;
};

sv1::Session MakeSession(const std::string& id, const std::string& customer,
                         sv1::SessionState state) {
  sv1::Session s;
  s.set_session_id(id);
  s.set_customer_id(customer);
  s.set_channel(common::v1::CHANNEL_CHAT);
  s.set_category(common::v1::CATEGORY_DEPOSIT);
  s.set_state(state);
  sv1::Participant* c = s.add_participants();
  c->set_role(common::v1::SENDER_ROLE_CUSTOMER);
  c->set_id(customer);
  // "old" was transferred away; "ana" resolved it (resolving keeps her in).
  sv1::Participant* old = s.add_participants();
  old->set_role(common::v1::SENDER_ROLE_AGENT);
  old->set_id("old");
  protoutil::ToTimestamp(absl::Now() - absl::Hours(1), old->mutable_left_at());
  sv1::Participant* ana = s.add_participants();
  ana->set_role(common::v1::SENDER_ROLE_AGENT);
  ana->set_id("ana");
  if (state == sv1::SESSION_STATE_RESOLVED || state == sv1::SESSION_STATE_CLOSED) {
    protoutil::ToTimestamp(absl::Now() - absl::Minutes(5), s.mutable_resolved_at());
  }
  if (state == sv1::SESSION_STATE_ASSIGNED) s.set_assigned_agent_id("ana");
  return s;
}

// Feedback as main() wires it (SQLite file, gRPC peers with feedback's
// service token) behind a real server, with fake sessions and routing
// servers on free ports.
class FeedbackServiceTest : public ::testing::Test {
 protected:
  FeedbackServiceTest()
      : sessions_service_(tokens_.VerifierFor("sessions")),
        sessions_server_(&sessions_service_),
        routing_server_(&routing_service_),
        sessions_token_(&tokens_.service_signer("feedback"), "feedback", "sessions"),
        routing_token_(&tokens_.service_signer("feedback"), "feedback", "routing"),
        sessions_(client::PeerChannel(sessions_server_.address()), &sessions_token_,
                  absl::Seconds(2)),
        routing_(client::PeerChannel(routing_server_.address()), &routing_token_,
                 absl::Seconds(2)) {
    const std::string path = storage::MakeTempDir() + "/feedback.db";
    db_ = *storage::Database::Open({path});
    EXPECT_TRUE(db_->Migrate(FeedbackMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteFeedbackStore>(committer_.get(), path,
                                                   "switchboard.feedback.v1", nullptr);
    registry_ = std::make_shared<prometheus::Registry>();
    metrics_ = std::make_unique<FeedbackMetrics>(*registry_);
    feedback_ = std::make_unique<Feedback>(store_.get(), &sessions_, &routing_, RealClock(),
                                           metrics_.get(), FeedbackOptions());
    EXPECT_TRUE(feedback_->Load().ok());
    service_ = std::make_unique<FeedbackService>(feedback_.get(), &tokens_.verifier(),
                                                 RealClock(), &pool_);
    server_ = std::make_unique<testing::TestServer>(std::vector<grpc::Service*>{service_.get()},
                                                    registry_);
    stub_ = v1::FeedbackService::NewStub(server_->channel());

    sessions_service_.Put(MakeSession("s-resolved", "cust-1", sv1::SESSION_STATE_RESOLVED));
    sessions_service_.Put(MakeSession("s-closed", "cust-1", sv1::SESSION_STATE_CLOSED));
    sessions_service_.Put(MakeSession("s-assigned", "cust-1", sv1::SESSION_STATE_ASSIGNED));
    sessions_service_.Put(MakeSession("s-other", "cust-2", sv1::SESSION_STATE_RESOLVED));
    sv1::Session never = MakeSession("s-closed-unresolved", "cust-1", sv1::SESSION_STATE_CLOSED);
    never.clear_resolved_at();
    sessions_service_.Put(never);
  }

  ~FeedbackServiceTest() override {
    server_.reset();
    pool_.Stop();
  }

  std::string Customer(const std::string& id = "cust-1") {
    return tokens_.For(Role::kCustomer, id);
  }
  std::string Agent(const std::string& id) { return tokens_.For(Role::kAgent, id); }
  std::string Supervisor() { return tokens_.For(Role::kSupervisor, "sup-1"); }

  static v1::SubmitFeedbackRequest Rating(const std::string& session, int overall = 5,
                                          const std::string& comment = "") {
    v1::SubmitFeedbackRequest r;
    r.set_session_id(session);
    r.mutable_ratings()->set_response_speed(4);
    r.mutable_ratings()->set_professionalism(5);
    r.mutable_ratings()->set_problem_resolution(3);
    r.set_overall_satisfaction(overall);
    r.set_comment(comment);
    return r;
  }

  // Fails the test unless /metrics shows every one of `lines`.
  void ExpectMetrics(const std::vector<std::string>& lines) {
    const std::string text = server_->WaitForMetrics(lines);
    for (const std::string& line : lines) {
      EXPECT_NE(text.find(line), std::string::npos) << line << " not in\n" << text;
    }
  }

  grpc::Status Submit(const std::string& token, const v1::SubmitFeedbackRequest& r,
                      v1::SubmitFeedbackResponse* response = nullptr) {
    v1::SubmitFeedbackResponse ignored;
    return stub_->SubmitFeedback(ContextWithToken(token).get(), r,
                                 response ? response : &ignored);
  }

  grpc::Status File(const std::string& token, const v1::FileComplaintRequest& r,
                    v1::FileComplaintResponse* response = nullptr) {
    v1::FileComplaintResponse ignored;
    return stub_->FileComplaint(ContextWithToken(token).get(), r,
                                response ? response : &ignored);
  }

  grpc::Status Update(const std::string& token, const v1::UpdateComplaintRequest& r,
                      v1::UpdateComplaintResponse* response = nullptr) {
    v1::UpdateComplaintResponse ignored;
    return stub_->UpdateComplaint(ContextWithToken(token).get(), r,
                                  response ? response : &ignored);
  }

  testing::TestTokens tokens_{"feedback"};
  FakeSessionsService sessions_service_;
  FakeRoutingService routing_service_;
  FakeServer sessions_server_;
  FakeServer routing_server_;
  client::ServiceToken sessions_token_;
  client::ServiceToken routing_token_;
  GrpcSessions sessions_;
  GrpcRouting routing_;
  server::BlockingPool pool_{4};
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteFeedbackStore> store_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<FeedbackMetrics> metrics_;
  std::unique_ptr<Feedback> feedback_;
  std::unique_ptr<FeedbackService> service_;
  std::unique_ptr<testing::TestServer> server_;
  std::unique_ptr<v1::FeedbackService::Stub> stub_;
};

TEST_F(FeedbackServiceTest, RatesResolvedSessionsOnlyAndRetriesAreIdempotent) {
  // Sessions decides: unknown, another customer's, never resolved.
  grpc::Status s = Submit(Customer(), Rating("s-unknown"));
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "session_id: no such session");
  EXPECT_EQ(Submit(Customer(), Rating("s-other")).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(Submit(Customer(), Rating("s-assigned")).error_code(),
            StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Submit(Customer(), Rating("s-closed-unresolved")).error_code(),
            StatusCode::FAILED_PRECONDITION);

  v1::SubmitFeedbackResponse first;
  v1::SubmitFeedbackRequest request = Rating("s-resolved", 4, "quick and kind");
  request.set_request_id("rate-1");
  ASSERT_TRUE(Submit(Customer(), request, &first).ok());
  EXPECT_FALSE(first.replayed());
  EXPECT_EQ(first.feedback().agent_id(), "ana");
  EXPECT_EQ(first.feedback().category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_TRUE(first.feedback().has_session_resolved_at());
  // Feedback asked sessions to close the rated session.
  ASSERT_EQ(sessions_service_.closes().size(), 1u);
  EXPECT_EQ(sessions_service_.closes()[0].reason(), sv1::CLOSE_REASON_RATED);

  v1::SubmitFeedbackResponse retry;
  ASSERT_TRUE(Submit(Customer(), request, &retry).ok());
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(retry.feedback().feedback_id(), first.feedback().feedback_id());
  v1::SubmitFeedbackRequest different = Rating("s-resolved", 1);
  different.set_request_id("rate-2");
  EXPECT_EQ(Submit(Customer(), different).error_code(), StatusCode::ALREADY_EXISTS);

  // A session closed after resolution can be rated, and is not closed again.
  ASSERT_TRUE(Submit(Customer(), Rating("s-closed")).ok());
  EXPECT_EQ(sessions_service_.closes().size(), 1u);

  // Reads: the customer, the resolving agent, supervisors; no one else.
  v1::GetFeedbackRequest get;
  get.set_session_id("s-resolved");
  v1::GetFeedbackResponse got;
  EXPECT_TRUE(stub_->GetFeedback(ContextWithToken(Customer()).get(), get, &got).ok());
  EXPECT_EQ(got.feedback().comment(), "quick and kind");
  EXPECT_TRUE(stub_->GetFeedback(ContextWithToken(Agent("ana")).get(), get, &got).ok());
  EXPECT_TRUE(stub_->GetFeedback(ContextWithToken(Supervisor()).get(), get, &got).ok());
  EXPECT_EQ(stub_->GetFeedback(ContextWithToken(Agent("old")).get(), get, &got).error_code(),
            StatusCode::NOT_FOUND);
  EXPECT_EQ(
      stub_->GetFeedback(ContextWithToken(Customer("cust-2")).get(), get, &got).error_code(),
      StatusCode::NOT_FOUND);

  // The ratings are on /metrics.
  ExpectMetrics(
      {"switchboard_feedback_rating_count{dimension=\"overall_satisfaction\"} 2",
       "switchboard_feedback_rating_bucket{dimension=\"overall_satisfaction\",le=\"4\"} 1"});
}

TEST_F(FeedbackServiceTest, BadInputsAreInvalidArgumentNamingTheField) {
  struct Case {
    v1::SubmitFeedbackRequest request;
    std::string prefix;
  };
  v1::SubmitFeedbackRequest no_ratings;
  no_ratings.set_session_id("s-resolved");
  no_ratings.set_overall_satisfaction(5);
  v1::SubmitFeedbackRequest high = Rating("s-resolved");
  high.mutable_ratings()->set_professionalism(6);
  const std::vector<Case> cases = {
      {no_ratings, "ratings.response_speed"},
      {high, "ratings.professionalism"},
      {Rating("s-resolved", 0), "overall_satisfaction"},
      {Rating("s-resolved", 5, std::string(2001, 'x')), "comment"},
      {Rating("s-resolved", 5, "bell\a"), "comment"},
      {Rating(""), "session_id"},
      {Rating("bad id!"), "session_id"},
  };
  for (const Case& c : cases) {
    grpc::Status s = Submit(Customer(), c.request);
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << c.prefix;
    EXPECT_EQ(s.error_message().rfind(c.prefix, 0), 0u) << s.error_message();
  }
  // Invalid UTF-8 cannot even be parsed: INVALID_ARGUMENT, not UNIMPLEMENTED.
  EXPECT_EQ(Submit(Customer(), Rating("s-resolved", 5, std::string("caf\xc3", 4))).error_code(),
            StatusCode::INVALID_ARGUMENT);
  // Nothing was stored by any of them.
  EXPECT_TRUE(Submit(Customer(), Rating("s-resolved")).ok());

  v1::GetSummaryRequest summary;
  v1::GetSummaryResponse ignored;
  EXPECT_EQ(stub_->GetSummary(ContextWithToken(Supervisor()).get(), summary, &ignored)
                .error_code(),
            StatusCode::INVALID_ARGUMENT);
  v1::ListComplaintsRequest list;
  list.set_page_token("not-a-token");
  v1::ListComplaintsResponse list_response;
  EXPECT_EQ(stub_->ListComplaints(ContextWithToken(Supervisor()).get(), list, &list_response)
                .error_code(),
            StatusCode::INVALID_ARGUMENT);
}

TEST_F(FeedbackServiceTest, ComplaintLifecycleThroughRouting) {
  v1::FileComplaintRequest file;
  file.set_session_id("s-resolved");
  file.set_reason(v1::COMPLAINT_REASON_UNRESOLVED);
  file.set_description("Marked resolved, but my deposit is still missing.");
  file.set_request_id("complain-1");
  EXPECT_EQ(File(Customer("cust-2"), file).error_code(), StatusCode::NOT_FOUND);
  routing_service_.set_down(true);
  v1::FileComplaintResponse filed;
  ASSERT_TRUE(File(Customer(), file, &filed).ok());
  const std::string id = filed.complaint().complaint_id();
  EXPECT_EQ(filed.complaint().agent_id(), "ana");
  EXPECT_EQ(filed.complaint().state(), v1::COMPLAINT_STATE_OPEN);
  v1::FileComplaintResponse again;
  ASSERT_TRUE(File(Customer(), file, &again).ok());
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.complaint().complaint_id(), id);

  // Routing refuses for now; the complaint waits, then is queued once.
  EXPECT_EQ(*feedback_->SyncRouting(), 0);
  routing_service_.set_down(false);
  EXPECT_EQ(*feedback_->SyncRouting(), 1);
  ASSERT_EQ(routing_service_.enqueued().size(), 1u);
  EXPECT_EQ(routing_service_.enqueued()[0].complaint_id(), id);
  EXPECT_EQ(routing_service_.enqueued()[0].priority(), rv1::PRIORITY_HIGH);
  EXPECT_EQ(routing_service_.enqueued()[0].category(), common::v1::CATEGORY_DEPOSIT);

  v1::UpdateComplaintRequest resolve_early;
  resolve_early.set_complaint_id(id);
  resolve_early.set_state(v1::COMPLAINT_STATE_RESOLVED);
  resolve_early.set_resolution("refunded");
  EXPECT_EQ(Update(Supervisor(), resolve_early).error_code(), StatusCode::FAILED_PRECONDITION);

  v1::UpdateComplaintRequest ack;
  ack.set_complaint_id(id);
  ack.set_state(v1::COMPLAINT_STATE_ACKNOWLEDGED);
  ack.set_expected_state(v1::COMPLAINT_STATE_OPEN);
  v1::UpdateComplaintResponse acked;
  ASSERT_TRUE(Update(Supervisor(), ack, &acked).ok());
  EXPECT_EQ(acked.complaint().assignee_id(), "sup-1");
  EXPECT_EQ(Update(Supervisor(), ack).error_code(), StatusCode::ABORTED);
  EXPECT_EQ(*feedback_->SyncRouting(), 1);
  ASSERT_EQ(routing_service_.cancelled().size(), 1u);
  EXPECT_EQ(routing_service_.cancelled()[0].reason(), rv1::CANCEL_REASON_COMPLAINT_HANDLED);

  v1::UpdateComplaintRequest note;
  note.set_complaint_id(id);
  note.set_note("checked the ledger");
  ASSERT_TRUE(Update(Supervisor(), note).ok());
  v1::UpdateComplaintResponse resolved;
  ASSERT_TRUE(Update(Supervisor(), resolve_early, &resolved).ok());
  EXPECT_EQ(resolved.complaint().state(), v1::COMPLAINT_STATE_RESOLVED);

  v1::GetComplaintRequest get;
  get.set_complaint_id(id);
  v1::GetComplaintResponse mine;
  ASSERT_TRUE(stub_->GetComplaint(ContextWithToken(Customer()).get(), get, &mine).ok());
  EXPECT_EQ(mine.complaint().notes_size(), 0);
  EXPECT_EQ(mine.complaint().assignee_id(), "");
  EXPECT_EQ(mine.complaint().resolution(), "refunded");
  v1::GetComplaintResponse theirs;
  ASSERT_TRUE(stub_->GetComplaint(ContextWithToken(Supervisor()).get(), get, &theirs).ok());
  EXPECT_EQ(theirs.complaint().notes_size(), 1);
  EXPECT_EQ(stub_->GetComplaint(ContextWithToken(Customer("cust-2")).get(), get, &theirs)
                .error_code(),
            StatusCode::NOT_FOUND);

  v1::ListComplaintsRequest work_list;
  work_list.add_states(v1::COMPLAINT_STATE_RESOLVED);
  work_list.set_order(v1::COMPLAINT_ORDER_OLDEST_FIRST);
  v1::ListComplaintsResponse listed;
  ASSERT_TRUE(
      stub_->ListComplaints(ContextWithToken(Supervisor()).get(), work_list, &listed).ok());
  EXPECT_EQ(listed.complaints_size(), 1);

  ExpectMetrics({"switchboard_feedback_complaints{state=\"resolved\"} 1",
                           "switchboard_feedback_complaints{state=\"open\"} 0",
                           "switchboard_feedback_complaints_filed_total 1"});
}

TEST_F(FeedbackServiceTest, SessionsDownMeansUnavailableAndNothingStored) {
  sessions_server_.Stop();
  grpc::Status s = Submit(Customer(), Rating("s-resolved"));
  EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find("retry"), std::string::npos) << s.error_message();
  v1::FileComplaintRequest file;
  file.set_session_id("s-resolved");
  file.set_reason(v1::COMPLAINT_REASON_OTHER);
  file.set_description("x");
  EXPECT_EQ(File(Customer(), file).error_code(), StatusCode::UNAVAILABLE);
  // A general complaint needs no session check.
  file.clear_session_id();
  EXPECT_TRUE(File(Customer(), file).ok());
  v1::GetFeedbackRequest get;
  get.set_session_id("s-resolved");
  v1::GetFeedbackResponse got;
  EXPECT_EQ(stub_->GetFeedback(ContextWithToken(Supervisor()).get(), get, &got).error_code(),
            StatusCode::NOT_FOUND);
}

TEST_F(FeedbackServiceTest, EveryAuthFailureIsRefused) {
  const std::string customer = Customer();
  const std::string agent = Agent("ana");
  const std::string supervisor = Supervisor();
  // No service calls feedback.
  const std::string service = tokens_.For(Role::kService, "sessions");
  testing::TestTokens other_key("feedback");
  const std::string forged = other_key.For(Role::kSupervisor, "sup-1");

  // Each RPC with: no token, garbage, another key's token, and each role it
  // does not allow.
  struct Rpc {
    std::string name;
    std::function<grpc::Status(const std::string&)> call;
    std::vector<std::string> denied;
  };
  v1::GetSummaryRequest summary;
  protoutil::ToTimestamp(absl::Now() - absl::Hours(1), summary.mutable_start_time());
  const std::vector<Rpc> rpcs = {
      {"SubmitFeedback",
       [&](const std::string& t) { return Submit(t, Rating("s-resolved")); },
       {agent, supervisor, service}},
      {"GetFeedback",
       [&](const std::string& t) {
         v1::GetFeedbackRequest r;
         r.set_session_id("s-resolved");
         v1::GetFeedbackResponse out;
         return stub_->GetFeedback(ContextWithToken(t).get(), r, &out);
       },
       {}},
      {"ListFeedback",
       [&](const std::string& t) {
         v1::ListFeedbackResponse out;
         return stub_->ListFeedback(ContextWithToken(t).get(), {}, &out);
       },
       {}},
      {"FileComplaint",
       [&](const std::string& t) {
         v1::FileComplaintRequest r;
         r.set_reason(v1::COMPLAINT_REASON_OTHER);
         r.set_description("x");
         return File(t, r);
       },
       {agent}},
      {"UpdateComplaint",
       [&](const std::string& t) {
         v1::UpdateComplaintRequest r;
         r.set_complaint_id("c-1");
         r.set_note("x");
         return Update(t, r);
       },
       {customer, agent, service}},
      {"GetComplaint",
       [&](const std::string& t) {
         v1::GetComplaintRequest r;
         r.set_complaint_id("c-1");
         v1::GetComplaintResponse out;
         return stub_->GetComplaint(ContextWithToken(t).get(), r, &out);
       },
       {agent}},
      {"ListComplaints",
       [&](const std::string& t) {
         v1::ListComplaintsResponse out;
         return stub_->ListComplaints(ContextWithToken(t).get(), {}, &out);
       },
       {agent}},
      {"GetSummary",
       [&](const std::string& t) {
         v1::GetSummaryResponse out;
         return stub_->GetSummary(ContextWithToken(t).get(), summary, &out);
       },
       {customer}},
  };
  for (const Rpc& rpc : rpcs) {
    EXPECT_EQ(rpc.call("").error_code(), StatusCode::UNAUTHENTICATED) << rpc.name;
    EXPECT_EQ(rpc.call("garbage").error_code(), StatusCode::UNAUTHENTICATED) << rpc.name;
    EXPECT_EQ(rpc.call(forged).error_code(), StatusCode::UNAUTHENTICATED) << rpc.name;
    EXPECT_EQ(rpc.call(service).error_code(), StatusCode::PERMISSION_DENIED) << rpc.name;
    for (const std::string& token : rpc.denied) {
      grpc::Status s = rpc.call(token);
      EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << rpc.name;
      EXPECT_NE(s.error_message().find(rpc.name), std::string::npos) << s.error_message();
    }
  }

  // Rules on the record: an agent asking for another's figures or ratings,
  // a customer filing or listing for someone else.
  v1::GetSummaryRequest others = summary;
  others.set_agent_id("bob");
  v1::GetSummaryResponse out;
  EXPECT_EQ(stub_->GetSummary(ContextWithToken(agent).get(), others, &out).error_code(),
            StatusCode::PERMISSION_DENIED);
  v1::ListFeedbackRequest list;
  list.set_agent_id("bob");
  v1::ListFeedbackResponse list_out;
  EXPECT_EQ(stub_->ListFeedback(ContextWithToken(agent).get(), list, &list_out).error_code(),
            StatusCode::PERMISSION_DENIED);
  v1::FileComplaintRequest for_other;
  for_other.set_customer_id("cust-2");
  for_other.set_reason(v1::COMPLAINT_REASON_OTHER);
  for_other.set_description("x");
  EXPECT_EQ(File(customer, for_other).error_code(), StatusCode::PERMISSION_DENIED);
  v1::ListComplaintsRequest theirs;
  theirs.set_customer_id("cust-2");
  v1::ListComplaintsResponse theirs_out;
  EXPECT_EQ(
      stub_->ListComplaints(ContextWithToken(customer).get(), theirs, &theirs_out).error_code(),
      StatusCode::PERMISSION_DENIED);
}

TEST_F(FeedbackServiceTest, SessionsIsCalledWithTheCallersDeadlineCappedByFeedbacksTimeout) {
  // The caller's deadline (1 s) is sooner than feedback's own 2 s.
  const absl::Time caller = absl::Now() + absl::Seconds(1);
  v1::SubmitFeedbackResponse rated;
  ASSERT_TRUE(
      stub_->SubmitFeedback(ContextWithToken(Customer(), absl::Seconds(1)).get(),
                            Rating("s-resolved"), &rated)
          .ok());
  // A caller with all the time in the world still gets feedback's 2 s.
  v1::FileComplaintRequest complaint;
  complaint.set_session_id("s-closed");
  complaint.set_reason(v1::COMPLAINT_REASON_AGENT_CONDUCT);
  complaint.set_description("rude");
  v1::FileComplaintResponse filed;
  const absl::Time patient_start = absl::Now();
  ASSERT_TRUE(stub_->FileComplaint(ContextWithToken(Customer(), absl::Hours(1)).get(),
                                   complaint, &filed)
                  .ok());
  const std::vector<absl::Time> seen = sessions_service_.get_deadlines();
  ASSERT_EQ(seen.size(), 2u);
  // gRPC sends the time left, so allow for the time in flight.
  EXPECT_LE(seen[0], caller + absl::Milliseconds(500));
  EXPECT_LE(seen[1], absl::Now() + absl::Seconds(2) + absl::Milliseconds(500));
  EXPECT_GT(seen[1], patient_start + absl::Seconds(1)) << "capped by the wrong deadline";
}

}  // namespace
}  // namespace switchboard::feedback
