#include "services/sessions/sessions_service.h"

#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/verification_token.h"
#include "libs/blob/file_blob_store.h"
#include "libs/client/peer.h"
#include "libs/protoutil/time.h"
#include "libs/storage/commit_gate.h"
#include "libs/storage/test_dir.h"
#include "libs/filetype/test_files.h"
#include "libs/testing/clamd/fake_scanner.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_tokens.h"
#include "services/sessions/attachment_reactors.h"
#include "services/sessions/grpc_peers.h"
#include "services/sessions/sqlite_store.h"
#include "switchboard/bot/v1/bot_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"

namespace switchboard::sessions {
namespace {

using auth::Role;
using grpc::StatusCode;
using testing::ContextWithToken;

// A bot stand-in: "human" escalates, "crash" fails, "slow" stalls (past any
// deadline, until Release), "deposit?" is answered as a deposit question,
// anything else is answered.
class FakeBotService : public bot::v1::BotService::CallbackService {
 public:
  ~FakeBotService() override { Release(); }
  // Lets stalled calls finish (with UNAVAILABLE: too late).
  void Release() {
    if (!released_.HasBeenNotified()) released_.Notify();
  }

  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                   const bot::v1::AnswerRequest* request,
                                   bot::v1::AnswerResponse* response) override {
    auto* reactor = context->DefaultReactor();
    const std::string& text = request->text();
    if (text == "crash") {
      reactor->Finish(grpc::Status(StatusCode::INTERNAL, "bot broke"));
      return reactor;
    }
    if (text == "slow") {
      stalled_.push_back(std::thread([this, reactor] {
        released_.WaitForNotificationWithTimeout(absl::Seconds(30));
        reactor->Finish(grpc::Status(StatusCode::UNAVAILABLE, "too late"));
      }));
      return reactor;
    }
    if (text == "human") {
      response->set_outcome(bot::v1::ANSWER_OUTCOME_ESCALATED);
      response->set_reply_text("Connecting you to an agent.");
      response->mutable_handoff()->set_reason(common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
      response->mutable_handoff()->set_summary("wants a human");
    } else {
      response->set_outcome(bot::v1::ANSWER_OUTCOME_ANSWERED);
      response->set_reply_text("bot: " + text);
      response->set_answered_intent_id("faq");
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  void JoinStalled() {
    Release();
    for (std::thread& t : stalled_) t.join();
    stalled_.clear();
  }

 private:
  absl::Notification released_;
  std::vector<std::thread> stalled_;
};

// A routing stand-in that records what it is told and can be down.
class FakeRoutingService : public routing::v1::RoutingService::CallbackService {
 public:
  grpc::ServerUnaryReactor* EnqueueSession(grpc::CallbackServerContext* context,
                                           const routing::v1::EnqueueSessionRequest* request,
                                           routing::v1::EnqueueSessionResponse*) override {
    auto* reactor = context->DefaultReactor();
    absl::MutexLock lock(&mu_);
    if (down_) {
      reactor->Finish(grpc::Status(StatusCode::UNAVAILABLE, "down"));
      return reactor;
    }
    enqueued_.push_back(*request);
    authorized_ = authorized_ && FromSessions(*context);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* CancelSession(grpc::CallbackServerContext* context,
                                          const routing::v1::CancelSessionRequest* request,
                                          routing::v1::CancelSessionResponse*) override {
    auto* reactor = context->DefaultReactor();
    absl::MutexLock lock(&mu_);
    cancelled_.push_back(*request);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  void set_down(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  // Checks calls' tokens as routing does (aud routing), from now on.
  void set_verifier(std::unique_ptr<auth::TokenVerifier> verifier) {
    absl::MutexLock lock(&mu_);
    verifier_ = std::move(verifier);
  }
  // Waits up to 5 s for an enqueue of `session_id`.
  std::optional<routing::v1::EnqueueSessionRequest> WaitForEnqueue(const std::string& session_id) {
    for (int i = 0; i < 100; ++i) {
      {
        absl::MutexLock lock(&mu_);
        for (const auto& e : enqueued_) {
          if (e.session_id() == session_id) return e;
        }
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return std::nullopt;
  }
  // The latest enqueue of `session_id`, if any.
  std::optional<routing::v1::EnqueueSessionRequest> LastEnqueue(const std::string& session_id) {
    absl::MutexLock lock(&mu_);
    std::optional<routing::v1::EnqueueSessionRequest> last;
    for (const auto& e : enqueued_) {
      if (e.session_id() == session_id) last = e;
    }
    return last;
  }
  bool WaitForCancel(const std::string& session_id) {
    for (int i = 0; i < 100; ++i) {
      {
        absl::MutexLock lock(&mu_);
        for (const auto& c : cancelled_) {
          if (c.session_id() == session_id) return true;
        }
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }
  bool authorized() {
    absl::MutexLock lock(&mu_);
    return authorized_;
  }

 private:
  absl::Mutex mu_;
  bool down_ = false;
  // Whether the call carries a service token of sessions' for routing.
  bool FromSessions(const grpc::ServerContextBase& context) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (verifier_ == nullptr) return false;
    absl::StatusOr<auth::Principal> caller =
        auth::AuthenticateCall(context, *verifier_, absl::Now());
    return caller.ok() && caller->role == Role::kService && caller->subject == "sessions";
  }

  bool authorized_ = true;
  std::unique_ptr<auth::TokenVerifier> verifier_ ABSL_GUARDED_BY(mu_);
  std::vector<routing::v1::EnqueueSessionRequest> enqueued_;
  std::vector<routing::v1::CancelSessionRequest> cancelled_;
};

std::unique_ptr<grpc::Server> StartPlain(grpc::Service* service, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

// What an Env is built with.
struct EnvOptions {
  // Generous: a bot turn is never late on a busy machine unless a test
  // makes it so on purpose.
  absl::Duration bot_deadline = absl::Seconds(10);
  SessionsOptions sessions = DefaultSessionsOptions();
  SessionsService::Options service = DefaultServiceOptions();
  AttachmentsOptions attachments;

  // The suite's customers open more sessions than the per-customer limits
  // allow (the limits have their own unit test).
  static SessionsOptions DefaultSessionsOptions() {
    SessionsOptions options;
    options.max_creations_per_minute = 1000;
    options.max_open_sessions = 1000;
    return options;
  }
  static SessionsService::Options DefaultServiceOptions() {
    SessionsService::Options options;
    options.replay_page = 4;  // replays span several pages
    options.reads_burst = 1000;
    return options;
  }
};

// Everything main() wires, for one test: real SQLite, real gRPC clients to
// fake bot and routing servers, the sessions server. Each test gets its own
// (nothing shared, no order between tests).
struct Env {
  explicit Env(EnvOptions options = EnvOptions())
      : db(*OpenSessionsDatabase({db_file})) {
    bot_server = StartPlain(&bot, &bot_port);
    routing_server = StartPlain(&routing, &routing_port);
    gate = std::make_unique<storage::CommitGate>(db.get());
    committer = std::make_unique<storage::GroupCommitter>(db.get());
    std::vector<std::unique_ptr<storage::Database>> readers;
    readers.push_back(*storage::Database::Open({db_file}));
    readers.push_back(*storage::Database::Open({db_file}));
    store = std::make_unique<SqliteSessionStore>(committer.get(), std::move(readers),
                                                 "switchboard.sessions.v1", nullptr);
    registry = std::make_shared<prometheus::Registry>();
    metrics = std::make_unique<SessionsMetrics>(*registry);
    bot_token = std::make_unique<client::ServiceToken>(&tokens.service_signer("sessions"),
                                                       "sessions", "bot");
    routing_token = std::make_unique<client::ServiceToken>(&tokens.service_signer("sessions"),
                                                           "sessions", "routing");
    routing.set_verifier(tokens.VerifierFor("routing"));
    bot_client = std::make_unique<GrpcBotClient>(absl::StrCat("127.0.0.1:", bot_port),
                                                 client::ChannelSecurity(),
                                                 bot_token.get(), options.bot_deadline);
    routing_client = std::make_unique<GrpcRoutingClient>(absl::StrCat("127.0.0.1:", routing_port),
                                                         client::ChannelSecurity(),
                                                         routing_token.get(), absl::Seconds(10));
    sessions = std::make_unique<Sessions>(
        store.get(), RealClock(), metrics.get(), &tokens.verifier(), bot_client.get(),
        routing_client.get(), [this](std::function<void()> task) { pool.Run(std::move(task)); },
        [this](std::function<void()> task) { return bot_pool.TryRun(std::move(task)); },
        options.sessions);
    EXPECT_TRUE(sessions->Load().ok());
    blobs = *blob::FileBlobStore::Open(storage::MakeTempDir() + "/attachments");
    classifier = *filetype::FileTypeClassifier::Create();
    attachments = std::make_unique<Attachments>(sessions.get(), blobs.get(), classifier.get(),
                                                &scanner, RealClock(), metrics.get(),
                                                options.attachments);
    service = std::make_unique<SessionsService>(sessions.get(), attachments.get(),
                                                &tokens.verifier(), RealClock(), &pool,
                                                options.service);
    server = std::make_unique<testing::TestServer>(std::vector<grpc::Service*>{service.get()},
                                                   registry, absl::Milliseconds(500));
    server->server().OnDrain([this] { service->EndStreams(); });
    stub = v1::SessionsService::NewStub(server->channel());
  }
  ~Env() {
    bot.JoinStalled();
    server.reset();
    bot_pool.Stop();
    pool.Stop();
    committer->Stop();
    bot_server->Shutdown();
    routing_server->Shutdown();
  }
  std::string db_file = storage::MakeTempDir() + "/sessions.db";
  std::unique_ptr<storage::Database> db;
  FakeBotService bot;
  FakeRoutingService routing;
  int bot_port = 0;
  int routing_port = 0;
  std::unique_ptr<grpc::Server> bot_server;
  std::unique_ptr<grpc::Server> routing_server;
  testing::TestTokens tokens{"sessions"};
  server::BlockingPool pool{8};
  server::BlockingPool bot_pool{4, 64};
  // In front of every commit; open unless a test closes it.
  std::unique_ptr<storage::CommitGate> gate;
  std::unique_ptr<storage::GroupCommitter> committer;
  std::unique_ptr<SqliteSessionStore> store;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<SessionsMetrics> metrics;
  std::unique_ptr<client::ServiceToken> bot_token;
  std::unique_ptr<client::ServiceToken> routing_token;
  std::unique_ptr<GrpcBotClient> bot_client;
  std::unique_ptr<GrpcRoutingClient> routing_client;
  std::unique_ptr<Sessions> sessions;
  std::unique_ptr<blob::FileBlobStore> blobs;
  std::unique_ptr<filetype::FileTypeClassifier> classifier;
  testing::FakeScanner scanner;
  std::unique_ptr<Attachments> attachments;
  std::unique_ptr<SessionsService> service;
  std::unique_ptr<testing::TestServer> server;
  std::unique_ptr<v1::SessionsService::Stub> stub;
};

class SessionsServiceTest : public ::testing::Test {
 protected:
  SessionsServiceTest() : env_(std::make_unique<Env>()) {}
  // Replaces the test's server by one built with `options`.
  void Rebuild(EnvOptions options) {
    env_.reset();
    env_ = std::make_unique<Env>(std::move(options));
  }

  v1::SessionsService::Stub& stub() { return *env_->stub; }
  std::string Customer(const std::string& id = "cust-1") {
    return env_->tokens.For(Role::kCustomer, id);
  }
  std::string Agent(const std::string& id = "agent-1") {
    return env_->tokens.For(Role::kAgent, id);
  }
  std::string Routing() { return env_->tokens.For(Role::kService, "routing"); }
  std::string Supervisor() { return env_->tokens.For(Role::kSupervisor, "sup-1"); }

  v1::Session CreateChat(const std::string& token, const std::string& first = "") {
    v1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_CHAT);
    if (!first.empty()) request.mutable_first_message()->set_text(first);
    v1::CreateSessionResponse response;
    grpc::Status status = stub().CreateSession(ContextWithToken(token).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.session();
  }

  grpc::Status Send(const std::string& token, const std::string& session_id,
                    const std::string& text, const std::string& key,
                    v1::SendMessageResponse* response = nullptr) {
    v1::SendMessageRequest request;
    request.set_session_id(session_id);
    request.set_client_message_id(key);
    request.mutable_message()->set_text(text);
    v1::SendMessageResponse ignored;
    return stub().SendMessage(ContextWithToken(token).get(), request,
                              response ? response : &ignored);
  }

  v1::Session Get(const std::string& session_id, const std::string& token = "") {
    v1::GetSessionRequest request;
    request.set_session_id(session_id);
    v1::GetSessionResponse response;
    EXPECT_TRUE(stub()
                    .GetSession(ContextWithToken(token.empty() ? Supervisor() : token).get(),
                                request, &response)
                    .ok());
    return response.session();
  }

  // Polls until the session reaches `state` (background work), up to 5 s.
  bool WaitForState(const std::string& session_id, v1::SessionState state) {
    for (int i = 0; i < 100; ++i) {
      if (Get(session_id).state() == state) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // Reads a stream until it has seen `last` (or ends); returns the events.
  struct Streamed {
    std::vector<v1::SessionEvent> events;
    int64_t caught_up = -1;
    grpc::Status status;
  };
  Streamed Stream(const std::string& token, const std::string& session_id, int64_t after,
                  int64_t last) {
    v1::StreamSessionEventsRequest request;
    request.set_session_id(session_id);
    request.set_after_sequence(after);
    auto context = ContextWithToken(token, absl::Seconds(10));
    auto reader = stub().StreamSessionEvents(context.get(), request);
    Streamed out;
    v1::StreamSessionEventsResponse response;
    while (reader->Read(&response)) {
      if (response.has_caught_up()) out.caught_up = response.caught_up().last_sequence();
      if (response.has_event()) {
        out.events.push_back(response.event());
        if (response.event().sequence() >= last) {
          context->TryCancel();
          break;
        }
      }
    }
    out.status = reader->Finish();
    return out;
  }

  std::unique_ptr<Env> env_;
};

TEST_F(SessionsServiceTest, BotReplyArrivesOnTheStream) {
  v1::Session s = CreateChat(Customer(), "how do I deposit?");
  EXPECT_EQ(s.state(), v1::SESSION_STATE_BOT);
  Streamed got = Stream(Customer(), s.session_id(), 0, 3);
  ASSERT_EQ(got.events.size(), 3u) << got.status.error_message();
  EXPECT_TRUE(got.events[0].has_state_changed());
  EXPECT_EQ(got.events[1].message().text(), "how do I deposit?");
  EXPECT_EQ(got.events[2].message().sender_role(), common::v1::SENDER_ROLE_BOT);
  EXPECT_EQ(got.events[2].message().text(), "bot: how do I deposit?");
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_BOT);
}

TEST_F(SessionsServiceTest, BotEscalationAndAHumanJourney) {
  v1::Session s = CreateChat(Customer());
  ASSERT_TRUE(Send(Customer(), s.session_id(), "human", "m1").ok());
  ASSERT_TRUE(WaitForState(s.session_id(), v1::SESSION_STATE_QUEUED));
  auto enqueued = env_->routing.WaitForEnqueue(s.session_id());
  ASSERT_TRUE(enqueued.has_value());
  EXPECT_TRUE(env_->routing.authorized());
  EXPECT_EQ(enqueued->handoff().summary(), "wants a human");
  EXPECT_EQ(enqueued->handoff().transcript_excerpt(0).text(), "human");
  // Customers never see the handoff.
  EXPECT_FALSE(Get(s.session_id(), Customer()).has_handoff());
  EXPECT_TRUE(Get(s.session_id()).has_handoff());

  // Routing's contract: RecordOffer, then AssignAgent.
  v1::RecordOfferRequest offer;
  offer.set_session_id(s.session_id());
  offer.set_agent_id("agent-1");
  offer.set_offer_id("offer-1");
  protoutil::ToTimestamp(absl::Now() + absl::Seconds(30), offer.mutable_expires_at());
  v1::RecordOfferResponse offered;
  ASSERT_TRUE(stub().RecordOffer(ContextWithToken(Routing()).get(), offer, &offered).ok());
  EXPECT_EQ(Get(s.session_id(), Agent()).offered_agent_id(), "agent-1");
  // The customer learns who helps them on assignment, never from an offer.
  const v1::Session customer_view = Get(s.session_id(), Customer());
  EXPECT_TRUE(customer_view.offered_agent_id().empty());
  EXPECT_FALSE(customer_view.has_offer_expires_at());
  {
    v1::ListSessionsResponse listed;
    ASSERT_TRUE(stub().ListSessions(ContextWithToken(Customer()).get(), {}, &listed).ok());
    ASSERT_EQ(listed.sessions_size(), 1);
    EXPECT_TRUE(listed.sessions(0).offered_agent_id().empty());
  }
  v1::AssignAgentRequest assign;
  assign.set_session_id(s.session_id());
  assign.set_agent_id("agent-1");
  assign.set_agent_display_name("Ana");
  assign.set_offer_id("offer-1");
  v1::AssignAgentResponse assigned;
  ASSERT_TRUE(stub().AssignAgent(ContextWithToken(Routing()).get(), assign, &assigned).ok());
  EXPECT_EQ(assigned.session().state(), v1::SESSION_STATE_ASSIGNED);
  // An agent cannot assign, nor any service but routing (the bot's key
  // claiming to be routing is not routing).
  EXPECT_EQ(stub().AssignAgent(ContextWithToken(Agent()).get(), assign, &assigned).error_code(),
            StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stub()
                .AssignAgent(ContextWithToken(env_->tokens.For(Role::kService, "bot")).get(),
                             assign, &assigned)
                .error_code(),
            StatusCode::PERMISSION_DENIED);
  auth::Claims forged;
  forged.audience = "sessions";
  forged.subject = "routing";
  forged.issued_at = absl::Now();
  forged.expires_at = absl::Now() + absl::Minutes(5);
  forged.strings["role"] = "service";
  const std::string bot_as_routing = *env_->tokens.service_signer("bot").Sign(forged);
  EXPECT_EQ(
      stub().AssignAgent(ContextWithToken(bot_as_routing).get(), assign, &assigned).error_code(),
      StatusCode::UNAUTHENTICATED);

  ASSERT_TRUE(Send(Agent(), s.session_id(), "Hi, I am Ana", "a1").ok());
  EXPECT_TRUE(Get(s.session_id()).has_first_human_response_at());
  EXPECT_EQ(Send(Agent("agent-2"), s.session_id(), "me too", "a2").error_code(),
            StatusCode::NOT_FOUND);

  v1::ResolveSessionRequest resolve;
  resolve.set_session_id(s.session_id());
  v1::ResolveSessionResponse resolved;
  ASSERT_TRUE(stub().ResolveSession(ContextWithToken(Agent()).get(), resolve, &resolved).ok());
  EXPECT_EQ(resolved.session().state(), v1::SESSION_STATE_RESOLVED);
  EXPECT_TRUE(env_->routing.WaitForCancel(s.session_id()));
  const std::string metrics = env_->server->Metrics();
  EXPECT_TRUE(absl::StrContains(metrics, "# HELP switchboard_sessions_queue_wait_seconds"));
  EXPECT_TRUE(absl::StrContains(
      metrics, "switchboard_sessions_first_human_response_seconds_count{category=\"general\","
               "channel=\"chat\"}"));
}

TEST_F(SessionsServiceTest, ExplicitEscalation) {
  v1::Session s = CreateChat(Customer());
  v1::EscalateSessionRequest request;
  request.set_session_id(s.session_id());
  v1::EscalateSessionResponse response;
  ASSERT_TRUE(stub().EscalateSession(ContextWithToken(Customer()).get(), request, &response).ok());
  EXPECT_EQ(response.session().state(), v1::SESSION_STATE_QUEUED);
  auto enqueued = env_->routing.WaitForEnqueue(s.session_id());
  ASSERT_TRUE(enqueued.has_value());
  EXPECT_EQ(enqueued->reason(), routing::v1::ENQUEUE_REASON_ESCALATED);
  EXPECT_EQ(enqueued->handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
}

TEST_F(SessionsServiceTest, BotDownOrSlowStillGetsTheCustomerToAHuman) {
  // A short deadline, which the stalled bot misses whatever the machine's
  // speed.
  EnvOptions options;
  options.bot_deadline = absl::Milliseconds(300);
  Rebuild(options);
  for (const std::string text : {"crash", "slow"}) {
    v1::Session s = CreateChat(Customer());
    v1::SendMessageResponse sent;
    ASSERT_TRUE(Send(Customer(), s.session_id(), text, "m1", &sent).ok());
    ASSERT_TRUE(WaitForState(s.session_id(), v1::SESSION_STATE_QUEUED)) << text;
    v1::Session after = Get(s.session_id());
    EXPECT_EQ(after.handoff().reason(), common::v1::ESCALATION_REASON_BOT_UNAVAILABLE);
    ASSERT_TRUE(env_->routing.WaitForEnqueue(s.session_id()).has_value());
    v1::ListMessagesRequest list;
    list.set_session_id(s.session_id());
    v1::ListMessagesResponse messages;
    ASSERT_TRUE(stub().ListMessages(ContextWithToken(Customer()).get(), list, &messages).ok());
    ASSERT_EQ(messages.messages_size(), 1);
    EXPECT_EQ(messages.messages(0).text(), text);
  }
}

TEST_F(SessionsServiceTest, RoutingDownKeepsTheSessionQueued) {
  env_->routing.set_down(true);
  v1::Session s = CreateChat(Customer("cust-9"));
  v1::EscalateSessionRequest request;
  request.set_session_id(s.session_id());
  v1::EscalateSessionResponse response;
  ASSERT_TRUE(
      stub().EscalateSession(ContextWithToken(Customer("cust-9")).get(), request, &response).ok());
  EXPECT_EQ(response.session().state(), v1::SESSION_STATE_QUEUED);
  absl::SleepFor(absl::Milliseconds(200));
  env_->routing.set_down(false);
  env_->sessions->RetryRouting();
  EXPECT_TRUE(env_->routing.WaitForEnqueue(s.session_id()).has_value());
}

TEST_F(SessionsServiceTest, ResumedStreamMissesNothingAndRepeatsNothing) {
  v1::Session s = CreateChat(Customer());
  v1::EscalateSessionRequest escalate;
  escalate.set_session_id(s.session_id());
  v1::EscalateSessionResponse escalated;
  ASSERT_TRUE(
      stub().EscalateSession(ContextWithToken(Customer()).get(), escalate, &escalated).ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Send(Customer(), s.session_id(), absl::StrCat("before ", i),
                     absl::StrCat("b", i)).ok());
  }
  const int64_t resume_from = 3;
  const int kLive = 25;
  const int64_t last = Get(s.session_id()).last_sequence() + kLive;
  // Messages keep coming while the stream replays and switches to live.
  std::thread writer([&] {
    for (int i = 0; i < kLive; ++i) {
      v1::SendMessageRequest request;
      request.set_session_id(s.session_id());
      request.set_client_message_id(absl::StrCat("l", i));
      request.mutable_message()->set_text(absl::StrCat("live ", i));
      v1::SendMessageResponse response;
      grpc::Status status;
      // Over the per-sender rate limit the writer waits and retries.
      do {
        status = stub().SendMessage(ContextWithToken(Customer()).get(), request, &response);
        if (status.error_code() == StatusCode::RESOURCE_EXHAUSTED) {
          absl::SleepFor(absl::Milliseconds(100));
        }
      } while (status.error_code() == StatusCode::RESOURCE_EXHAUSTED);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  });
  Streamed got = Stream(Customer(), s.session_id(), resume_from, last);
  writer.join();
  ASSERT_FALSE(got.events.empty()) << got.status.error_message();
  EXPECT_GE(got.caught_up, resume_from);
  for (size_t i = 0; i < got.events.size(); ++i) {
    ASSERT_EQ(got.events[i].sequence(), resume_from + 1 + static_cast<int64_t>(i));
  }
  EXPECT_EQ(got.events.back().sequence(), last);
  // Resuming at the end gives CaughtUp at once; past the end is OUT_OF_RANGE.
  v1::StreamSessionEventsRequest beyond;
  beyond.set_session_id(s.session_id());
  beyond.set_after_sequence(last + 5);
  auto context = ContextWithToken(Customer());
  auto reader = stub().StreamSessionEvents(context.get(), beyond);
  v1::StreamSessionEventsResponse ignored;
  EXPECT_FALSE(reader->Read(&ignored));
  EXPECT_EQ(reader->Finish().error_code(), StatusCode::OUT_OF_RANGE);
}

TEST_F(SessionsServiceTest, RetriedSendMessageIsNotDuplicated) {
  v1::Session s = CreateChat(Customer());
  v1::SendMessageResponse first, retry;
  ASSERT_TRUE(Send(Customer(), s.session_id(), "once", "same-key", &first).ok());
  ASSERT_TRUE(Send(Customer(), s.session_id(), "once", "same-key", &retry).ok());
  EXPECT_FALSE(first.replayed());
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(first.message().sequence(), retry.message().sequence());
  EXPECT_EQ(Send(Customer(), s.session_id(), "different", "same-key").error_code(),
            StatusCode::ALREADY_EXISTS);
  v1::ListMessagesRequest list;
  list.set_session_id(s.session_id());
  v1::ListMessagesResponse messages;
  ASSERT_TRUE(stub().ListMessages(ContextWithToken(Customer()).get(), list, &messages).ok());
  int customer_messages = 0;
  for (const auto& m : messages.messages()) {
    customer_messages += m.sender_role() == common::v1::SENDER_ROLE_CUSTOMER;
  }
  EXPECT_EQ(customer_messages, 1);
}

TEST_F(SessionsServiceTest, MessagesWaitingForTheDiskHoldNoWorkerAndAFailedCommitReachesTheCaller) {
  v1::Session s = CreateChat(Customer());
  env_->gate->Close();
  // As many messages as the pool has workers (8), all waiting for the disk.
  constexpr int kSends = 8;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<v1::SendMessageRequest> requests(kSends);
  std::vector<v1::SendMessageResponse> responses(kSends);
  std::vector<grpc::Status> statuses(kSends);
  absl::BlockingCounter answered(kSends);
  for (int i = 0; i < kSends; ++i) {
    requests[i].set_session_id(s.session_id());
    requests[i].set_client_message_id(absl::StrCat("k", i));
    requests[i].mutable_message()->set_text("hello");
    contexts.push_back(ContextWithToken(Customer()));
    stub().async()->SendMessage(contexts.back().get(), &requests[i], &responses[i],
                                [&statuses, &answered, i](grpc::Status status) {
                                  statuses[i] = std::move(status);
                                  answered.DecrementCount();
                                });
  }
  ASSERT_TRUE(env_->gate->AwaitHeld(1));
  for (int tries = 0; env_->sessions->footprint().pending_keys < kSends && tries < 1000;
       ++tries) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(env_->sessions->footprint().pending_keys, static_cast<size_t>(kSends));
  // Every message is decided and waits for the disk, yet a call that needs
  // a worker is served: none of them holds one.
  v1::ListMessagesRequest list;
  list.set_session_id(s.session_id());
  v1::ListMessagesResponse messages;
  auto list_context = ContextWithToken(Customer());
  list_context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::Status listed = stub().ListMessages(list_context.get(), list, &messages);
  EXPECT_TRUE(listed.ok()) << listed.error_message();
  EXPECT_EQ(messages.messages_size(), 0) << "a message answered before it is durable";
  // The held commit fails; the messages behind it are not written either.
  env_->gate->FailHeld();
  env_->gate->Open();
  answered.Wait();
  for (const grpc::Status& status : statuses) {
    EXPECT_EQ(status.error_code(), StatusCode::UNAVAILABLE) << status.error_message();
  }
  EXPECT_EQ(Send(Customer(), s.session_id(), "again", "k-later").error_code(),
            StatusCode::UNAVAILABLE);
}

TEST_F(SessionsServiceTest, EveryConversationWriteWaitsForTheDiskWithoutAWorker) {
  // Sessions in the states the writes below need, routing told of each.
  auto queued = [&](const std::string& customer) {
    v1::Session s = CreateChat(Customer(customer));
    EXPECT_TRUE(Send(Customer(customer), s.session_id(), "human", "m1").ok());
    EXPECT_TRUE(WaitForState(s.session_id(), v1::SESSION_STATE_QUEUED));
    EXPECT_TRUE(env_->routing.WaitForEnqueue(s.session_id()).has_value());
    return s.session_id();
  };
  const std::string to_offer = queued("cust-1");
  const std::string to_assign = queued("cust-2");
  const std::string to_resolve = queued("cust-3");
  v1::AssignAgentRequest assign;
  assign.set_session_id(to_resolve);
  assign.set_agent_id("agent-1");
  assign.set_offer_id("offer-0");
  v1::AssignAgentResponse assigned;
  ASSERT_TRUE(stub().AssignAgent(ContextWithToken(Routing()).get(), assign, &assigned).ok());
  const std::string to_close = CreateChat(Customer("cust-4")).session_id();

  env_->gate->Close();
  // More calls than the pool has workers (8), each waiting for the disk.
  struct Call {
    std::unique_ptr<grpc::ClientContext> context;
    grpc::Status status;
  };
  std::vector<Call> calls(9);
  absl::BlockingCounter answered(static_cast<int>(calls.size()));
  int next = 0;
  auto start = [&](const std::string& token) {
    Call& call = calls[next++];
    call.context = ContextWithToken(token, absl::Seconds(30));
    return std::make_pair(call.context.get(), [&call, &answered](grpc::Status status) {
      call.status = std::move(status);
      answered.DecrementCount();
    });
  };
  v1::CreateSessionRequest create;
  create.set_channel(common::v1::CHANNEL_CHAT);
  create.mutable_first_message()->set_text("hello");
  std::vector<v1::CreateSessionResponse> created(4);
  for (int i = 0; i < 4; ++i) {
    auto [context, done] = start(Customer(absl::StrCat("cust-new-", i)));
    stub().async()->CreateSession(context, &create, &created[i], done);
  }
  v1::RecordOfferRequest offer;
  offer.set_session_id(to_offer);
  offer.set_agent_id("agent-2");
  offer.set_offer_id("offer-1");
  protoutil::ToTimestamp(absl::Now() + absl::Minutes(5), offer.mutable_expires_at());
  v1::RecordOfferResponse offered;
  {
    auto [context, done] = start(Routing());
    stub().async()->RecordOffer(context, &offer, &offered, done);
  }
  v1::AssignAgentRequest assign_now = assign;
  assign_now.set_session_id(to_assign);
  assign_now.set_agent_id("agent-3");
  assign_now.set_offer_id("offer-2");
  v1::AssignAgentResponse assigned_now;
  {
    auto [context, done] = start(Routing());
    stub().async()->AssignAgent(context, &assign_now, &assigned_now, done);
  }
  v1::ResolveSessionRequest resolve;
  resolve.set_session_id(to_resolve);
  v1::ResolveSessionResponse resolved;
  {
    auto [context, done] = start(Agent("agent-1"));
    stub().async()->ResolveSession(context, &resolve, &resolved, done);
  }
  v1::CloseSessionRequest close;
  close.set_session_id(to_close);
  v1::CloseSessionResponse closed;
  {
    auto [context, done] = start(Customer("cust-4"));
    stub().async()->CloseSession(context, &close, &closed, done);
  }
  ASSERT_TRUE(env_->gate->AwaitHeld(1));
  // Once the close is decided (its write in flight, so the session is not
  // readable from memory), a read of the session waits for it too.
  const Caller closer{"cust-4", Role::kCustomer};
  for (int tries = 0; env_->sessions->TryGet(closer, to_close).has_value() && tries < 500;
       ++tries) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_FALSE(env_->sessions->TryGet(closer, to_close).has_value());
  v1::GetSessionRequest get;
  get.set_session_id(to_close);
  v1::GetSessionResponse got;
  {
    auto [context, done] = start(Customer("cust-4"));
    stub().async()->GetSession(context, &get, &got, done);
  }
  ASSERT_EQ(next, static_cast<int>(calls.size()));
  absl::SleepFor(absl::Milliseconds(200));

  // None of them holds a worker: a call that needs one is served.
  v1::ListMessagesRequest list;
  list.set_session_id(to_offer);
  v1::ListMessagesResponse messages;
  auto list_context = ContextWithToken(Customer("cust-1"), absl::Seconds(10));
  grpc::Status listed = stub().ListMessages(list_context.get(), list, &messages);
  EXPECT_TRUE(listed.ok()) << listed.error_message();

  env_->gate->Open();
  answered.Wait();
  for (const Call& call : calls) EXPECT_TRUE(call.status.ok()) << call.status.error_message();
  for (const v1::CreateSessionResponse& response : created) {
    EXPECT_EQ(response.session().state(), v1::SESSION_STATE_BOT);
    EXPECT_EQ(response.first_message().text(), "hello");
  }
  EXPECT_EQ(Get(to_offer).offered_agent_id(), "agent-2");
  EXPECT_EQ(assigned_now.session().state(), v1::SESSION_STATE_ASSIGNED);
  EXPECT_EQ(resolved.session().state(), v1::SESSION_STATE_RESOLVED);
  EXPECT_EQ(closed.session().state(), v1::SESSION_STATE_CLOSED);
  EXPECT_EQ(got.session().state(), v1::SESSION_STATE_CLOSED)
      << "a read during the close answered with what was not durable yet";
  // What follows each write still happens once it is durable.
  EXPECT_TRUE(env_->routing.WaitForCancel(to_resolve));
  const std::string& greeted = created[0].session().session_id();
  for (int tries = 0; Get(greeted).message_count() < 2 && tries < 100; ++tries) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(Get(greeted).message_count(), 2) << "the first message's bot turn did not run";
}

TEST_F(SessionsServiceTest, AnotherCustomerGetsTheSameAnswerAsAMissingSession) {
  v1::Session s = CreateChat(Customer());
  for (const std::string& id : {s.session_id(), std::string("s-does-not-exist")}) {
    v1::GetSessionRequest get;
    get.set_session_id(id);
    v1::GetSessionResponse got;
    grpc::Status status = stub().GetSession(ContextWithToken(Customer("cust-2")).get(), get, &got);
    EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND);
    EXPECT_EQ(status.error_message(), "session_id: no such session");
    EXPECT_EQ(Send(Customer("cust-2"), id, "hi", "k").error_code(), StatusCode::NOT_FOUND);
    Streamed streamed = Stream(Customer("cust-2"), id, 0, 1);
    EXPECT_EQ(streamed.status.error_code(), StatusCode::NOT_FOUND);
    v1::ListMessagesRequest list;
    list.set_session_id(id);
    v1::ListMessagesResponse messages;
    EXPECT_EQ(stub().ListMessages(ContextWithToken(Customer("cust-2")).get(), list, &messages)
                  .error_code(),
              StatusCode::NOT_FOUND);
  }
}

TEST_F(SessionsServiceTest, BadInputsOnEveryRpcAndTheServerKeepsServing) {
  v1::Session s = CreateChat(Customer());
  const std::string id = s.session_id();
  auto code = [](const grpc::Status& status) { return status.error_code(); };
  auto ctx = [](const std::string& token) { return ContextWithToken(token); };
  // No token, on every RPC.
  {
    v1::CreateSessionResponse r1;
    EXPECT_EQ(code(stub().CreateSession(ctx("").get(), {}, &r1)), StatusCode::UNAUTHENTICATED);
    v1::GetSessionResponse r2;
    EXPECT_EQ(code(stub().GetSession(ctx("").get(), {}, &r2)), StatusCode::UNAUTHENTICATED);
    v1::ListSessionsResponse r3;
    EXPECT_EQ(code(stub().ListSessions(ctx("").get(), {}, &r3)), StatusCode::UNAUTHENTICATED);
    v1::SendMessageResponse r4;
    EXPECT_EQ(code(stub().SendMessage(ctx("").get(), {}, &r4)), StatusCode::UNAUTHENTICATED);
    v1::ListMessagesResponse r5;
    EXPECT_EQ(code(stub().ListMessages(ctx("").get(), {}, &r5)), StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Stream("", id, 0, 1).status.error_code(), StatusCode::UNAUTHENTICATED);
    v1::UpdateTypingResponse r6;
    EXPECT_EQ(code(stub().UpdateTyping(ctx("").get(), {}, &r6)), StatusCode::UNAUTHENTICATED);
    v1::AttachVerificationResponse r7;
    EXPECT_EQ(code(stub().AttachVerification(ctx("").get(), {}, &r7)),
              StatusCode::UNAUTHENTICATED);
    v1::EscalateSessionResponse r8;
    EXPECT_EQ(code(stub().EscalateSession(ctx("").get(), {}, &r8)), StatusCode::UNAUTHENTICATED);
    v1::RecordOfferResponse r9;
    EXPECT_EQ(code(stub().RecordOffer(ctx("").get(), {}, &r9)), StatusCode::UNAUTHENTICATED);
    v1::AssignAgentResponse r10;
    EXPECT_EQ(code(stub().AssignAgent(ctx("").get(), {}, &r10)), StatusCode::UNAUTHENTICATED);
    v1::TransferSessionResponse r11;
    EXPECT_EQ(code(stub().TransferSession(ctx("").get(), {}, &r11)), StatusCode::UNAUTHENTICATED);
    v1::RequeueSessionResponse r12;
    EXPECT_EQ(code(stub().RequeueSession(ctx("").get(), {}, &r12)), StatusCode::UNAUTHENTICATED);
    v1::ResolveSessionResponse r13;
    EXPECT_EQ(code(stub().ResolveSession(ctx("").get(), {}, &r13)), StatusCode::UNAUTHENTICATED);
    v1::ReopenSessionResponse r14;
    EXPECT_EQ(code(stub().ReopenSession(ctx("").get(), {}, &r14)), StatusCode::UNAUTHENTICATED);
    v1::CloseSessionResponse r15;
    EXPECT_EQ(code(stub().CloseSession(ctx("").get(), {}, &r15)), StatusCode::UNAUTHENTICATED);
    v1::RequestCallbackResponse r16;
    EXPECT_EQ(code(stub().RequestCallback(ctx("").get(), {}, &r16)), StatusCode::UNAUTHENTICATED);
  }
  // Bad input, unknown ids, wrong roles and wrong states.
  {
    v1::CreateSessionRequest create;
    v1::CreateSessionResponse created;
    EXPECT_EQ(code(stub().CreateSession(ctx(Customer()).get(), create, &created)),
              StatusCode::INVALID_ARGUMENT);  // no channel
    create.set_channel(static_cast<common::v1::Channel>(99));
    EXPECT_EQ(code(stub().CreateSession(ctx(Customer()).get(), create, &created)),
              StatusCode::INVALID_ARGUMENT);
    create.set_channel(common::v1::CHANNEL_EMAIL);
    create.set_category(common::v1::CATEGORY_DEPOSIT);
    EXPECT_EQ(code(stub().CreateSession(ctx(Customer()).get(), create, &created)),
              StatusCode::INVALID_ARGUMENT);  // no subject
    EXPECT_EQ(code(stub().CreateSession(ctx(Agent()).get(), create, &created)),
              StatusCode::PERMISSION_DENIED);

    v1::GetSessionRequest get;
    v1::GetSessionResponse got;
    EXPECT_EQ(code(stub().GetSession(ctx(Customer()).get(), get, &got)),
              StatusCode::INVALID_ARGUMENT);
    get.set_session_id("nope");
    EXPECT_EQ(code(stub().GetSession(ctx(Customer()).get(), get, &got)), StatusCode::NOT_FOUND);

    v1::ListSessionsRequest list;
    list.add_states(static_cast<v1::SessionState>(42));
    v1::ListSessionsResponse listed;
    EXPECT_EQ(code(stub().ListSessions(ctx(Customer()).get(), list, &listed)),
              StatusCode::INVALID_ARGUMENT);
    list.clear_states();
    list.set_page_size(1000);
    EXPECT_EQ(code(stub().ListSessions(ctx(Customer()).get(), list, &listed)),
              StatusCode::INVALID_ARGUMENT);

    EXPECT_EQ(code(Send(Customer(), id, "", "k")), StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(code(Send(Customer(), id, std::string(4001, 'x'), "k")),
              StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(code(Send(Customer(), id, "bad \xff\xfe", "k")), StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(code(Send(Customer(), id, "ctl \x01", "k")), StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(code(Send(Customer(), id, "ok", "")), StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(code(Send(Agent(), id, "ok", "k")), StatusCode::NOT_FOUND);

    v1::ListMessagesRequest messages;
    messages.set_session_id(id);
    messages.set_after_sequence(-1);
    v1::ListMessagesResponse listed_messages;
    EXPECT_EQ(code(stub().ListMessages(ctx(Customer()).get(), messages, &listed_messages)),
              StatusCode::INVALID_ARGUMENT);
    messages.set_after_sequence(0);
    messages.set_page_token("garbage");
    EXPECT_EQ(code(stub().ListMessages(ctx(Customer()).get(), messages, &listed_messages)),
              StatusCode::INVALID_ARGUMENT);

    EXPECT_EQ(Stream(Customer(), id, -1, 1).status.error_code(), StatusCode::INVALID_ARGUMENT);

    v1::UpdateTypingRequest typing;
    typing.set_session_id("nope");
    v1::UpdateTypingResponse typed;
    EXPECT_EQ(code(stub().UpdateTyping(ctx(Customer()).get(), typing, &typed)),
              StatusCode::NOT_FOUND);
    EXPECT_EQ(code(stub().UpdateTyping(ctx(Supervisor()).get(), typing, &typed)),
              StatusCode::PERMISSION_DENIED);

    v1::AttachVerificationRequest verify;
    verify.set_session_id(id);
    v1::AttachVerificationResponse verified;
    EXPECT_EQ(code(stub().AttachVerification(ctx(Customer()).get(), verify, &verified)),
              StatusCode::INVALID_ARGUMENT);  // token missing
    verify.set_verification_token("abc.def.ghi");
    EXPECT_EQ(code(stub().AttachVerification(ctx(Customer()).get(), verify, &verified)),
              StatusCode::INVALID_ARGUMENT);  // malformed
    verify.set_verification_token(Customer());  // an access token is not a verification
    EXPECT_EQ(code(stub().AttachVerification(ctx(Customer()).get(), verify, &verified)),
              StatusCode::PERMISSION_DENIED);

    v1::RecordOfferRequest offer;
    offer.set_session_id(id);
    offer.set_agent_id("agent-1");
    offer.set_offer_id("o");
    v1::RecordOfferResponse offered;
    EXPECT_EQ(code(stub().RecordOffer(ctx(Routing()).get(), offer, &offered)),
              StatusCode::INVALID_ARGUMENT);  // no expiry
    protoutil::ToTimestamp(absl::Now() + absl::Seconds(30), offer.mutable_expires_at());
    EXPECT_EQ(code(stub().RecordOffer(ctx(Routing()).get(), offer, &offered)),
              StatusCode::FAILED_PRECONDITION);  // BOT, not QUEUED
    EXPECT_EQ(code(stub().RecordOffer(ctx(Customer()).get(), offer, &offered)),
              StatusCode::PERMISSION_DENIED);

    v1::AssignAgentRequest assign;
    assign.set_session_id(id);
    assign.set_agent_id("agent-1");
    assign.set_offer_id("o");
    v1::AssignAgentResponse assigned;
    EXPECT_EQ(code(stub().AssignAgent(ctx(Routing()).get(), assign, &assigned)),
              StatusCode::FAILED_PRECONDITION);
    assign.set_agent_id("");
    EXPECT_EQ(code(stub().AssignAgent(ctx(Routing()).get(), assign, &assigned)),
              StatusCode::INVALID_ARGUMENT);

    v1::TransferSessionRequest transfer;
    transfer.set_session_id(id);
    v1::TransferSessionResponse transferred;
    EXPECT_EQ(code(stub().TransferSession(ctx(Supervisor()).get(), transfer, &transferred)),
              StatusCode::INVALID_ARGUMENT);  // no target
    transfer.set_to_bot(true);
    EXPECT_EQ(code(stub().TransferSession(ctx(Supervisor()).get(), transfer, &transferred)),
              StatusCode::FAILED_PRECONDITION);  // not ASSIGNED
    EXPECT_EQ(code(stub().TransferSession(ctx(Customer()).get(), transfer, &transferred)),
              StatusCode::PERMISSION_DENIED);

    v1::RequeueSessionRequest requeue;
    requeue.set_session_id(id);
    requeue.set_agent_id("agent-1");
    v1::RequeueSessionResponse requeued;
    EXPECT_EQ(code(stub().RequeueSession(ctx(Routing()).get(), requeue, &requeued)),
              StatusCode::FAILED_PRECONDITION);

    v1::ReopenSessionRequest reopen;
    reopen.set_session_id(id);
    v1::ReopenSessionResponse reopened;
    EXPECT_EQ(code(stub().ReopenSession(ctx(Customer()).get(), reopen, &reopened)),
              StatusCode::FAILED_PRECONDITION);

    v1::CloseSessionRequest close;
    close.set_session_id(id);
    close.set_reason(static_cast<v1::CloseReason>(77));
    v1::CloseSessionResponse closed;
    EXPECT_EQ(code(stub().CloseSession(ctx(Customer()).get(), close, &closed)),
              StatusCode::INVALID_ARGUMENT);
    close.set_reason(v1::CLOSE_REASON_UNSPECIFIED);
    EXPECT_EQ(code(stub().CloseSession(ctx(Routing()).get(), close, &closed)),
              StatusCode::PERMISSION_DENIED);  // of the services, only feedback closes
    EXPECT_EQ(code(stub().CloseSession(ctx(env_->tokens.For(Role::kService, "feedback")).get(),
                                       close, &closed)),
              StatusCode::FAILED_PRECONDITION);  // and only RESOLVED sessions

    v1::RequestCallbackRequest callback;
    callback.set_session_id(id);
    v1::RequestCallbackResponse called;
    EXPECT_EQ(code(stub().RequestCallback(ctx(Customer()).get(), callback, &called)),
              StatusCode::INVALID_ARGUMENT);
    callback.mutable_callback()->set_phone_number("+8613800138000");
    protoutil::ToTimestamp(absl::Now() + absl::Hours(1),
                           callback.mutable_callback()->mutable_window_end());
    EXPECT_EQ(code(stub().RequestCallback(ctx(Customer()).get(), callback, &called)),
              StatusCode::INVALID_ARGUMENT);  // verification token missing

    v1::ResolveSessionRequest resolve;
    resolve.set_session_id(id);
    v1::ResolveSessionResponse resolved;
    EXPECT_EQ(code(stub().ResolveSession(ctx(Supervisor()).get(), resolve, &resolved)),
              StatusCode::FAILED_PRECONDITION);  // BOT: customers only
  }
  // Still serving, and the session is unchanged by all of it.
  v1::Session after = Get(id);
  EXPECT_EQ(after.state(), v1::SESSION_STATE_BOT);
  EXPECT_EQ(after.last_sequence(), s.last_sequence());
  v1::CloseSessionRequest close;
  close.set_session_id(id);
  v1::CloseSessionResponse closed;
  ASSERT_TRUE(stub().CloseSession(ContextWithToken(Customer()).get(), close, &closed).ok());
  EXPECT_EQ(closed.session().state(), v1::SESSION_STATE_CLOSED);
  EXPECT_EQ(closed.session().close_reason(), v1::CLOSE_REASON_CUSTOMER_LEFT);
  // A stream of a closed session replays and ends with OK.
  Streamed streamed = Stream(Customer(), id, 0, 1000);
  EXPECT_TRUE(streamed.status.ok()) << streamed.status.error_message();
  EXPECT_EQ(streamed.events.back().state_changed().state(), v1::SESSION_STATE_CLOSED);
}

TEST_F(SessionsServiceTest, AnOfferedAgentsStreamEndsWhenTheOfferLapses) {
  v1::Session s = CreateChat(Customer());
  v1::EscalateSessionRequest escalate;
  escalate.set_session_id(s.session_id());
  v1::EscalateSessionResponse escalated;
  ASSERT_TRUE(
      stub().EscalateSession(ContextWithToken(Customer()).get(), escalate, &escalated).ok());
  v1::RecordOfferRequest offer;
  offer.set_session_id(s.session_id());
  offer.set_agent_id("agent-7");
  offer.set_offer_id("offer-7");
  protoutil::ToTimestamp(absl::Now() + absl::Milliseconds(500), offer.mutable_expires_at());
  v1::RecordOfferResponse offered;
  ASSERT_TRUE(stub().RecordOffer(ContextWithToken(Routing()).get(), offer, &offered).ok());

  v1::StreamSessionEventsRequest request;
  request.set_session_id(s.session_id());
  auto context = ContextWithToken(Agent("agent-7"));
  auto reader = stub().StreamSessionEvents(context.get(), request);
  v1::StreamSessionEventsResponse response;
  bool caught_up = false;
  while (!caught_up && reader->Read(&response)) caught_up = response.has_caught_up();
  ASSERT_TRUE(caught_up);
  absl::SleepFor(absl::Milliseconds(600));
  ASSERT_TRUE(env_->sessions->Sweep().ok());
  while (reader->Read(&response)) {
  }
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(SessionsServiceTest, DrainEndsStreamsWithUnavailable) {
  v1::Session s = CreateChat(Customer());
  v1::StreamSessionEventsRequest request;
  request.set_session_id(s.session_id());
  auto context = ContextWithToken(Customer());
  auto reader = stub().StreamSessionEvents(context.get(), request);
  v1::StreamSessionEventsResponse response;
  bool caught_up = false;
  while (!caught_up && reader->Read(&response)) caught_up = response.has_caught_up();
  ASSERT_TRUE(caught_up);
  std::thread shutdown([this] { env_->server->server().Shutdown(); });
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), StatusCode::UNAVAILABLE);
  shutdown.join();
}

TEST_F(SessionsServiceTest, AttachVerificationRecordsTheCustomersVerification) {
  v1::Session s = CreateChat(Customer());
  auth::VerificationClaims claims;
  claims.customer_id = "cust-1";
  claims.method = "email_otp";
  claims.level = auth::kLevelBasic;
  claims.token_id = "tid-9";
  claims.issued_at = absl::Now();
  claims.expires_at = absl::Now() + absl::Minutes(10);
  claims.session_id = s.session_id();
  auto token = auth::SignVerificationToken(env_->tokens.verification_signer(), claims);
  ASSERT_TRUE(token.ok()) << token.status();
  v1::AttachVerificationRequest request;
  request.set_session_id(s.session_id());
  request.set_verification_token(*token);
  v1::AttachVerificationResponse response;
  grpc::Status status =
      stub().AttachVerification(ContextWithToken(Customer()).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.verification().method(), common::v1::VERIFICATION_METHOD_EMAIL_OTP);
  EXPECT_EQ(response.verification().level(), common::v1::VERIFICATION_LEVEL_BASIC);
  EXPECT_EQ(response.sequence(), s.last_sequence() + 1);
  // On the session for agents to see, and on the stream; the token itself
  // is kept nowhere.
  v1::Session after = Get(s.session_id());
  EXPECT_EQ(after.verification().level(), common::v1::VERIFICATION_LEVEL_BASIC);
  Streamed got = Stream(Customer(), s.session_id(), 0, response.sequence());
  ASSERT_FALSE(got.events.empty());
  EXPECT_TRUE(got.events.back().has_verification_attached());
  EXPECT_FALSE(absl::StrContains(after.DebugString(), *token));
  // Another customer's token is refused.
  claims.customer_id = "cust-2";
  request.set_verification_token(
      *auth::SignVerificationToken(env_->tokens.verification_signer(), claims));
  EXPECT_EQ(stub()
                .AttachVerification(ContextWithToken(Customer()).get(), request, &response)
                .error_code(),
            StatusCode::PERMISSION_DENIED);
}

TEST_F(SessionsServiceTest, TransferToANamedAgent) {
  v1::Session s = CreateChat(Customer());
  v1::EscalateSessionRequest escalate;
  escalate.set_session_id(s.session_id());
  v1::EscalateSessionResponse escalated;
  ASSERT_TRUE(
      stub().EscalateSession(ContextWithToken(Customer()).get(), escalate, &escalated).ok());
  v1::AssignAgentRequest assign;
  assign.set_session_id(s.session_id());
  assign.set_agent_id("agent-1");
  assign.set_offer_id("offer-1");
  v1::AssignAgentResponse assigned;
  ASSERT_TRUE(stub().AssignAgent(ContextWithToken(Routing()).get(), assign, &assigned).ok());
  v1::TransferSessionRequest transfer;
  transfer.set_session_id(s.session_id());
  transfer.set_agent_id("agent-9");
  transfer.set_note("speaks the customer's dialect");
  transfer.set_request_id("tr-1");
  v1::TransferSessionResponse transferred;
  grpc::Status status =
      stub().TransferSession(ContextWithToken(Agent()).get(), transfer, &transferred);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(transferred.session().state(), v1::SESSION_STATE_QUEUED);
  EXPECT_TRUE(transferred.session().assigned_agent_id().empty());
  // Routing hears of it with the target and the note; agent-1 is out.
  std::optional<routing::v1::EnqueueSessionRequest> last;
  for (int i = 0; i < 100 && !(last && last->target_agent_id() == "agent-9"); ++i) {
    last = env_->routing.LastEnqueue(s.session_id());
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->target_agent_id(), "agent-9");
  EXPECT_EQ(last->excluded_agent_id(), "agent-1");
  EXPECT_EQ(last->transfer_note(), "speaks the customer's dialect");
  EXPECT_TRUE(last->at_head());
  v1::GetSessionRequest get;
  get.set_session_id(s.session_id());
  v1::GetSessionResponse got;
  EXPECT_EQ(stub().GetSession(ContextWithToken(Agent()).get(), get, &got).error_code(),
            StatusCode::NOT_FOUND);
  // The retry is answered with the session, not transferred twice.
  ASSERT_TRUE(
      stub().TransferSession(ContextWithToken(Supervisor()).get(), transfer, &transferred).ok());
  EXPECT_EQ(transferred.session().transfer_count(), 1);
}

TEST_F(SessionsServiceTest, ClosedSessionsAreServedFromTheStore) {
  EnvOptions options;
  options.sessions.closed_cache_size = 0;
  Rebuild(options);
  v1::Session s = CreateChat(Customer(), "hello");
  ASSERT_TRUE(WaitForState(s.session_id(), v1::SESSION_STATE_BOT));
  Streamed replies = Stream(Customer(), s.session_id(), 0, 3);
  ASSERT_EQ(replies.events.size(), 3u);
  v1::CloseSessionRequest close;
  close.set_session_id(s.session_id());
  v1::CloseSessionResponse closed;
  ASSERT_TRUE(stub().CloseSession(ContextWithToken(Customer()).get(), close, &closed).ok());
  EXPECT_EQ(env_->sessions->footprint().live_sessions, 0u);
  v1::Session after = Get(s.session_id(), Customer());
  EXPECT_EQ(after.state(), v1::SESSION_STATE_CLOSED);
  EXPECT_EQ(after.message_count(), 2);
  Streamed replay = Stream(Customer(), s.session_id(), 0, 1000);
  EXPECT_TRUE(replay.status.ok()) << replay.status.error_message();
  EXPECT_EQ(replay.events.size(), static_cast<size_t>(after.last_sequence()));
  v1::UpdateTypingRequest typing;
  typing.set_session_id(s.session_id());
  typing.set_typing(true);
  v1::UpdateTypingResponse typed;
  EXPECT_EQ(stub().UpdateTyping(ContextWithToken(Customer()).get(), typing, &typed).error_code(),
            StatusCode::FAILED_PRECONDITION);
  v1::GetSessionRequest get;
  get.set_session_id(s.session_id());
  v1::GetSessionResponse other;
  EXPECT_EQ(
      stub().GetSession(ContextWithToken(Customer("cust-2")).get(), get, &other).error_code(),
      StatusCode::NOT_FOUND);
}

TEST_F(SessionsServiceTest, StreamsPerCallerAreCapped) {
  EnvOptions options;
  options.service.max_streams_per_user = 2;
  Rebuild(options);
  v1::Session s = CreateChat(Customer());
  v1::StreamSessionEventsRequest request;
  request.set_session_id(s.session_id());
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::StreamSessionEventsResponse>>> readers;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(ContextWithToken(Customer()));
    readers.push_back(stub().StreamSessionEvents(contexts.back().get(), request));
    v1::StreamSessionEventsResponse response;
    bool caught_up = false;
    while (!caught_up && readers.back()->Read(&response)) caught_up = response.has_caught_up();
    ASSERT_TRUE(caught_up);
  }
  auto context = ContextWithToken(Customer());
  auto refused = stub().StreamSessionEvents(context.get(), request);
  v1::StreamSessionEventsResponse ignored;
  EXPECT_FALSE(refused->Read(&ignored));
  EXPECT_EQ(refused->Finish().error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(context->GetServerTrailingMetadata().count("retry-after"), 1u);
  // Another customer, and a supervisor, are not affected.
  EXPECT_EQ(Stream(Supervisor(), s.session_id(), 0, 1).events.size(), 1u);
  // Closing one stream gives its place back.
  contexts[0]->TryCancel();
  readers[0]->Finish();
  Streamed again;
  for (int i = 0; i < 100; ++i) {
    again = Stream(Customer(), s.session_id(), 0, 1);
    if (again.status.error_code() != StatusCode::RESOURCE_EXHAUSTED) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(again.events.size(), 1u) << again.status.error_message();
  contexts[1]->TryCancel();
  readers[1]->Finish();
}

TEST_F(SessionsServiceTest, ExpensiveReadsAreRateLimitedPerCaller) {
  EnvOptions options;
  options.service.reads_per_second = 1;
  options.service.reads_burst = 3;
  Rebuild(options);
  v1::Session s = CreateChat(Customer());
  v1::ListSessionsRequest list;
  v1::ListSessionsResponse listed;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(stub().ListSessions(ContextWithToken(Customer()).get(), list, &listed).ok());
  }
  v1::ListMessagesRequest messages;
  messages.set_session_id(s.session_id());
  v1::ListMessagesResponse listed_messages;
  ASSERT_TRUE(
      stub().ListMessages(ContextWithToken(Customer()).get(), messages, &listed_messages).ok());
  auto context = ContextWithToken(Customer());
  grpc::Status refused = stub().ListSessions(context.get(), list, &listed);
  EXPECT_EQ(refused.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(context->GetServerTrailingMetadata().count("retry-after"), 1u);
  // Others keep their own budget; cheap reads are not limited.
  EXPECT_TRUE(
      stub().ListSessions(ContextWithToken(Customer("cust-2")).get(), list, &listed).ok());
  EXPECT_EQ(Get(s.session_id(), Customer()).session_id(), s.session_id());
}

TEST_F(SessionsServiceTest, CallsInFlightAreCappedPerCaller) {
  EnvOptions options;
  options.service.max_calls_per_user = 2;
  Rebuild(options);
  v1::Session s = CreateChat(Customer());
  v1::Session other = CreateChat(Customer("cust-2"));
  // Every worker busy: calls wait in the pool's queue, in flight.
  absl::Notification release;
  for (int i = 0; i < 8; ++i) {
    env_->pool.Run([&release] { release.WaitForNotification(); });
  }
  for (int tries = 0; env_->pool.queued() > 0 && tries < 1000; ++tries) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  v1::SendMessageRequest send;
  send.set_session_id(s.session_id());
  send.mutable_message()->set_text("hello");
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<v1::SendMessageResponse>> responses;
  std::vector<grpc::Status> statuses(3);
  std::vector<std::unique_ptr<absl::Notification>> sent;
  for (int i = 0; i < 3; ++i) {
    send.set_client_message_id(absl::StrCat("k", i));
    contexts.push_back(ContextWithToken(Customer()));
    responses.push_back(std::make_unique<v1::SendMessageResponse>());
    sent.push_back(std::make_unique<absl::Notification>());
    auto request = std::make_shared<v1::SendMessageRequest>(send);
    stub().async()->SendMessage(contexts.back().get(), request.get(), responses.back().get(),
                                [request, &statuses, i, done = sent.back().get()](
                                    grpc::Status status) {
                                  statuses[i] = status;
                                  done->Notify();
                                });
    // The third goes once the first two wait in the pool.
    for (int tries = 0; i == 1 && env_->pool.queued() < 2 && tries < 1000; ++tries) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  // The third of this customer's calls is refused at once, while the first
  // two wait; another customer is not affected.
  ASSERT_TRUE(sent[2]->WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(statuses[2].error_code(), StatusCode::RESOURCE_EXHAUSTED)
      << statuses[2].error_message();
  EXPECT_EQ(contexts[2]->GetServerTrailingMetadata().count("retry-after"), 1u);
  EXPECT_FALSE(sent[0]->HasBeenNotified());
  v1::SendMessageRequest theirs;
  theirs.set_session_id(other.session_id());
  theirs.set_client_message_id("o1");
  theirs.mutable_message()->set_text("hi");
  auto their_context = ContextWithToken(Customer("cust-2"));
  v1::SendMessageResponse their_response;
  grpc::Status their_status;
  absl::Notification theirs_done;
  stub().async()->SendMessage(their_context.get(), &theirs, &their_response,
                              [&](grpc::Status status) {
                                their_status = status;
                                theirs_done.Notify();
                              });
  release.Notify();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(sent[i]->WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_TRUE(statuses[i].ok()) << statuses[i].error_message();
  }
  ASSERT_TRUE(theirs_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(their_status.ok()) << their_status.error_message();
}

}  // namespace
}  // namespace switchboard::sessions

namespace switchboard::sessions {
namespace {

TEST_F(SessionsServiceTest, OnlyTheCustomerContinuesAWaitingChatByEmail) {
  const v1::Session s = CreateChat(Customer());
  v1::ContinueByEmailRequest request;
  request.set_session_id(s.session_id());
  v1::ContinueByEmailResponse response;
  for (const std::string& token : {Agent(), Supervisor(), Routing()}) {
    EXPECT_EQ(stub().ContinueByEmail(ContextWithToken(token).get(), request, &response)
                  .error_code(),
              StatusCode::PERMISSION_DENIED);
  }
  // Another customer's session looks missing; a chat still with the bot
  // cannot switch.
  EXPECT_EQ(stub().ContinueByEmail(ContextWithToken(Customer("cust-2")).get(), request, &response)
                .error_code(),
            StatusCode::NOT_FOUND);
  EXPECT_EQ(stub().ContinueByEmail(ContextWithToken(Customer()).get(), request, &response)
                .error_code(),
            StatusCode::FAILED_PRECONDITION);
  v1::EscalateSessionRequest escalate;
  escalate.set_session_id(s.session_id());
  v1::EscalateSessionResponse escalated;
  ASSERT_TRUE(
      stub().EscalateSession(ContextWithToken(Customer()).get(), escalate, &escalated).ok());
  grpc::Status status =
      stub().ContinueByEmail(ContextWithToken(Customer()).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.session().channel(), common::v1::CHANNEL_EMAIL);
  EXPECT_EQ(response.session().continued_from(), common::v1::CHANNEL_CHAT);
  EXPECT_TRUE(response.session().sla().has_due_at());
}

// Uploads `bytes` as `content_type` in chunks of `chunk` bytes.
grpc::Status Upload(v1::SessionsService::Stub& stub, const std::string& token,
                    const std::string& session_id, const std::string& upload_id,
                    const std::string& bytes, const std::string& content_type,
                    v1::UploadAttachmentResponse* response, size_t chunk = 1000) {
  auto context = ContextWithToken(token);
  auto writer = stub.UploadAttachment(context.get(), response);
  v1::UploadAttachmentRequest header;
  v1::UploadHeader* h = header.mutable_header();
  h->set_session_id(session_id);
  h->set_upload_id(upload_id);
  h->set_file_name("screenshot.png");
  h->set_content_type(content_type);
  h->set_size_bytes(static_cast<int64_t>(bytes.size()));
  h->set_sha256(blob::ContentAddress(bytes));
  if (writer->Write(header)) {
    for (size_t at = 0; at < bytes.size(); at += chunk) {
      v1::UploadAttachmentRequest part;
      part.set_chunk(bytes.substr(at, chunk));
      if (!writer->Write(part)) break;
    }
  }
  writer->WritesDone();
  return writer->Finish();
}

struct Downloaded {
  grpc::Status status;
  v1::Attachment attachment;
  std::string bytes;
  int chunks = 0;
};

Downloaded Download(v1::SessionsService::Stub& stub, const std::string& token,
                    const std::string& session_id, const std::string& attachment_id) {
  v1::DownloadAttachmentRequest request;
  request.set_session_id(session_id);
  request.set_attachment_id(attachment_id);
  auto context = ContextWithToken(token);
  auto reader = stub.DownloadAttachment(context.get(), request);
  Downloaded out;
  v1::DownloadAttachmentResponse response;
  while (reader->Read(&response)) {
    if (response.has_attachment()) out.attachment = response.attachment();
    if (response.has_chunk()) {
      out.bytes += response.chunk();
      ++out.chunks;
    }
  }
  out.status = reader->Finish();
  return out;
}

TEST_F(SessionsServiceTest, AFileGoesUpInChunksIsScannedAndComesBackWhole) {
  v1::Session s = CreateChat(Customer());
  // A log file: nothing to strip, and large enough for two download chunks.
  std::string log;
  for (int i = 0; log.size() <= kDownloadChunkBytes; ++i) {
    absl::StrAppend(&log, "12:00:0", i % 10, " withdrawal ", i, " pending\n");
  }
  v1::UploadAttachmentResponse uploaded;
  grpc::Status status = Upload(stub(), Customer(), s.session_id(), "up-1", log, "text/plain",
                               &uploaded, 64 * 1024);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const v1::Attachment& a = uploaded.attachment();
  EXPECT_EQ(a.state(), v1::ATTACHMENT_STATE_PENDING_SCAN);
  EXPECT_EQ(a.content_type(), "text/plain");
  // Not before the scan.
  Downloaded early = Download(stub(), Customer(), s.session_id(), a.attachment_id());
  EXPECT_EQ(early.status.error_code(), StatusCode::FAILED_PRECONDITION);
  ASSERT_EQ(*env_->attachments->ScanPending(), 1);
  Streamed streamed = Stream(Customer(), s.session_id(), 0, Get(s.session_id()).last_sequence());
  std::vector<v1::AttachmentState> states;
  for (const v1::SessionEvent& e : streamed.events) {
    if (e.has_attachment_updated()) states.push_back(e.attachment_updated().state());
  }
  EXPECT_EQ(states, (std::vector<v1::AttachmentState>{v1::ATTACHMENT_STATE_PENDING_SCAN,
                                                      v1::ATTACHMENT_STATE_CLEAN}));
  Downloaded got = Download(stub(), Customer(), s.session_id(), a.attachment_id());
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  EXPECT_TRUE(got.bytes == log) << got.bytes.size() << " bytes of " << log.size();
  EXPECT_EQ(got.chunks, 2);
  EXPECT_EQ(got.attachment.state(), v1::ATTACHMENT_STATE_CLEAN);
  // A retry is the same attachment, stored once.
  v1::UploadAttachmentResponse again;
  ASSERT_TRUE(Upload(stub(), Customer(), s.session_id(), "up-1", log, "text/plain", &again).ok());
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.attachment().attachment_id(), a.attachment_id());
  EXPECT_EQ(env_->blobs->List("", 10)->size(), 1u);
  // And a message carries it.
  v1::SendMessageRequest send;
  send.set_session_id(s.session_id());
  send.set_client_message_id("m1");
  send.mutable_message()->add_attachment_ids(a.attachment_id());
  v1::SendMessageResponse sent;
  ASSERT_TRUE(stub().SendMessage(ContextWithToken(Customer()).get(), send, &sent).ok());
  EXPECT_EQ(sent.message().attachments(0).attachment_id(), a.attachment_id());
}

TEST_F(SessionsServiceTest, UploadsThatAreNotWhatTheySayOrNotInOrderAreRefused) {
  v1::Session s = CreateChat(Customer());
  v1::UploadAttachmentResponse response;
  // An executable that claims to be a PNG.
  grpc::Status status = Upload(stub(), Customer(), s.session_id(), "up-elf",
                               filetype::testing::Elf(), "image/png", &response);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "image/png")) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "ELF")) << status.error_message();
  // Another customer's session: as if it did not exist.
  status = Upload(stub(), Customer("cust-2"), s.session_id(), "up-2",
                  filetype::testing::Png(false), "image/png", &response);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND);
  // A chunk first, two headers, more bytes than declared.
  {
    auto context = ContextWithToken(Customer());
    auto writer = stub().UploadAttachment(context.get(), &response);
    v1::UploadAttachmentRequest chunk;
    chunk.set_chunk("abc");
    writer->Write(chunk);
    writer->WritesDone();
    status = writer->Finish();
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "header must come first"));
  }
  {
    auto context = ContextWithToken(Customer());
    auto writer = stub().UploadAttachment(context.get(), &response);
    writer->WritesDone();
    status = writer->Finish();
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  }
  std::string png = filetype::testing::Png(false);
  v1::UploadAttachmentRequest header;
  header.mutable_header()->set_session_id(s.session_id());
  header.mutable_header()->set_upload_id("up-3");
  header.mutable_header()->set_file_name("a.png");
  header.mutable_header()->set_content_type("image/png");
  header.mutable_header()->set_size_bytes(4);
  header.mutable_header()->set_sha256(blob::ContentAddress(png));
  {
    auto context = ContextWithToken(Customer());
    auto writer = stub().UploadAttachment(context.get(), &response);
    writer->Write(header);
    v1::UploadAttachmentRequest chunk;
    chunk.set_chunk(png);
    writer->Write(chunk);
    writer->WritesDone();
    status = writer->Finish();
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "more bytes than header.size_bytes"))
        << status.error_message();
  }
  {
    auto context = ContextWithToken(Customer());
    auto writer = stub().UploadAttachment(context.get(), &response);
    writer->Write(header);
    writer->Write(header);
    writer->WritesDone();
    status = writer->Finish();
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "only the first request"))
        << status.error_message();
  }
  // Nothing of it was stored, and the server still serves.
  EXPECT_TRUE(env_->blobs->List("", 10)->empty());
  EXPECT_EQ(Get(s.session_id()).state(), v1::SESSION_STATE_BOT);
}

TEST_F(SessionsServiceTest, AnUploadThatTakesTooLongIsEnded) {
  EnvOptions options;
  options.service.upload_time_limit = absl::Milliseconds(300);
  Rebuild(std::move(options));
  v1::Session s = CreateChat(Customer());
  v1::UploadAttachmentResponse response;
  auto context = ContextWithToken(Customer());
  auto writer = stub().UploadAttachment(context.get(), &response);
  v1::UploadAttachmentRequest header;
  header.mutable_header()->set_session_id(s.session_id());
  header.mutable_header()->set_upload_id("slow");
  header.mutable_header()->set_file_name("a.png");
  header.mutable_header()->set_content_type("image/png");
  header.mutable_header()->set_size_bytes(1000);
  header.mutable_header()->set_sha256(std::string(64, 'a'));
  writer->Write(header);
  absl::SleepFor(absl::Seconds(1));  // never sends the bytes
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED) << status.error_message();
}

TEST_F(SessionsServiceTest, OnlyTheSessionsParticipantsDownload) {
  v1::Session s = CreateChat(Customer());
  v1::UploadAttachmentResponse uploaded;
  ASSERT_TRUE(Upload(stub(), Customer(), s.session_id(), "up-1", filetype::testing::Gif(),
                     "image/gif", &uploaded)
                  .ok());
  ASSERT_EQ(*env_->attachments->ScanPending(), 1);
  const std::string id = uploaded.attachment().attachment_id();
  EXPECT_TRUE(Download(stub(), Supervisor(), s.session_id(), id).status.ok());
  Downloaded stranger = Download(stub(), Customer("cust-2"), s.session_id(), id);
  Downloaded missing = Download(stub(), Customer("cust-2"), s.session_id(), "att_missing");
  EXPECT_EQ(stranger.status.error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(stranger.status.error_message(), missing.status.error_message());
  EXPECT_EQ(Download(stub(), Agent("agent-9"), s.session_id(), id).status.error_code(),
            StatusCode::NOT_FOUND);
  // A service is not among the RPC's callers at all.
  EXPECT_EQ(Download(stub(), Routing(), s.session_id(), id).status.error_code(),
            StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace switchboard::sessions
