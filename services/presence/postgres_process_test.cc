// presence_server on a real PostgreSQL (--database): an agent's profile,
// status and a capacity reservation made through the gRPC API are in the
// database and its event is published; a second process on the same
// database (in another data folder, so nothing local carries over) waits as
// a standby, passing calls on its gRPC port to the leader, and when the
// first is killed it takes over and serves the same state.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/client/peer.h"
#include "libs/client/tls.h"
#include "libs/metrics/scrape.h"
#include "libs/storage/postgres.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/postgres.h"
#include "libs/testing/process.h"
#include "libs/testing/reserved_port.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_certificates.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"

namespace switchboard::presence {
namespace {

using auth::Role;

// A count in presence's tables (its own schema, libs/host).
int64_t Count(const std::string& uri, const std::string& sql) {
  return testing::CountInSchema(uri, "presence", sql);
}

constexpr char kBinary[] = "services/presence/presence_server";

TEST(PresencePostgresProcessTest, AStandbyTakesOverWithTheStateWhenTheLeaderIsKilled) {
  const std::string dir = storage::MakeTempDir();
  testing::PostgresServer postgres;
  const std::string uri = postgres.CreateDatabase();
  testing::TestTokens tokens("presence");
  tokens.WriteFolder(dir + "/keys");
  auto server = [&](const std::string& name, int port) {
    return std::make_unique<testing::ServerProcess>(
        kBinary,
        std::vector<std::string>{"--data_dir=" + dir + "/" + name,
                                 "--keys_dir=" + dir + "/keys", "--database=" + uri,
                                 absl::StrCat("--port=", port), "--metrics_port=0",
                                 "--bind_address=127.0.0.1", "--drain_deadline=2s"},
        dir + "/" + name + ".log");
  };
  auto stub_of = [](const testing::ServerProcess& process) {
    return v1::PresenceService::NewStub(
        client::PeerChannel(absl::StrCat("127.0.0.1:", process.grpc_port())));
  };
  const std::string agent = tokens.For(Role::kAgent, "ana");
  const std::string supervisor = tokens.For(Role::kSupervisor, "sup-1");
  const std::string routing = tokens.ServiceToken("routing", "presence");

  // The standby's gRPC port, held so that nothing else takes it meanwhile.
  testing::ReservedPort standby_port;
  std::unique_ptr<testing::ServerProcess> second;
  {
    auto first = server("first", 0);
    ASSERT_GT(first->grpc_port(), 0) << first->log();
    auto stub = stub_of(*first);
    v1::SetAgentProfileRequest profile;
    profile.set_agent_id("ana");
    profile.mutable_profile()->set_display_name("Ana");
    v1::ChannelCapacity* chat = profile.mutable_profile()->add_capacities();
    chat->set_channel(common::v1::CHANNEL_CHAT);
    chat->set_capacity(2);
    v1::SetAgentProfileResponse profiled;
    grpc::Status status = stub->SetAgentProfile(testing::ContextWithToken(supervisor).get(),
                                                profile, &profiled);
    ASSERT_TRUE(status.ok()) << status.error_message() << first->log();

    v1::SetStatusRequest online;
    online.set_status(v1::AGENT_STATUS_ONLINE);
    v1::SetStatusResponse set;
    status = stub->SetStatus(testing::ContextWithToken(agent).get(), online, &set);
    ASSERT_TRUE(status.ok()) << status.error_message() << first->log();
    EXPECT_EQ(set.agent().status(), v1::AGENT_STATUS_ONLINE);

    v1::ReserveCapacityRequest reserve;
    reserve.set_agent_id("ana");
    reserve.set_session_id("s-1");
    reserve.set_channel(common::v1::CHANNEL_CHAT);
    reserve.mutable_hold()->set_seconds(600);
    v1::ReserveCapacityResponse reserved;
    status = stub->ReserveCapacity(testing::ContextWithToken(routing).get(), reserve, &reserved);
    ASSERT_TRUE(status.ok()) << status.error_message() << first->log();

    // Answered only once committed: the rows are there already.
    EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM agents WHERE agent_id = 'ana' AND status = " +
                             std::to_string(v1::AGENT_STATUS_ONLINE)),
              1);
    EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM reservations WHERE session_id = 's-1'"), 1);

