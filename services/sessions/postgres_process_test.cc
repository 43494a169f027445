// sessions_server on a real PostgreSQL (--database=postgresql://...): one
// process at a time serves the database, a second one waits as a standby
// (not listening on its gRPC port); a session and its messages written
// through gRPC survive the leader being killed, and the standby, on an
// empty data folder of its own (so nothing can come from a SQLite file),
// takes over and resumes them: the same session, its stream from where the
// client left off, message retries answered from the store, and new
// messages numbered on without a gap.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/client/peer.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/postgres.h"
#include "libs/testing/process.h"
#include "libs/testing/reserved_port.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard::sessions {
namespace {

using auth::Role;

// A count in sessions' tables (its own schema, libs/host).
int64_t Count(const std::string& uri, const std::string& sql,
              const std::vector<storage::PostgresParam>& params = {}) {
  return testing::CountInSchema(uri, "sessions", sql, params);
}

constexpr char kBinary[] = "services/sessions/sessions_server";

class PostgresProcessTest : public ::testing::Test {
 protected:
  PostgresProcessTest() : dir_(storage::MakeTempDir()), uri_(postgres_.CreateDatabase()) {
    tokens_.WriteFolder(dir_ + "/keys");
  }

  // A sessions_server on the shared database, without bot or routing, with
  // its own data folder `name`, on gRPC port `port` (0: any).
  std::unique_ptr<testing::ServerProcess> Start(const std::string& name, int port = 0) {
    return std::make_unique<testing::ServerProcess>(
        kBinary,
        std::vector<std::string>{"--data_dir=" + dir_ + "/" + name, "--keys_dir=" + dir_ + "/keys",
                                 "--database=" + uri_, absl::StrCat("--port=", port),
                                 "--metrics_port=0",
                                 "--bind_address=127.0.0.1", "--bot_address=",
                                 "--routing_address=", "--drain_deadline=1s"},
        dir_ + "/" + name + ".log");
  }

  static std::unique_ptr<v1::SessionsService::Stub> StubOf(const testing::ServerProcess& server) {
    return v1::SessionsService::NewStub(
        client::PeerChannel(absl::StrCat("127.0.0.1:", server.grpc_port())));
  }

  grpc::Status Send(v1::SessionsService::Stub& stub, const std::string& session_id,
                    const std::string& key, const std::string& text,
                    v1::SendMessageResponse* response) {
    v1::SendMessageRequest request;
    request.set_session_id(session_id);
    request.set_client_message_id(key);
    request.mutable_message()->set_text(text);
    return stub.SendMessage(testing::ContextWithToken(customer_).get(), request, response);
  }

  // The session's events after `after`, up to the end of the replay.
  std::vector<v1::SessionEvent> Stream(v1::SessionsService::Stub& stub,
                                       const std::string& session_id, int64_t after,
                                       int64_t* caught_up_at) {
    v1::StreamSessionEventsRequest request;
    request.set_session_id(session_id);
    request.set_after_sequence(after);
    auto context = testing::ContextWithToken(customer_);
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    auto reader = stub.StreamSessionEvents(context.get(), request);
    std::vector<v1::SessionEvent> events;
    v1::StreamSessionEventsResponse response;
    while (reader->Read(&response)) {
      if (response.has_caught_up()) {
        *caught_up_at = response.caught_up().last_sequence();
        context->TryCancel();
        break;
      }
      if (response.has_event()) events.push_back(response.event());
    }
    reader->Finish();
    return events;
  }

