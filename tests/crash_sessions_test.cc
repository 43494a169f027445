// Sessions killed with SIGKILL (no drain, no flush) mid-flight and at named
// fault points, then restarted on the same data folder: nothing a client
// was told is saved may be missing, nothing may be stored twice, every
// session's sequence numbers stay gapless, and no bot turn or hand-off to
// routing is lost. Real processes; the bot and routing are fakes served by
// this test process over gRPC.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/bot/v1/bot_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard {
namespace {

using sessions::v1::SessionsService;
namespace sv1 = ::switchboard::sessions::v1;

constexpr char kBinary[] = "services/sessions/sessions_server";

// Answers every message; "human" escalates. Counts calls per turn.
class FakeBot : public bot::v1::BotService::CallbackService {
 public:
  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                   const bot::v1::AnswerRequest* request,
                                   bot::v1::AnswerResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      ++calls_[request->session_id()];
    }
    if (request->text() == "human") {
      response->set_outcome(bot::v1::ANSWER_OUTCOME_ESCALATED);
      response->set_reply_text("Connecting you to an agent.");
      response->mutable_handoff()->set_reason(common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
    } else {
      response->set_outcome(bot::v1::ANSWER_OUTCOME_ANSWERED);
      response->set_reply_text("bot: " + request->text());
    }
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  int calls(const std::string& session_id) {
    absl::MutexLock lock(&mu_);
    return calls_[session_id];
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> calls_;
};

// Records what routing is told.
class FakeRouting : public routing::v1::RoutingService::CallbackService {
 public:
  grpc::ServerUnaryReactor* EnqueueSession(grpc::CallbackServerContext* context,
                                           const routing::v1::EnqueueSessionRequest* request,
                                           routing::v1::EnqueueSessionResponse*) override {
    {
      absl::MutexLock lock(&mu_);
      ++enqueued_[request->session_id()];
    }
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* CancelSession(grpc::CallbackServerContext* context,
                                          const routing::v1::CancelSessionRequest*,
                                          routing::v1::CancelSessionResponse*) override {
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  // Waits up to 20 s for an EnqueueSession of `session_id`.
  bool WaitForEnqueue(const std::string& session_id) {
    struct Arg {
      FakeRouting* routing;
      const std::string* session_id;
    } arg{this, &session_id};
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                      return a->routing->enqueued_.count(*a->session_id) > 0;
                                    },
                                    &arg),
                                absl::Seconds(20));
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> enqueued_;
};

std::unique_ptr<grpc::Server> Serve(grpc::Service* service, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

class CrashSessionsTest : public ::testing::Test {
 protected:
  CrashSessionsTest() : data_dir_(storage::MakeTempDir()) {
    bot_server_ = Serve(&bot_, &bot_port_);
    routing_server_ = Serve(&routing_, &routing_port_);
  }
  ~CrashSessionsTest() override {
    server_.reset();
    bot_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    routing_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }

  // Starts sessions on the test's data folder, dying at `fault_point` if
  // set. Replaces (SIGKILLs) a running one.
  void Start(const std::string& fault_point = "") {
    server_.reset();
    std::vector<std::string> flags = {
        "--data_dir=" + data_dir_,
        "--port=0",
        "--metrics_port=0",
        "--bind_address=127.0.0.1",
        "--drain_deadline=1s",
        absl::StrCat("--bot_address=127.0.0.1:", bot_port_),
        absl::StrCat("--routing_address=127.0.0.1:", routing_port_),
        "--routing_retry_interval=200ms",
        "--worker_threads=64",
        "--max_calls_per_user=64",
    };
    if (!fault_point.empty()) flags.push_back("--fault_point=" + fault_point);
    server_ = std::make_unique<testing::ServerProcess>(
        kBinary, flags, absl::StrCat(data_dir_, "/run-", ++runs_, ".log"));
    ASSERT_GT(server_->grpc_port(), 0) << server_->log();
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    stub_ = SessionsService::NewStub(channel_);
  }

  std::string Token(auth::Role role, const std::string& subject) {
    // The server made the development keys in its data folder.
    return testing::TestTokens::FromFolder(data_dir_ + "/keys", "sessions").For(role, subject);
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token,
                                               absl::Duration deadline = absl::Seconds(20)) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    return context;
  }

  // Every event of the session, replayed from the start until caught up.
  std::vector<sv1::SessionEvent> Events(const std::string& session_id) {
    sv1::StreamSessionEventsRequest request;
    request.set_session_id(session_id);
    auto context = Context(Token(auth::Role::kSupervisor, "sup"));
    auto reader = stub_->StreamSessionEvents(context.get(), request);
    std::vector<sv1::SessionEvent> events;
    sv1::StreamSessionEventsResponse response;
    while (reader->Read(&response)) {
      if (response.has_caught_up()) {
        context->TryCancel();
        break;
      }
      if (response.has_event()) events.push_back(response.event());
    }
    reader->Finish();
    return events;
  }

  // Checks 1, 2, 3, ... without gaps; returns the messages by key.
  std::map<std::string, std::vector<int64_t>> CheckGapless(const std::string& session_id) {
    std::vector<sv1::SessionEvent> events = Events(session_id);
    std::map<std::string, std::vector<int64_t>> by_key;
    for (size_t i = 0; i < events.size(); ++i) {
      EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i + 1)) << session_id;
      if (events[i].has_message() && !events[i].message().client_message_id().empty()) {
        by_key[events[i].message().client_message_id()].push_back(events[i].sequence());
      }
    }
    return by_key;
  }