    // A second process on the same database waits as a standby: serving
    // as well, it would grant capacity from its own memory. It passes the
    // calls on its gRPC port to the leader, and answers on its metrics port.
    second = server("second", standby_port.port());
    ASSERT_TRUE(second->standby()) << second->log();
    EXPECT_NE(second->log().find("\"holder\""), std::string::npos) << second->log();
    ASSERT_EQ(second->forwarding_port(), standby_port.port()) << second->log();
    // It says where it forwards: the leader's published address.
    EXPECT_NE(second->log().find(absl::StrCat("\"event\":\"forwarding_to\",\"service\":"
                                              "\"presence\",\"address\":\"127.0.0.1:",
                                              first->grpc_port(), "\"")),
              std::string::npos)
        << second->log();
    EXPECT_EQ(testing::LeaderGauge(*second, "presence"), 0);
    EXPECT_EQ(testing::LeaderGauge(*first, "presence"), 1);

    // Through the standby: a stream, a write, a read and a refusal, each
    // answered by the leader.
    auto via_standby = v1::PresenceService::NewStub(
        client::PeerChannel(absl::StrCat("127.0.0.1:", second->forwarding_port())));
    auto watch_context = testing::ContextWithToken(supervisor);
    auto watch = via_standby->WatchPresence(watch_context.get(), v1::WatchPresenceRequest());
    v1::WatchPresenceResponse seen;
    ASSERT_TRUE(watch->Read(&seen)) << watch->Finish().error_message() << second->log();
    ASSERT_TRUE(seen.has_snapshot_agent());
    EXPECT_EQ(seen.snapshot_agent().agent_id(), "ana");
    ASSERT_TRUE(watch->Read(&seen));
    EXPECT_TRUE(seen.has_snapshot_complete());

    v1::SetStatusRequest away;
    away.set_status(v1::AGENT_STATUS_AWAY);
    v1::SetStatusResponse set_away;
    status = via_standby->SetStatus(testing::ContextWithToken(agent).get(), away, &set_away);
    ASSERT_TRUE(status.ok()) << status.error_message() << second->log();
    EXPECT_EQ(set_away.agent().status(), v1::AGENT_STATUS_AWAY);
    EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM agents WHERE agent_id = 'ana' AND status = " +
                             std::to_string(v1::AGENT_STATUS_AWAY)),
              1);
    ASSERT_TRUE(watch->Read(&seen));
    ASSERT_TRUE(seen.has_change());
    EXPECT_EQ(seen.change().agent().status(), v1::AGENT_STATUS_AWAY);

    v1::GetAgentRequest get_ana;
    get_ana.set_agent_id("ana");
    v1::GetAgentResponse ana;
    status = via_standby->GetAgent(testing::ContextWithToken(supervisor).get(), get_ana, &ana);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(ana.agent().profile().display_name(), "Ana");
    v1::GetAgentRequest get_nobody;
    get_nobody.set_agent_id("nobody");
    status = via_standby->GetAgent(testing::ContextWithToken(supervisor).get(), get_nobody, &ana);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
    EXPECT_NE(status.error_message().find("nobody"), std::string::npos) << status.error_message();
    status = via_standby->GetAgent(std::make_unique<grpc::ClientContext>().get(), get_ana, &ana);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();

    status = stub->SetStatus(testing::ContextWithToken(agent).get(), online, &set);
    ASSERT_TRUE(status.ok()) << status.error_message();
    // The standby counts what it forwarded by code.
    absl::StatusOr<std::string> metrics =
        metrics::ScrapeMetrics("127.0.0.1", second->metrics_port());
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    EXPECT_NE(metrics->find("switchboard_forwarded_calls_total{grpc_code=\"OK\"} 2"),
              std::string::npos)
        << *metrics;
    EXPECT_NE(metrics->find("switchboard_forwarded_calls_total{grpc_code=\"NotFound\"} 1"),
              std::string::npos);

    ASSERT_TRUE(watch->Read(&seen));
    EXPECT_EQ(seen.change().agent().status(), v1::AGENT_STATUS_ONLINE);

    // No drain, no flush: what was acknowledged is in PostgreSQL already.
    // The stream through the standby ends with the leader.
    const std::optional<absl::Duration> takeover =
        testing::KillAndTakeOver(*first, *second, absl::Seconds(15));
    while (watch->Read(&seen)) {
    }
    EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
    ASSERT_TRUE(takeover.has_value()) << second->log();
    std::printf("presence standby served %.0f ms after the leader was killed\n",
                absl::ToDoubleMilliseconds(*takeover));
    EXPECT_LT(*takeover, absl::Seconds(5));
  }
  EXPECT_EQ(second->grpc_port(), standby_port.port());
  EXPECT_EQ(testing::LeaderGauge(*second, "presence"), 1);
  EXPECT_FALSE(std::filesystem::exists(dir + "/first/presence.db"));
  // Published by the first's relay before it was killed, or by the second's
  // from the shared outbox.
  for (int i = 0; i < 100 && Count(uri, "SELECT COUNT(*) FROM outbox") != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM outbox"), 0);
  const std::string events = testing::ReadFile(dir + "/first/events/presence.jsonl") +
                             testing::ReadFile(dir + "/second/events/presence.jsonl");
  EXPECT_NE(events.find("\"type\":\"presence.agent_status_changed\""), std::string::npos)
      << events;

  auto stub = stub_of(*second);
  v1::GetAgentRequest get;
  get.set_agent_id("ana");
  v1::GetAgentResponse got;
  grpc::Status status = stub->GetAgent(testing::ContextWithToken(supervisor).get(), get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message() << second->log();
  EXPECT_EQ(got.agent().status(), v1::AGENT_STATUS_ONLINE);
  EXPECT_EQ(got.agent().profile().display_name(), "Ana");
  EXPECT_EQ(got.agent().profile_set_by(), "sup-1");
  EXPECT_EQ(got.agent().total_load(), 1);
  // The reservation came back too: reserving the same session again is
  // answered from it, not a second hold.
  v1::ReserveCapacityRequest again;
  again.set_agent_id("ana");
  again.set_session_id("s-1");
  again.set_channel(common::v1::CHANNEL_CHAT);
  v1::ReserveCapacityResponse reserved_again;
  status = stub->ReserveCapacity(testing::ContextWithToken(routing).get(), again,
                                 &reserved_again);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Count(uri, "SELECT COUNT(*) FROM reservations"), 1);
  EXPECT_FALSE(std::filesystem::exists(dir + "/second/presence.db"));
  EXPECT_EQ(second->Terminate(absl::Seconds(8)), 0) << second->log();
}