  testing::PostgresServer postgres_;
  const std::string dir_;
  const std::string uri_;
  testing::TestTokens tokens_{"sessions"};
  const std::string customer_ = tokens_.For(Role::kCustomer, "cust-1");
};

TEST_F(PostgresProcessTest, AStandbyTakesOverASessionAndItsStreamWhenTheLeaderIsKilled) {
  auto first = Start("first");
  ASSERT_GT(first->grpc_port(), 0) << first->log();
  auto stub = StubOf(*first);

  v1::CreateSessionRequest create;
  create.set_channel(common::v1::CHANNEL_CHAT);
  create.set_category(common::v1::CATEGORY_DEPOSIT);
  create.set_request_id("create-1");
  create.mutable_first_message()->set_text("My deposit has not arrived.");
  v1::CreateSessionResponse created;
  grpc::Status status =
      stub->CreateSession(testing::ContextWithToken(customer_).get(), create, &created);
  ASSERT_TRUE(status.ok()) << status.error_message() << first->log();
  const std::string session_id = created.session().session_id();
  std::vector<v1::SendMessageResponse> sent(3);
  for (int i = 0; i < 3; ++i) {
    status = Send(*stub, session_id, absl::StrCat("msg-", i + 1), absl::StrCat("detail ", i + 1),
                  &sent[i]);
    ASSERT_TRUE(status.ok()) << status.error_message() << first->log();
  }
  const int64_t last_message = sent[2].message().sequence();
  int64_t caught_up_at = 0;
  const std::vector<v1::SessionEvent> before = Stream(*stub, session_id, 0, &caught_up_at);
  ASSERT_GE(caught_up_at, last_message);
  ASSERT_EQ(static_cast<int64_t>(before.size()), caught_up_at);

  // A second process on the same database waits as a standby: serving as
  // well, the two would number one session's events each their own way. It
  // passes the calls on its gRPC port to the leader and answers on its
  // metrics port.
  testing::ReservedPort standby_port;
  auto second = Start("second", standby_port.port());
  ASSERT_TRUE(second->standby()) << second->log();
  ASSERT_EQ(second->forwarding_port(), standby_port.port()) << second->log();
  EXPECT_EQ(testing::LeaderGauge(*second, "sessions"), 0);
  EXPECT_EQ(testing::LeaderGauge(*first, "sessions"), 1);

  // Through the standby the leader answers: the same stream, a retried
  // message key with the first answer, and a refusal with its code.
  auto via_standby = v1::SessionsService::NewStub(
      client::PeerChannel(absl::StrCat("127.0.0.1:", second->forwarding_port())));
  int64_t caught_up_via_standby = 0;
  const std::vector<v1::SessionEvent> forwarded =
      Stream(*via_standby, session_id, 0, &caught_up_via_standby);
  EXPECT_EQ(caught_up_via_standby, caught_up_at);
  ASSERT_EQ(forwarded.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(forwarded[i].SerializeAsString(), before[i].SerializeAsString()) << i;
  }
  v1::SendMessageResponse resent;
  status = Send(*via_standby, session_id, "msg-3", "detail 3", &resent);
  ASSERT_TRUE(status.ok()) << status.error_message() << second->log();
  EXPECT_TRUE(resent.replayed());
  EXPECT_EQ(resent.message().message_id(), sent[2].message().message_id());
  v1::SendMessageResponse refused;
  status = Send(*via_standby, "no-such-session", "msg-x", "hello", &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();

  // No drain, no flush: what was acknowledged is in PostgreSQL already.
  const std::optional<absl::Duration> takeover =
      testing::KillAndTakeOver(*first, *second, absl::Seconds(15));
  ASSERT_TRUE(takeover.has_value()) << second->log();
  std::printf("sessions standby served %.0f ms after the leader was killed\n",
              absl::ToDoubleMilliseconds(*takeover));
  EXPECT_LT(*takeover, absl::Seconds(5));
  EXPECT_EQ(second->grpc_port(), standby_port.port());
  EXPECT_EQ(testing::LeaderGauge(*second, "sessions"), 1);
  stub = StubOf(*second);

  v1::GetSessionRequest get;
  get.set_session_id(session_id);
  v1::GetSessionResponse got;
  status = stub->GetSession(testing::ContextWithToken(customer_).get(), get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message() << second->log();
  EXPECT_EQ(got.session().customer_id(), "cust-1");
  EXPECT_GE(got.session().last_sequence(), caught_up_at);

  // The creation and a message retried: the first answers, from the store.
  v1::CreateSessionResponse recreated;
  status = stub->CreateSession(testing::ContextWithToken(customer_).get(), create, &recreated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(recreated.session().session_id(), session_id);
  v1::SendMessageResponse retried;
  status = Send(*stub, session_id, "msg-2", "detail 2", &retried);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(retried.replayed());
  EXPECT_EQ(retried.message().message_id(), sent[1].message().message_id());
  EXPECT_EQ(retried.message().sequence(), sent[1].message().sequence());

  // The stream replays the events the client saw, the same, and resumes
  // where it left off: a new message numbered on without a gap (after any
  // event the new process added, such as the hand-off of a chat that has
  // no bot to the queue).
  int64_t resumed_at = 0;
  const std::vector<v1::SessionEvent> replayed = Stream(*stub, session_id, 0, &resumed_at);
  ASSERT_GE(replayed.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(replayed[i].SerializeAsString(), before[i].SerializeAsString()) << i;
  }
  v1::SendMessageResponse after_restart;
  status = Send(*stub, session_id, "msg-4", "still waiting", &after_restart);
  ASSERT_TRUE(status.ok()) << status.error_message();
  int64_t end = 0;
  const std::vector<v1::SessionEvent> tail = Stream(*stub, session_id, caught_up_at, &end);
  ASSERT_FALSE(tail.empty());
  for (size_t i = 0; i < tail.size(); ++i) {
    EXPECT_EQ(tail[i].sequence(), caught_up_at + 1 + static_cast<int64_t>(i));
  }
  EXPECT_EQ(tail.back().sequence(), end);
  bool streamed = false;
  for (const v1::SessionEvent& event : tail) {
    if (event.has_message() && event.message().client_message_id() == "msg-4") {
      streamed = true;
      EXPECT_EQ(event.sequence(), after_restart.message().sequence());
    }
  }
  EXPECT_TRUE(streamed);
  EXPECT_EQ(Count(uri_, "SELECT count(*) FROM session_events WHERE session_id = $1",
                  {session_id}),
            end);

  EXPECT_EQ(second->Terminate(absl::Seconds(10)), 0) << second->log();
  EXPECT_EQ(Count(uri_, "SELECT count(*) FROM sessions"), 1);
  // Nothing went to a SQLite file.
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/first/sessions.db"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/second/sessions.db"));
}

}  // namespace
}  // namespace switchboard::sessions