  std::string data_dir_;
  FakeBot bot_;
  FakeRouting routing_;
  int bot_port_ = 0;
  int routing_port_ = 0;
  std::unique_ptr<grpc::Server> bot_server_;
  std::unique_ptr<grpc::Server> routing_server_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<SessionsService::Stub> stub_;
  int runs_ = 0;
};

struct Acked {
  std::string session_id;
  std::string key;
  int64_t sequence;
};

// 1,000 SendMessage calls in flight at once (one thread each) over 100
// sessions, 10 each (the per-sender limit in a second), from 100 customers.
class ConcurrentSends {
 public:
  ConcurrentSends(SessionsService::Stub* stub,
                  std::vector<std::pair<std::string, std::string>> sessions)
      : stub_(stub), sessions_(std::move(sessions)) {}

  // Starts every call at once; returns when all have finished. `on_ack`
  // runs after each acknowledgement (with the count so far).
  void Run(std::function<void(int)> on_ack) {
    std::vector<std::thread> threads;
    for (size_t s = 0; s < sessions_.size(); ++s) {
      for (int m = 0; m < 10; ++m) {
        threads.emplace_back([this, s, m, &on_ack] {
          const auto& [session_id, token] = sessions_[s];
          sv1::SendMessageRequest request;
          request.set_session_id(session_id);
          request.set_client_message_id(absl::StrCat("k-", m));
          request.mutable_message()->set_text(absl::StrCat("message ", m));
          sv1::SendMessageResponse response;
          grpc::ClientContext context;
          auth::AttachToken(context, token);
          context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
          if (!stub_->SendMessage(&context, request, &response).ok()) return;
          int count;
          {
            absl::MutexLock lock(&mu_);
            acked_.push_back({session_id, request.client_message_id(),
                              response.message().sequence()});
            count = static_cast<int>(acked_.size());
          }
          on_ack(count);
        });
      }
    }
    for (std::thread& t : threads) t.join();
  }

  std::vector<Acked> acked() {
    absl::MutexLock lock(&mu_);
    return acked_;
  }

 private:
  SessionsService::Stub* const stub_;
  const std::vector<std::pair<std::string, std::string>> sessions_;
  absl::Mutex mu_;
  std::vector<Acked> acked_ ABSL_GUARDED_BY(mu_);
};

