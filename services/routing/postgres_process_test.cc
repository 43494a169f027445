// routing_server on a real PostgreSQL (--database): a queued session, an
// agent's settings and a schedule made through the gRPC API are in the
// database once answered and their events published; a second routing
// process on the same database (in another data folder, so nothing local
// carries over) waits as a standby, not listening on its gRPC port, and
// when the first is killed it takes over and serves the same state.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/client/peer.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/postgres.h"
#include "libs/testing/process.h"
#include "libs/testing/reserved_port.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"

namespace switchboard::routing {
namespace {

using auth::Role;

// A count in routing's tables (its own schema, libs/host).
int64_t Count(const std::string& uri, const std::string& sql) {
  return testing::CountInSchema(uri, "routing", sql);
}

constexpr char kBinary[] = "services/routing/routing_server";

v1::EnqueueSessionRequest Enqueue(const std::string& session) {
  v1::EnqueueSessionRequest r;
  r.set_session_id(session);
  r.set_customer_id("cust-1");
  r.set_channel(common::v1::CHANNEL_CHAT);
  r.set_category(common::v1::CATEGORY_DEPOSIT);
  r.set_language("en-GB");
  r.set_reason(v1::ENQUEUE_REASON_ESCALATED);
  return r;
}

TEST(RoutingPostgresProcessTest, AStandbyTakesOverWithTheStateWhenTheLeaderIsKilled) {
  const std::string dir = storage::MakeTempDir();
  testing::PostgresServer postgres;
  const std::string uri = postgres.CreateDatabase();
  testing::TestTokens tokens("routing");
  tokens.WriteFolder(dir + "/keys");
  // No presence or sessions runs: nothing is offered, the state stays as
  // the API made it.
  auto server = [&](const std::string& name, int port) {
    return std::make_unique<testing::ServerProcess>(
        kBinary,
        std::vector<std::string>{"--data_dir=" + dir + "/" + name,
                                 "--keys_dir=" + dir + "/keys", "--database=" + uri,
                                 "--presence_address=127.0.0.1:1",
                                 "--sessions_address=127.0.0.1:1",
                                 absl::StrCat("--port=", port), "--metrics_port=0",
                                 "--bind_address=127.0.0.1",
                                 "--drain_deadline=2s"},
        dir + "/" + name + ".log");
  };
  auto stub_of = [](const testing::ServerProcess& process) {
    return v1::RoutingService::NewStub(
        client::PeerChannel(absl::StrCat("127.0.0.1:", process.grpc_port())));
  };
  const std::string sessions = tokens.For(Role::kService, "sessions");
  const std::string supervisor = tokens.For(Role::kSupervisor, "sup-1");
  const std::string agent = tokens.For(Role::kAgent, "ana");

  // The standby's gRPC port, held so that nothing else takes it meanwhile.
  testing::ReservedPort standby_port;
  std::unique_ptr<testing::ServerProcess> second;
  {
    auto first = server("first", 0);
    ASSERT_GT(first->grpc_port(), 0) << first->log();
    auto stub = stub_of(*first);
    v1::EnqueueSessionResponse queued;
    grpc::Status status = stub->EnqueueSession(testing::ContextWithToken(sessions).get(),
                                               Enqueue("s-1"), &queued);
    ASSERT_TRUE(status.ok()) << status.error_message() << first->log();
    EXPECT_FALSE(queued.replayed());

    v1::UpdateAgentSettingsRequest settings;
    settings.set_agent_id("ana");
    settings.mutable_settings()->set_auto_accept(true);
    v1::UpdateAgentSettingsResponse updated;
    status = stub->UpdateAgentSettings(testing::ContextWithToken(agent).get(), settings,
                                       &updated);
    ASSERT_TRUE(status.ok()) << status.error_message() << first->log();

    v1::SetScheduleRequest schedule;
    schedule.mutable_schedule()->set_schedule_id("phone-closed");
    schedule.mutable_schedule()->set_time_zone("Asia/Shanghai");
    v1::QueueSelector* selector = schedule.mutable_schedule()->add_applies_to();
    selector->set_channel(common::v1::CHANNEL_PHONE);
    selector->set_category(common::v1::CATEGORY_DEPOSIT);
    v1::SetScheduleResponse stored;
    status = stub->SetSchedule(testing::ContextWithToken(supervisor).get(), schedule, &stored);
    ASSERT_TRUE(status.ok()) << status.error_message() << first->log();

    // Answered only once committed: the rows are there already.
    EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM entries WHERE entry_key = 'session:s-1'"), 1);
    EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM agent_settings WHERE agent_id = 'ana'"), 1);
    EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM schedules"), 1);

    // A second routing process on the same database waits as a standby:
    // serving as well, the two would offer the same entries, each from its
    // memory. It passes the calls on its gRPC port to the leader and
    // answers on its metrics port.
    second = server("second", standby_port.port());
    ASSERT_TRUE(second->standby()) << second->log();
    ASSERT_EQ(second->forwarding_port(), standby_port.port()) << second->log();
    // Through the standby the leader answers: a retried enqueue is replayed.
    auto via_standby = v1::RoutingService::NewStub(
        client::PeerChannel(absl::StrCat("127.0.0.1:", second->forwarding_port())));
    v1::EnqueueSessionResponse requeued;
    status = via_standby->EnqueueSession(testing::ContextWithToken(sessions).get(),
                                         Enqueue("s-1"), &requeued);
    ASSERT_TRUE(status.ok()) << status.error_message() << second->log();
    EXPECT_TRUE(requeued.replayed());
    EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM entries"), 1);
    EXPECT_EQ(testing::LeaderGauge(*second, "routing"), 0);
    EXPECT_EQ(testing::LeaderGauge(*first, "routing"), 1);

    // No drain, no flush: what was acknowledged is in PostgreSQL already.
    const std::optional<absl::Duration> takeover =
        testing::KillAndTakeOver(*first, *second, absl::Seconds(15));
    ASSERT_TRUE(takeover.has_value()) << second->log();
    std::printf("routing standby served %.0f ms after the leader was killed\n",
                absl::ToDoubleMilliseconds(*takeover));
    EXPECT_LT(*takeover, absl::Seconds(5));
  }
  EXPECT_EQ(second->grpc_port(), standby_port.port());
  EXPECT_EQ(testing::LeaderGauge(*second, "routing"), 1);
  EXPECT_FALSE(std::filesystem::exists(dir + "/first/routing.db"));
  // Published by the first's relay before it was killed, or by the second's
  // from the shared outbox.
  for (int i = 0; i < 100 && Count(uri, "SELECT COUNT(*) FROM outbox") != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM outbox"), 0);
  const std::string events = testing::ReadFile(dir + "/first/events/routing.jsonl") +
                             testing::ReadFile(dir + "/second/events/routing.jsonl");
  EXPECT_NE(events.find("\"type\":\"routing.schedule_changed\""), std::string::npos) << events;

  auto stub = stub_of(*second);
  v1::GetQueueEntryRequest get;
  get.set_session_id("s-1");
  v1::GetQueueEntryResponse got;
  grpc::Status status = stub->GetQueueEntry(testing::ContextWithToken(supervisor).get(), get,
                                            &got);
  ASSERT_TRUE(status.ok()) << status.error_message() << second->log();
  EXPECT_EQ(got.entry().state(), v1::ENTRY_STATE_WAITING);
  EXPECT_EQ(got.entry().queue().category(), common::v1::CATEGORY_DEPOSIT);
  // Enqueuing it again is answered from the restored entry.
  v1::EnqueueSessionResponse again;
  status = stub->EnqueueSession(testing::ContextWithToken(sessions).get(), Enqueue("s-1"),
                                &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(again.replayed());

  v1::GetAgentSettingsRequest settings;
  settings.set_agent_id("ana");
  v1::GetAgentSettingsResponse read;
  status = stub->GetAgentSettings(testing::ContextWithToken(agent).get(), settings, &read);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(read.settings().auto_accept());

  v1::GetScheduleRequest schedule;
  schedule.set_schedule_id("phone-closed");
  v1::GetScheduleResponse found;
  status = stub->GetSchedule(testing::ContextWithToken(supervisor).get(), schedule, &found);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(found.schedule().time_zone(), "Asia/Shanghai");
  EXPECT_EQ(found.schedule().version(), 1);
  EXPECT_FALSE(found.open());

  EXPECT_FALSE(std::filesystem::exists(dir + "/second/routing.db"));
  EXPECT_EQ(second->Terminate(absl::Seconds(8)), 0) << second->log();
}

}  // namespace
}  // namespace switchboard::routing