// With TLS on the gRPC port (mTLS here) a standby serves the same
// certificate and dials its leader as a client of the service, with that
// certificate, checking the leader's against the client CA under the name
// its own certificate gives (the leader is dialled at an address its
// certificate need not name).
TEST(PresencePostgresProcessTest, OverTlsAStandbyForwardsWithTheServicesCertificate) {
  const std::string dir = storage::MakeTempDir();
  testing::PostgresServer postgres;
  const std::string uri = postgres.CreateDatabase();
  testing::TestTokens tokens("presence");
  tokens.WriteFolder(dir + "/keys");
  testing::TestCertificates pki({"presence", "client"});
  auto server = [&](const std::string& name, bool client_ca) {
    std::vector<std::string> flags{
        "--data_dir=" + dir + "/" + name, "--keys_dir=" + dir + "/keys", "--database=" + uri,
        "--port=0", "--metrics_port=0", "--bind_address=127.0.0.1",
        "--tls_cert_file=" + pki.cert("presence"), "--tls_key_file=" + pki.key("presence")};
    if (client_ca) {
      flags.push_back("--tls_client_ca_file=" + pki.ca());
      flags.push_back("--tls_require_client_cert");
    }
    return std::make_unique<testing::ServerProcess>(kBinary, flags, dir + "/" + name + ".log");
  };
  client::ClientTlsOptions client_tls;
  client_tls.ca_file = pki.ca();
  client_tls.cert_file = pki.cert("client");
  client_tls.key_file = pki.key("client");
  absl::StatusOr<client::ChannelSecurity> mtls = client::ChannelSecurity::Create(client_tls, "");
  ASSERT_TRUE(mtls.ok()) << mtls.status();
  auto stub_at = [](const client::ChannelSecurity& security, int port) {
    return v1::PresenceService::NewStub(security.Channel(absl::StrCat("127.0.0.1:", port)));
  };
  const std::string supervisor = tokens.For(Role::kSupervisor, "sup-1");

  auto leader = server("leader", true);
  ASSERT_GT(leader->grpc_port(), 0) << leader->log();
  auto standby = server("standby", true);
  ASSERT_TRUE(standby->standby()) << standby->log();
  ASSERT_GT(standby->forwarding_port(), 0) << standby->log();

  v1::SetAgentProfileRequest profile;
  profile.set_agent_id("ana");
  profile.mutable_profile()->set_display_name("Ana");
  v1::SetAgentProfileResponse profiled;
  grpc::Status status =
      stub_at(*mtls, standby->forwarding_port())
          ->SetAgentProfile(testing::ContextWithToken(supervisor).get(), profile, &profiled);
  ASSERT_TRUE(status.ok()) << status.error_message() << standby->log();
  v1::GetAgentRequest get;
  get.set_agent_id("ana");
  v1::GetAgentResponse got;
  status = stub_at(*mtls, leader->grpc_port())
               ->GetAgent(testing::ContextWithToken(supervisor).get(), get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.agent().profile().display_name(), "Ana");
  // A stream through the standby, over TLS both ways: the snapshot.
  auto watch_context = testing::ContextWithToken(supervisor);
  auto watch = stub_at(*mtls, standby->forwarding_port())
                   ->WatchPresence(watch_context.get(), v1::WatchPresenceRequest());
  v1::WatchPresenceResponse seen;
  ASSERT_TRUE(watch->Read(&seen)) << watch->Finish().error_message();
  EXPECT_TRUE(seen.has_snapshot_complete());
  watch_context->TryCancel();
  while (watch->Read(&seen)) {
  }
  watch->Finish();
  // The standby's port asks for TLS and a client certificate, as the
  // leader's does.
  status = stub_at(client::ChannelSecurity(), standby->forwarding_port())
               ->GetAgent(testing::ContextWithToken(supervisor).get(), get, &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();

  // Without a client CA a standby cannot check the leader's certificate:
  // it says so and does not listen.
  auto unchecked = server("unchecked", false);
  ASSERT_TRUE(unchecked->standby()) << unchecked->log();
  EXPECT_EQ(unchecked->forwarding_port(), 0) << unchecked->log();
  EXPECT_NE(unchecked->log().find("standby_not_forwarding"), std::string::npos)
      << unchecked->log();
  EXPECT_NE(unchecked->log().find("--tls_client_ca_file"), std::string::npos)
      << unchecked->log();
  EXPECT_EQ(unchecked->Terminate(absl::Seconds(8)), 0) << unchecked->log();
  EXPECT_EQ(standby->Terminate(absl::Seconds(8)), 0) << standby->log();
  EXPECT_EQ(leader->Terminate(absl::Seconds(8)), 0) << leader->log();
}

// Ends the database session that holds presence's advisory lock (the only
// session lock in the database), as a partition or a PostgreSQL restart
// would, while the process runs on.
void EndTheLockSession(const std::string& uri) {
  auto db = storage::PostgresConnection::Open(uri);
  ASSERT_TRUE(db.ok()) << db.status();
  auto ended = (*db)->Query(
      "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
      "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_EQ(ended->size(), 1);
}

// The leader's keeper: when its lock's session ends and nobody takes over,
// it takes the lock again and serves on; when a standby took over
// meanwhile, it exits 1 within about a second.
TEST(PresencePostgresProcessTest, TheKeeperCarriesOnAloneAndExitsWhenTakenOver) {
  const std::string dir = storage::MakeTempDir();
  testing::PostgresServer postgres;
  const std::string uri = postgres.CreateDatabase();
  testing::TestTokens tokens("presence");
  tokens.WriteFolder(dir + "/keys");
  auto server = [&](const std::string& name) {
    return std::make_unique<testing::ServerProcess>(
        kBinary,
        std::vector<std::string>{"--data_dir=" + dir + "/" + name,
                                 "--keys_dir=" + dir + "/keys", "--database=" + uri,
                                 "--port=0", "--metrics_port=0", "--bind_address=127.0.0.1"},
        dir + "/" + name + ".log");
  };
  auto first = server("first");
  ASSERT_GT(first->grpc_port(), 0) << first->log();
  EndTheLockSession(uri);
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (first->log().find("leader_lock_retaken") == std::string::npos &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_NE(first->log().find("leader_lock_retaken"), std::string::npos) << first->log();
  EXPECT_FALSE(first->WaitForExit(absl::Seconds(2)));
  EXPECT_EQ(testing::LeaderGauge(*first, "presence"), 1);

  auto second = server("second");
  ASSERT_TRUE(second->standby()) << second->log();
  EndTheLockSession(uri);
  ASSERT_TRUE(second->WaitUntilServing(absl::Seconds(10))) << second->log();
  EXPECT_TRUE(first->WaitForExit(absl::Seconds(5))) << first->log();
  EXPECT_NE(first->log().find("\"event\":\"leadership_lost\""), std::string::npos)
      << first->log();
  EXPECT_EQ(second->Terminate(absl::Seconds(8)), 0) << second->log();
}

}  // namespace
}  // namespace switchboard::presence