class SendCrashTest : public CrashSessionsTest {
 protected:
  std::vector<std::pair<std::string, std::string>> CreateSessions(int n) {
    std::vector<std::pair<std::string, std::string>> out;
    for (int i = 0; i < n; ++i) {
      const std::string token = Token(auth::Role::kCustomer, absl::StrCat("cust-", i));
      sv1::CreateSessionRequest request;
      request.set_channel(common::v1::CHANNEL_EMAIL);
      request.set_category(common::v1::CATEGORY_WITHDRAWAL);
      request.set_subject("Withdrawal pending");
      request.mutable_first_message()->set_text("My withdrawal is pending");
      request.set_request_id(absl::StrCat("create-", i));
      sv1::CreateSessionResponse response;
      grpc::Status status = stub_->CreateSession(Context(token).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      out.emplace_back(response.session().session_id(), token);
    }
    return out;
  }

  // After the restart: every acknowledged message is there exactly once,
  // with the sequence it was acknowledged with; sequences are gapless;
  // resending everything stores each message exactly once.
  void CheckAfterRestart(const std::vector<std::pair<std::string, std::string>>& sessions,
                         const std::vector<Acked>& acked) {
    std::map<std::string, std::map<std::string, std::vector<int64_t>>> stored;
    for (const auto& [session_id, token] : sessions) {
      stored[session_id] = CheckGapless(session_id);
    }
    for (const Acked& a : acked) {
      const auto& sequences = stored[a.session_id][a.key];
      ASSERT_EQ(sequences.size(), 1u) << a.session_id << " " << a.key;
      EXPECT_EQ(sequences[0], a.sequence) << a.session_id << " " << a.key;
    }
    // A client retries whatever it did not hear back about: each key
    // stored exactly once, acknowledged ones replayed.
    ConcurrentSends retry(stub_.get(), sessions);
    retry.Run([](int) {});
    EXPECT_EQ(retry.acked().size(), sessions.size() * 10);
    for (const auto& [session_id, token] : sessions) {
      std::map<std::string, std::vector<int64_t>> by_key = CheckGapless(session_id);
      for (int m = 0; m < 10; ++m) {
        EXPECT_EQ(by_key[absl::StrCat("k-", m)].size(), 1u) << session_id << " k-" << m;
      }
    }
  }
};

TEST_F(SendCrashTest, KilledWhileAThousandMessagesAreInFlight) {
  Start();
  const auto sessions = CreateSessions(100);
  ConcurrentSends sends(stub_.get(), sessions);
  std::atomic<bool> killed{false};
  sends.Run([&](int acked) {
    if (acked == 300 && !killed.exchange(true)) server_->Kill();
  });
  ASSERT_TRUE(killed.load()) << "fewer than 300 messages were acknowledged";
  const std::vector<Acked> acked = sends.acked();
  EXPECT_LT(acked.size(), 1000u);  // the kill did cut some calls short
  Start();
  CheckAfterRestart(sessions, acked);
}

TEST_F(SendCrashTest, DiesInsideACommitWhileMessagesAreInFlight) {
  Start();
  const auto sessions = CreateSessions(100);
  // The 40th write after the restart below dies with its transaction open.
  Start("sessions.commit.write:40");
  ConcurrentSends sends(stub_.get(), sessions);
  sends.Run([](int) {});
  const std::vector<Acked> acked = sends.acked();
  EXPECT_LT(acked.size(), 1000u);
  EXPECT_TRUE(absl::StrContains(server_->log(), "fault_point_hit")) << server_->log();
  Start();
  CheckAfterRestart(sessions, acked);
}

TEST_F(CrashSessionsTest, ACreationCommittedButNotAnsweredIsReplayedNotDuplicated) {
  Start("sessions.create.after_commit");
  const std::string token = Token(auth::Role::kCustomer, "cust-c");
  sv1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_EMAIL);
  request.set_category(common::v1::CATEGORY_KYC);
  request.set_subject("KYC rejected");
  request.mutable_first_message()->set_text("Why was my KYC rejected?");
  request.set_request_id("create-once");
  request.set_first_client_message_id("first");
  sv1::CreateSessionResponse response;
  EXPECT_FALSE(stub_->CreateSession(Context(token).get(), request, &response).ok());
  Start();
  grpc::Status status = stub_->CreateSession(Context(token).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.replayed());
  EXPECT_EQ(response.first_message().text(), "Why was my KYC rejected?");
  sv1::ListSessionsRequest list;
  sv1::ListSessionsResponse listed;
  ASSERT_TRUE(stub_->ListSessions(Context(token).get(), list, &listed).ok());
  ASSERT_EQ(listed.sessions_size(), 1);
  EXPECT_EQ(listed.sessions(0).session_id(), response.session().session_id());
  CheckGapless(response.session().session_id());
  // Its hand-off to routing happens after the restart.
  EXPECT_TRUE(routing_.WaitForEnqueue(response.session().session_id()));
}

