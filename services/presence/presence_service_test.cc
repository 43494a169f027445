#include "services/presence/presence_service.h"

#include <memory>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_tokens.h"
#include "services/presence/sqlite_store.h"

namespace switchboard::presence {
namespace {

using auth::Role;
using testing::ContextWithToken;

// Presence as main() wires it, on a real SQLite file, behind a real server.
class PresenceServiceTest : public ::testing::Test {
 protected:
  PresenceServiceTest()
      : db_(*storage::Database::Open({storage::MakeTempDir() + "/presence.db"})) {
    EXPECT_TRUE(db_->Migrate(PresenceMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqlitePresenceStore>(committer_.get(),
                                                   "switchboard.presence.v1", nullptr);
    registry_ = std::make_shared<prometheus::Registry>();
    metrics_ = std::make_unique<PresenceMetrics>(*registry_);
    presence_ = std::make_unique<Presence>(store_.get(), &clock_, metrics_.get(),
                                           PresenceOptions());
    EXPECT_TRUE(presence_->Load().ok());
    PresenceService::Options options;
    options.max_watch_streams_per_principal = 2;
    service_ = std::make_unique<PresenceService>(presence_.get(), &tokens_.verifier(),
                                                 RealClock(), &pool_, options);
    server_ = std::make_unique<testing::TestServer>(
        std::vector<grpc::Service*>{service_.get()}, registry_);
    server_->server().OnDrain([this] { service_->EndStreams(); });
    stub_ = v1::PresenceService::NewStub(server_->channel());
  }

  ~PresenceServiceTest() override {
    server_.reset();
    pool_.Stop();
  }

  std::string Agent(const std::string& id) { return tokens_.For(Role::kAgent, id); }
  std::string Supervisor() { return tokens_.For(Role::kSupervisor, "sup-1"); }
  std::string Service() { return tokens_.For(Role::kService, "routing"); }

  grpc::Status SetStatus(const std::string& token, v1::SetStatusRequest request,
                         v1::SetStatusResponse* response = nullptr) {
    v1::SetStatusResponse ignored;
    return stub_->SetStatus(ContextWithToken(token).get(), request,
                            response ? response : &ignored);
  }

  static v1::SetStatusRequest Online() {
    v1::SetStatusRequest request;
    request.set_status(v1::AGENT_STATUS_ONLINE);
    request.set_device_id("laptop");
    return request;
  }

  // WITHDRAWAL chats in English, up to `chat_capacity` at once.
  static v1::SetAgentProfileRequest Profile(const std::string& agent, int chat_capacity = 2) {
    v1::SetAgentProfileRequest request;
    request.set_agent_id(agent);
    v1::AgentProfile* profile = request.mutable_profile();
    profile->set_display_name("Ana");
    profile->mutable_skills()->add_categories(common::v1::CATEGORY_WITHDRAWAL);
    profile->mutable_skills()->add_languages("en");
    v1::ChannelCapacity* chat = profile->add_capacities();
    chat->set_channel(common::v1::CHANNEL_CHAT);
    chat->set_capacity(chat_capacity);
    return request;
  }

  grpc::Status SetProfile(const std::string& token, const v1::SetAgentProfileRequest& request,
                          v1::SetAgentProfileResponse* response = nullptr) {
    v1::SetAgentProfileResponse ignored;
    return stub_->SetAgentProfile(ContextWithToken(token).get(), request,
                                  response ? response : &ignored);
  }

  // A supervisor sets `agent` up, then the agent goes online.
  grpc::Status Join(const std::string& agent, int chat_capacity = 2) {
    grpc::Status granted = SetProfile(Supervisor(), Profile(agent, chat_capacity));
    if (!granted.ok()) return granted;
    return SetStatus(Agent(agent), Online());
  }

  static v1::ChannelCapacity Chat(int capacity) {
    v1::ChannelCapacity chat;
    chat.set_channel(common::v1::CHANNEL_CHAT);
    chat.set_capacity(capacity);
    return chat;
  }

  grpc::StatusCode Reserve(const std::string& token, const std::string& agent,
                           const std::string& session) {
    v1::ReserveCapacityRequest request;
    request.set_agent_id(agent);
    request.set_session_id(session);
    request.set_channel(common::v1::CHANNEL_CHAT);
    v1::ReserveCapacityResponse response;
    return stub_->ReserveCapacity(ContextWithToken(token).get(), request, &response)
        .error_code();
  }

  FakeClock clock_;
  testing::TestTokens tokens_{"presence"};
  server::BlockingPool pool_{4};
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqlitePresenceStore> store_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<PresenceMetrics> metrics_;
  std::unique_ptr<Presence> presence_;
  std::unique_ptr<PresenceService> service_;
  std::unique_ptr<testing::TestServer> server_;
  std::unique_ptr<v1::PresenceService::Stub> stub_;
};

TEST_F(PresenceServiceTest, AgentGoesOnlineAndReadsThemselves) {
  ASSERT_TRUE(SetProfile(Supervisor(), Profile("ana")).ok());
  v1::SetStatusResponse response;
  ASSERT_TRUE(SetStatus(Agent("ana"), Online(), &response).ok());
  EXPECT_EQ(response.agent().agent_id(), "ana");
  EXPECT_EQ(response.agent().status(), v1::AGENT_STATUS_ONLINE);
  EXPECT_EQ(response.heartbeat_interval().seconds(), 10);
  EXPECT_GT(response.agent().lease_expires_at().seconds(), 0);

  v1::HeartbeatRequest beat;
  beat.set_device_id("phone");
  v1::HeartbeatResponse beat_response;
  ASSERT_TRUE(stub_->Heartbeat(ContextWithToken(Agent("ana")).get(), beat, &beat_response).ok());
  EXPECT_EQ(beat_response.status(), v1::AGENT_STATUS_ONLINE);

  v1::GetAgentResponse got;
  ASSERT_TRUE(stub_->GetAgent(ContextWithToken(Agent("ana")).get(), {}, &got).ok());
  EXPECT_EQ(got.agent().profile().display_name(), "Ana");
  EXPECT_EQ(got.agent().profile_set_by(), "sup-1");
  EXPECT_TRUE(got.agent().has_profile_set_at());
  EXPECT_EQ(got.agent().profile().capacities(0).max_capacity(), 2);
}

TEST_F(PresenceServiceTest, SupervisorsSetSkillsAndLimitsAgentsOnlyTheirStatusAndLess) {
  ASSERT_TRUE(Join("ana", 3).ok());
  const auto read = [&] {
    v1::GetAgentRequest get;
    get.set_agent_id("ana");
    v1::GetAgentResponse got;
    EXPECT_TRUE(stub_->GetAgent(ContextWithToken(Supervisor()).get(), get, &got).ok());
    return got.agent();
  };
  const v1::Agent before = read();
  // An agent cannot give themselves skills or capacity, by either call.
  v1::SetStatusRequest self_granted = Online();
  *self_granted.mutable_profile() = Profile("ana", 100).profile();
  self_granted.mutable_profile()->mutable_skills()->add_categories(
      common::v1::CATEGORY_ACCOUNT_SECURITY);
  grpc::Status refused = SetStatus(Agent("ana"), self_granted);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(refused.error_message().find("profile"), std::string::npos);
  v1::SetAgentProfileRequest own = Profile("ana", 100);
  own.mutable_profile()->mutable_skills()->add_categories(common::v1::CATEGORY_ACCOUNT_SECURITY);
  EXPECT_EQ(SetProfile(Agent("ana"), own).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  own.set_agent_id("");
  EXPECT_EQ(SetProfile(Agent("ana"), own).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SetProfile(Service(), own).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SetProfile(tokens_.For(Role::kCustomer, "c-1"), own).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SetProfile("", own).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::SetStatusRequest raise = Online();
  *raise.add_capacities() = Chat(4);
  EXPECT_EQ(SetStatus(Agent("ana"), raise).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(read().SerializeAsString(), before.SerializeAsString());
  // A supervisor sets profiles with SetAgentProfile, not SetStatus.
  v1::SetStatusRequest by_supervisor = self_granted;
  by_supervisor.set_agent_id("ana");
  EXPECT_EQ(SetStatus(Supervisor(), by_supervisor).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SetProfile(Supervisor(), v1::SetAgentProfileRequest()).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // The agent takes less work for a while, then up to the limit again.
  v1::SetStatusRequest lower = Online();
  *lower.add_capacities() = Chat(1);
  v1::SetStatusResponse lowered;
  ASSERT_TRUE(SetStatus(Agent("ana"), lower, &lowered).ok());
  EXPECT_EQ(lowered.agent().profile().capacities(0).capacity(), 1);
  EXPECT_EQ(lowered.agent().profile().capacities(0).max_capacity(), 3);
  EXPECT_EQ(Reserve(Service(), "ana", "s-1"), grpc::StatusCode::OK);
  EXPECT_EQ(Reserve(Service(), "ana", "s-2"), grpc::StatusCode::RESOURCE_EXHAUSTED);
  *lower.mutable_capacities(0) = Chat(3);
  ASSERT_TRUE(SetStatus(Agent("ana"), lower).ok());
  EXPECT_EQ(Reserve(Service(), "ana", "s-2"), grpc::StatusCode::OK);
  // Only supervisors change skills and limits.
  v1::SetAgentProfileRequest security = Profile("ana", 5);
  security.mutable_profile()->mutable_skills()->add_categories(
      common::v1::CATEGORY_ACCOUNT_SECURITY);
  v1::SetAgentProfileResponse set;
  ASSERT_TRUE(SetProfile(tokens_.For(Role::kSupervisor, "sup-2"), security, &set).ok());
  EXPECT_EQ(set.agent().profile_set_by(), "sup-2");
  EXPECT_EQ(set.agent().status(), v1::AGENT_STATUS_ONLINE);
  EXPECT_EQ(set.agent().profile().skills().categories_size(), 2);
  EXPECT_EQ(set.agent().profile().capacities(0).capacity(), 5);
  EXPECT_EQ(set.agent().profile().capacities(0).load(), 2);
}

TEST_F(PresenceServiceTest, EveryAuthFailureIsRefusedAndChangesNothing) {
  v1::SetStatusRequest other = Online();
  other.set_agent_id("bob");
  EXPECT_EQ(SetStatus(Agent("ana"), other).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SetStatus(tokens_.For(Role::kCustomer, "c-1"), Online()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SetStatus("", Online()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(SetStatus("not-a-token", Online()).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  std::string tampered = Agent("ana");
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_EQ(SetStatus(tampered, Online()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auth::Principal expired{"ana", Role::kAgent, absl::Now() - absl::Minutes(10)};
  std::string expired_token = tokens_.Access(expired, absl::Now() - absl::Hours(1));
  EXPECT_EQ(SetStatus(expired_token, Online()).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  testing::TestTokens other_key("presence");
  EXPECT_EQ(SetStatus(other_key.For(Role::kAgent, "ana"), Online()).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // A supervisor must name the agent.
  EXPECT_EQ(SetStatus(Supervisor(), Online()).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::ListAgentsResponse list;
  EXPECT_EQ(stub_->ListAgents(ContextWithToken(Agent("ana")).get(), {}, &list).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reserve(Agent("ana"), "ana", "s-1"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reserve(Supervisor(), "ana", "s-1"), grpc::StatusCode::PERMISSION_DENIED);
  // Only routing reserves capacity: another service's token is refused.
  EXPECT_EQ(Reserve(tokens_.For(Role::kService, "bot"), "ana", "s-1"),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::GetAgentRequest get_bob;
  get_bob.set_agent_id("bob");
  v1::GetAgentResponse got;
  EXPECT_EQ(stub_->GetAgent(ContextWithToken(Agent("ana")).get(), get_bob, &got).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  ASSERT_TRUE(stub_->ListAgents(ContextWithToken(Supervisor()).get(), {}, &list).ok());
  EXPECT_EQ(list.agents_size(), 0);
}

TEST_F(PresenceServiceTest, BadInputGetsInvalidArgumentAndTheServerKeepsServing) {
  v1::SetStatusRequest unknown_status = Online();
  unknown_status.set_status(static_cast<v1::AgentStatus>(42));
  v1::SetStatusRequest long_device = Online();
  long_device.set_device_id(std::string(5000, 'd'));
  v1::SetStatusRequest negative_capacity = Online();
  *negative_capacity.add_capacities() = Chat(-1);
  v1::SetStatusRequest unknown_channel = Online();
  *unknown_channel.add_capacities() = Chat(1);
  unknown_channel.mutable_capacities(0)->set_channel(static_cast<common::v1::Channel>(77));
  for (const auto& request : {unknown_status, long_device, negative_capacity, unknown_channel}) {
    grpc::Status status = SetStatus(Agent("ana"), request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << status.error_message();
    EXPECT_FALSE(status.error_message().empty());
  }
  v1::SetAgentProfileRequest negative = Profile("ana", -1);
  v1::SetAgentProfileRequest absurd = Profile("ana", 1'000'000);
  v1::SetAgentProfileRequest bad_channel = Profile("ana");
  bad_channel.mutable_profile()->mutable_capacities(0)->set_channel(
      static_cast<common::v1::Channel>(77));
  v1::SetAgentProfileRequest long_name = Profile("ana");
  long_name.mutable_profile()->set_display_name(std::string(200, 'x'));
  v1::SetAgentProfileRequest no_agent = Profile("");
  for (const auto& request : {negative, absurd, bad_channel, long_name, no_agent}) {
    grpc::Status status = SetProfile(Supervisor(), request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << status.error_message();
    EXPECT_FALSE(status.error_message().empty());
  }
  v1::SetStatusRequest oversized_id = Online();
  oversized_id.set_agent_id(std::string(129, 'a'));
  EXPECT_EQ(SetStatus(Supervisor(), oversized_id).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Reserve(Service(), "", "s-1"), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Reserve(Service(), "ana", std::string(500, 's')),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Reserve(Service(), "nobody", "s-1"), grpc::StatusCode::NOT_FOUND);

  v1::ListAgentsRequest bad_page;
  bad_page.set_page_token("!!!");
  v1::ListAgentsResponse list;
  EXPECT_EQ(stub_->ListAgents(ContextWithToken(Supervisor()).get(), bad_page, &list).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad_page.set_page_token("");
  bad_page.set_page_size(100'000);
  EXPECT_EQ(stub_->ListAgents(ContextWithToken(Supervisor()).get(), bad_page, &list).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(Join("ana").ok());
}

TEST_F(PresenceServiceTest, InvalidUtf8IsRejectedNotInternal) {
  v1::SetAgentProfileRequest request = Profile("ana");
  request.mutable_profile()->set_display_name("\xff\xfe bad");
  grpc::Status status = SetProfile(Supervisor(), request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  ASSERT_TRUE(Join("ana").ok());
}

TEST_F(PresenceServiceTest, CapacityFlowAndPagination) {
  for (const char* id : {"a1", "a2", "a3"}) ASSERT_TRUE(Join(id, 1).ok());
  EXPECT_EQ(Reserve(Service(), "a1", "s-1"), grpc::StatusCode::OK);
  EXPECT_EQ(Reserve(Service(), "a1", "s-1"), grpc::StatusCode::OK);
  EXPECT_EQ(Reserve(Service(), "a1", "s-2"), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Reserve(Service(), "a2", "s-1"), grpc::StatusCode::ALREADY_EXISTS);

  v1::ConfirmReservationRequest confirm;
  confirm.set_agent_id("a1");
  confirm.set_session_id("s-1");
  v1::ConfirmReservationResponse confirmed;
  ASSERT_TRUE(stub_->ConfirmReservation(ContextWithToken(Service()).get(), confirm, &confirmed)
                  .ok());
  EXPECT_EQ(confirmed.reservation().state(), v1::RESERVATION_STATE_ASSIGNED);
  v1::ReleaseCapacityRequest release;
  release.set_agent_id("a1");
  release.set_session_id("s-1");
  v1::ReleaseCapacityResponse released;
  ASSERT_TRUE(stub_->ReleaseCapacity(ContextWithToken(Service()).get(), release, &released).ok());
  EXPECT_TRUE(released.released());
  EXPECT_EQ(released.agent().total_load(), 0);

  v1::ListAgentsRequest page_request;
  page_request.set_page_size(2);
  page_request.set_channel(common::v1::CHANNEL_CHAT);
  v1::ListAgentsResponse page;
  ASSERT_TRUE(stub_->ListAgents(ContextWithToken(Supervisor()).get(), page_request, &page).ok());
  ASSERT_EQ(page.agents_size(), 2);
  ASSERT_FALSE(page.next_page_token().empty());
  page_request.set_page_token(page.next_page_token());
  v1::ListAgentsResponse last;
  ASSERT_TRUE(stub_->ListAgents(ContextWithToken(Supervisor()).get(), page_request, &last).ok());
  ASSERT_EQ(last.agents_size(), 1);
  EXPECT_EQ(last.agents(0).agent_id(), "a3");
  EXPECT_TRUE(last.next_page_token().empty());
}

TEST_F(PresenceServiceTest, WatchSendsSnapshotThenChangesAndEndsOnDrain) {
  ASSERT_TRUE(SetStatus(Agent("ana"), Online()).ok());
  auto context = ContextWithToken(Service(), absl::Seconds(30));
  auto reader = stub_->WatchPresence(context.get(), {});
  v1::WatchPresenceResponse message;
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_EQ(message.snapshot_agent().agent_id(), "ana");
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_TRUE(message.has_snapshot_complete());
  EXPECT_EQ(message.snapshot_complete().agent_count(), 1);
  const int64_t snapshot_revision = message.snapshot_complete().revision();

  v1::SetStatusRequest away;
  away.set_status(v1::AGENT_STATUS_AWAY);
  ASSERT_TRUE(SetStatus(Agent("ana"), away).ok());
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_TRUE(message.has_change());
  EXPECT_EQ(message.change().agent().status(), v1::AGENT_STATUS_AWAY);
  EXPECT_EQ(message.change().previous_status(), v1::AGENT_STATUS_ONLINE);
  EXPECT_EQ(message.change().reason(), v1::CHANGE_REASON_STATUS_SET);
  EXPECT_GT(message.change().agent().revision(), snapshot_revision);

  server_->server().Shutdown();
  while (reader->Read(&message)) {
  }
  grpc::Status ended = reader->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE) << ended.error_message();
}

TEST_F(PresenceServiceTest, WatchRefusesCustomersAndAgents) {
  for (const std::string& token : {tokens_.For(Role::kCustomer, "c"), Agent("ana")}) {
    auto context = ContextWithToken(token);
    auto reader = stub_->WatchPresence(context.get(), {});
    v1::WatchPresenceResponse message;
    EXPECT_FALSE(reader->Read(&message));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
}

TEST_F(PresenceServiceTest, MetricsCountHandledCallsByCode) {
  ASSERT_TRUE(SetStatus(Agent("ana"), Online()).ok());
  EXPECT_EQ(SetStatus("", Online()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  const std::vector<std::string> expected = {
      "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"SetStatus\","
      "grpc_service=\"switchboard.presence.v1.PresenceService\",grpc_type=\"unary\"} 1",
      "grpc_server_handled_total{grpc_code=\"Unauthenticated\",grpc_method=\"SetStatus\","
      "grpc_service=\"switchboard.presence.v1.PresenceService\",grpc_type=\"unary\"} 1",
      "switchboard_presence_agents{status=\"online\"} 1",
  };
  const std::string metrics = server_->WaitForMetrics(expected);
  for (const std::string& line : expected) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
  }
}

TEST_F(PresenceServiceTest, OnlyRoutingReconcilesAndStrayCapacityIsFreed) {
  ASSERT_TRUE(Join("ana", 2).ok());
  v1::ReserveCapacityRequest reserve;
  reserve.set_agent_id("ana");
  reserve.set_session_id("stray");
  reserve.set_channel(common::v1::CHANNEL_CHAT);
  reserve.set_holder_id(3);
  v1::ReserveCapacityResponse reserved;
  ASSERT_TRUE(
      stub_->ReserveCapacity(ContextWithToken(Service()).get(), reserve, &reserved).ok());
  EXPECT_EQ(reserved.reservation().holder_id(), 3);

  v1::ReconcileReservationsRequest request;
  request.set_fence(10);
  v1::ReconcileReservationsResponse response;
  for (const std::string& token :
       {tokens_.For(Role::kService, "sessions"), Supervisor(), Agent("ana")}) {
    EXPECT_EQ(stub_->ReconcileReservations(ContextWithToken(token).get(), request, &response)
                  .error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  v1::ReconcileReservationsRequest bad = request;
  bad.set_agent_id_to("a");
  v1::HeldCapacity* outside = bad.add_live();
  outside->set_agent_id("ana");
  outside->set_session_id("stray");
  grpc::Status refused =
      stub_->ReconcileReservations(ContextWithToken(Service()).get(), bad, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("live.agent_id"), std::string::npos);

  ASSERT_TRUE(
      stub_->ReconcileReservations(ContextWithToken(Service()).get(), request, &response).ok());
  ASSERT_EQ(response.released_size(), 1);
  EXPECT_EQ(response.released(0).session_id(), "stray");
  EXPECT_EQ(response.released(0).holder_id(), 3);
  v1::GetAgentRequest get;
  get.set_agent_id("ana");
  v1::GetAgentResponse got;
  ASSERT_TRUE(stub_->GetAgent(ContextWithToken(Supervisor()).get(), get, &got).ok());
  EXPECT_EQ(got.agent().total_load(), 0);
}

TEST_F(PresenceServiceTest, WatchStreamsPerCallerAreCapped) {
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchPresenceResponse>>> readers;
  v1::WatchPresenceResponse message;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(ContextWithToken(Supervisor(), absl::Seconds(30)));
    readers.push_back(stub_->WatchPresence(contexts.back().get(), {}));
    ASSERT_TRUE(readers.back()->Read(&message));
    EXPECT_TRUE(message.has_snapshot_complete());
  }
  auto context = ContextWithToken(Supervisor());
  auto refused = stub_->WatchPresence(context.get(), {});
  EXPECT_FALSE(refused->Read(&message));
  EXPECT_EQ(refused->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  const auto& trailers = context->GetServerTrailingMetadata();
  EXPECT_NE(trailers.find("retry-after"), trailers.end());
  // Another caller is not affected; a closed stream gives its place back.
  auto other_context = ContextWithToken(Service(), absl::Seconds(30));
  auto other = stub_->WatchPresence(other_context.get(), {});
  ASSERT_TRUE(other->Read(&message));
  contexts[0]->TryCancel();
  while (readers[0]->Read(&message)) {
  }
  readers[0]->Finish();
  bool reopened = false;
  for (int attempt = 0; attempt < 50 && !reopened; ++attempt) {
    auto again_context = ContextWithToken(Supervisor(), absl::Seconds(30));
    auto again = stub_->WatchPresence(again_context.get(), {});
    reopened = again->Read(&message);
    again_context->TryCancel();
    while (again->Read(&message)) {
    }
    again->Finish();
    if (!reopened) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(reopened);
  other_context->TryCancel();
  contexts[1]->TryCancel();
}

}  // namespace
}  // namespace switchboard::presence