// A customer message committed, the process dead before (or right after)
// the bot answered: the restarted server runs the turn; the reply is
// stored once.
class BotTurnCrashTest : public CrashSessionsTest,
                         public ::testing::WithParamInterface<std::string> {};

TEST_P(BotTurnCrashTest, NoBotTurnIsLost) {
  Start(GetParam());
  const std::string token = Token(auth::Role::kCustomer, "cust-b");
  sv1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_CHAT);
  request.mutable_first_message()->set_text("how do deposits work");
  request.set_request_id("chat-1");
  sv1::CreateSessionResponse response;
  // The bot turn starts as the creation is answered and kills the process,
  // maybe before the answer leaves it.
  stub_->CreateSession(Context(token).get(), request, &response);
  for (int i = 0; i < 200 && !absl::StrContains(server_->log(), "fault_point_hit"); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(absl::StrContains(server_->log(), "fault_point_hit")) << server_->log();
  Start();
  // The client's retry finds the session it created.
  grpc::Status status = stub_->CreateSession(Context(token).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.replayed());
  const std::string id = response.session().session_id();
  std::vector<sv1::SessionEvent> events;
  for (int i = 0; i < 200; ++i) {
    events = Events(id);
    if (events.size() >= 3) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(events.size(), 3u);  // created, the question, one reply
  EXPECT_EQ(events[2].message().sender_role(), common::v1::SENDER_ROLE_BOT);
  EXPECT_EQ(events[2].message().text(), "bot: how do deposits work");
  CheckGapless(id);
}

INSTANTIATE_TEST_SUITE_P(FaultPoints, BotTurnCrashTest,
                         ::testing::Values("sessions.bot_turn.before_answer",
                                           "sessions.bot_turn.after_answer"));

TEST_F(CrashSessionsTest, AnEscalationCommittedBeforeRoutingHeardOfItReachesRouting) {
  Start("sessions.routing.before_call");
  const std::string token = Token(auth::Role::kCustomer, "cust-r");
  sv1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_CHAT);
  request.mutable_first_message()->set_text("human");
  request.set_request_id("chat-r");
  sv1::CreateSessionResponse response;
  stub_->CreateSession(Context(token).get(), request, &response);
  for (int i = 0; i < 200 && !absl::StrContains(server_->log(), "fault_point_hit"); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(absl::StrContains(server_->log(), "fault_point_hit")) << server_->log();
  Start();
  ASSERT_TRUE(stub_->CreateSession(Context(token).get(), request, &response).ok());
  const std::string id = response.session().session_id();
  EXPECT_TRUE(routing_.WaitForEnqueue(id));
  sv1::GetSessionRequest get;
  get.set_session_id(id);
  sv1::GetSessionResponse got;
  ASSERT_TRUE(stub_->GetSession(Context(token).get(), get, &got).ok());
  EXPECT_EQ(got.session().state(), sv1::SESSION_STATE_QUEUED);
  CheckGapless(id);
}

}  // namespace
}  // namespace switchboard
