#include "services/routing/routing_service.h"

#include "gtest/gtest.h"
#include "libs/protoutil/time.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/service_fixture.h"
#include "libs/testing/test_tokens.h"
#include "services/routing/fake_peers.h"
#include "services/routing/sqlite_store.h"

namespace switchboard::routing {
namespace {

using auth::Role;
using testing::ContextWithToken;

// Routing as main() wires it, on SQLite, behind a real server, with its
// dispatcher running.
class RoutingServiceTest : public ::testing::Test {
 protected:
  RoutingServiceTest()
      : db_(*storage::Database::Open({storage::MakeTempDir() + "/routing.db"})) {
    EXPECT_TRUE(db_->Migrate(RoutingMigrations()).ok());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteRoutingStore>(committer_.get(), "switchboard.routing.v1",
                                                  nullptr);
    registry_ = std::make_shared<prometheus::Registry>();
    metrics_ = std::make_unique<RoutingMetrics>(*registry_);
    schedules_ = std::make_unique<ScheduleBook>(store_.get(), RealClock(), nullptr);
    EXPECT_TRUE(schedules_->Load().ok());
    router_ = std::make_unique<Router>(store_.get(), &presence_, &sessions_, RealClock(),
                                       metrics_.get(), RouterOptions(), schedules_.get());
    EXPECT_TRUE(router_->Load().ok());
    RoutingService::Options options;
    options.max_watch_streams_per_agent = 2;
    service_ = std::make_unique<RoutingService>(router_.get(), schedules_.get(),
                                                &tokens_.verifier(), RealClock(), &pool_, options);
    server_ = std::make_unique<testing::TestServer>(std::vector<grpc::Service*>{service_.get()});
    server_->server().OnDrain([this] { service_->EndStreams(); });
    stub_ = v1::RoutingService::NewStub(server_->channel());
    dispatcher_ = std::make_unique<Dispatcher>(router_.get(), absl::Milliseconds(100));
  }
  ~RoutingServiceTest() override {
    server_.reset();
    dispatcher_.reset();
    pool_.Stop();
  }

  std::string Service() { return tokens_.For(Role::kService, "sessions"); }
  std::string Feedback() { return tokens_.For(Role::kService, "feedback"); }
  std::string Supervisor() { return tokens_.For(Role::kSupervisor, "sup-1"); }
  std::string Agent(const std::string& id) { return tokens_.For(Role::kAgent, id); }

  static v1::EnqueueSessionRequest Request(const std::string& session) {
    v1::EnqueueSessionRequest r;
    r.set_session_id(session);
    r.set_customer_id("cust-1");
    r.set_channel(common::v1::CHANNEL_CHAT);
    r.set_category(common::v1::CATEGORY_DEPOSIT);
    r.set_language("en-GB");
    r.set_reason(v1::ENQUEUE_REASON_ESCALATED);
    return r;
  }

  // `id` ONLINE in routing's view of presence, taking DEPOSIT chats in
  // English.
  presence::v1::Agent Online(const std::string& id, int capacity) {
    presence::v1::Agent agent;
    agent.set_agent_id(id);
    agent.set_status(presence::v1::AGENT_STATUS_ONLINE);
    agent.mutable_profile()->mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
    agent.mutable_profile()->mutable_skills()->add_languages("en");
    auto* chat = agent.mutable_profile()->add_capacities();
    chat->set_channel(common::v1::CHANNEL_CHAT);
    chat->set_capacity(capacity);
    presence_.SetCapacity(id, capacity);
    return agent;
  }

  // Reads the next message that is not a caught_up marker.
  static bool ReadOffer(grpc::ClientReader<v1::WatchOffersResponse>* reader,
                        v1::WatchOffersResponse* message) {
    while (reader->Read(message)) {
      if (!message->has_caught_up()) return true;
    }
    return false;
  }

  grpc::StatusCode Enqueue(const std::string& token, const v1::EnqueueSessionRequest& r) {
    v1::EnqueueSessionResponse response;
    return stub_->EnqueueSession(ContextWithToken(token).get(), r, &response).error_code();
  }

  testing::TestTokens tokens_{"routing"};
  server::BlockingPool pool_{4};
  FakePresence presence_;
  FakeSessions sessions_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteRoutingStore> store_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<RoutingMetrics> metrics_;
  std::unique_ptr<ScheduleBook> schedules_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<RoutingService> service_;
  std::unique_ptr<testing::TestServer> server_;
  std::unique_ptr<v1::RoutingService::Stub> stub_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

TEST_F(RoutingServiceTest, AuthFailuresAndBadInputs) {
  EXPECT_EQ(Enqueue("", Request("s-1")), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Enqueue("junk", Request("s-1")), grpc::StatusCode::UNAUTHENTICATED);
  testing::TestTokens other_key("routing");
  EXPECT_EQ(Enqueue(other_key.For(Role::kService, "sessions"), Request("s-1")),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Enqueue(Agent("a1"), Request("s-1")), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Enqueue(tokens_.For(Role::kCustomer, "c"), Request("s-1")),
            grpc::StatusCode::PERMISSION_DENIED);
  // Only sessions queues sessions; feedback queues complaints only.
  EXPECT_EQ(Enqueue(tokens_.For(Role::kService, "feedback"), Request("s-1")),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::EnqueueSessionRequest bad = Request("");
  EXPECT_EQ(Enqueue(Service(), bad), grpc::StatusCode::INVALID_ARGUMENT);
  bad = Request("s-1");
  bad.set_category(static_cast<common::v1::Category>(77));
  EXPECT_EQ(Enqueue(Service(), bad), grpc::StatusCode::INVALID_ARGUMENT);
  bad = Request(std::string(200, 's'));
  EXPECT_EQ(Enqueue(Service(), bad), grpc::StatusCode::INVALID_ARGUMENT);

  v1::GetQueueStatsResponse stats;
  EXPECT_EQ(stub_->GetQueueStats(ContextWithToken(Agent("a1")).get(), {}, &stats).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::UpdateAgentSettingsRequest other;
  other.set_agent_id("a2");
  other.mutable_settings()->set_auto_accept(true);
  v1::UpdateAgentSettingsResponse updated;
  EXPECT_EQ(stub_->UpdateAgentSettings(ContextWithToken(Agent("a1")).get(), other, &updated)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::WatchOffersRequest watch_other;
  watch_other.set_agent_id("a2");
  auto context = ContextWithToken(Agent("a1"));
  auto reader = stub_->WatchOffers(context.get(), watch_other);
  v1::WatchOffersResponse message;
  EXPECT_FALSE(reader->Read(&message));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::ListQueueEntriesRequest bad_page;
  bad_page.set_page_token("!!");
  v1::ListQueueEntriesResponse list;
  EXPECT_EQ(stub_->ListQueueEntries(ContextWithToken(tokens_.For(Role::kSupervisor, "sup-1")).get(),
                                    bad_page, &list)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A customer reading another customer's entry sees NOT_FOUND.
  ASSERT_EQ(Enqueue(Service(), Request("s-1")), grpc::StatusCode::OK);
  v1::GetQueueEntryRequest get;
  get.set_session_id("s-1");
  v1::GetQueueEntryResponse entry;
  EXPECT_EQ(stub_->GetQueueEntry(ContextWithToken(tokens_.For(Role::kCustomer, "cust-2")).get(),
                                 get, &entry)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(stub_->GetQueueEntry(ContextWithToken(tokens_.For(Role::kCustomer, "cust-1")).get(),
                                   get, &entry)
                  .ok());
  EXPECT_EQ(entry.entry().position(), 1);
  EXPECT_EQ(entry.entry().queue().language(), "en");
}

TEST_F(RoutingServiceTest, WatchOffersAcceptAssignsAndDrainEndsTheStream) {
  presence::v1::Agent agent;
  agent.set_agent_id("a1");
  agent.set_status(presence::v1::AGENT_STATUS_ONLINE);
  agent.mutable_profile()->mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
  agent.mutable_profile()->mutable_skills()->add_languages("en");
  auto* chat = agent.mutable_profile()->add_capacities();
  chat->set_channel(common::v1::CHANNEL_CHAT);
  chat->set_capacity(1);
  presence_.SetCapacity("a1", 1);
  ASSERT_TRUE(router_->ResetPresence({agent}).ok());

  auto context = ContextWithToken(Agent("a1"), absl::Seconds(30));
  auto reader = stub_->WatchOffers(context.get(), {});
  v1::WatchOffersResponse message;
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_TRUE(message.has_caught_up());
  ASSERT_EQ(Enqueue(Service(), Request("s-7")), grpc::StatusCode::OK);
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_TRUE(message.has_offer());
  EXPECT_EQ(message.offer().entry().session_id(), "s-7");
  v1::AcceptOfferRequest accept;
  accept.set_offer_id(message.offer().offer_id());
  v1::AcceptOfferResponse accepted;
  EXPECT_EQ(stub_->AcceptOffer(ContextWithToken(Agent("a2")).get(), accept, &accepted)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(stub_->AcceptOffer(ContextWithToken(Agent("a1")).get(), accept, &accepted).ok());
  EXPECT_EQ(accepted.assignment().session_id(), "s-7");
  EXPECT_EQ(sessions_.View("s-7").state, SessionView::State::kAssigned);
  EXPECT_EQ(sessions_.View("s-7").assigned_agent_id, "a1");
  // The agent's deadline reached presence and sessions.
  EXPECT_LT(sessions_.last_deadline("AssignAgent"), absl::Now() + absl::Seconds(11));
  EXPECT_LT(presence_.last_deadline("Confirm"), absl::Now() + absl::Seconds(11));
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_EQ(message.offer_closed().outcome(), v1::OFFER_OUTCOME_ACCEPTED);

  server_->server().Shutdown();
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(RoutingServiceTest, AgentSettingsAreReadByTheAgentAndSupervisorsOnly) {
  v1::GetAgentSettingsResponse got;
  ASSERT_TRUE(
      stub_->GetAgentSettings(ContextWithToken(Agent("a1")).get(), {}, &got).ok());
  EXPECT_EQ(got.agent_id(), "a1");
  EXPECT_FALSE(got.settings().auto_accept());
  EXPECT_FALSE(got.has_updated_at());

  v1::UpdateAgentSettingsRequest update;
  update.mutable_settings()->set_auto_accept(true);
  v1::UpdateAgentSettingsResponse updated;
  ASSERT_TRUE(
      stub_->UpdateAgentSettings(ContextWithToken(Agent("a1")).get(), update, &updated).ok());
  v1::GetAgentSettingsRequest a1;
  a1.set_agent_id("a1");
  for (const std::string& token :
       {Agent("a1"), tokens_.For(Role::kSupervisor, "sup-1")}) {
    ASSERT_TRUE(stub_->GetAgentSettings(ContextWithToken(token).get(), a1, &got).ok());
    EXPECT_TRUE(got.settings().auto_accept());
    EXPECT_EQ(got.updated_at().seconds(), updated.updated_at().seconds());
  }
  EXPECT_EQ(stub_->GetAgentSettings(ContextWithToken(Agent("a2")).get(), a1, &got).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stub_->GetAgentSettings(ContextWithToken(tokens_.For(Role::kCustomer, "c")).get(),
                                    a1, &got)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::GetAgentSettingsRequest bad;
  bad.set_agent_id(std::string(200, 'x'));
  EXPECT_EQ(stub_->GetAgentSettings(ContextWithToken(Supervisor()).get(), bad, &got).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RoutingServiceTest, DeclineOfferReleasesTheCapacityAndIsIdempotent) {
  ASSERT_TRUE(router_->ResetPresence({Online("a1", 1)}).ok());
  auto context = ContextWithToken(Agent("a1"), absl::Seconds(30));
  auto reader = stub_->WatchOffers(context.get(), {});
  ASSERT_EQ(Enqueue(Service(), Request("s-1")), grpc::StatusCode::OK);
  v1::WatchOffersResponse message;
  ASSERT_TRUE(ReadOffer(reader.get(), &message));
  ASSERT_TRUE(message.has_offer());
  EXPECT_EQ(presence_.Load("a1"), 1);

  v1::DeclineOfferRequest decline;
  decline.set_offer_id(message.offer().offer_id());
  decline.set_reason(v1::DECLINE_REASON_NOT_MY_SKILL);
  v1::DeclineOfferResponse declined;
  EXPECT_EQ(stub_->DeclineOffer(ContextWithToken(Agent("a2")).get(), decline, &declined)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(
      stub_->DeclineOffer(ContextWithToken(Agent("a1")).get(), decline, &declined).ok());
  EXPECT_EQ(declined.offer().outcome(), v1::OFFER_OUTCOME_DECLINED);
  EXPECT_EQ(presence_.Load("a1"), 0);
  ASSERT_TRUE(ReadOffer(reader.get(), &message));
  EXPECT_EQ(message.offer_closed().outcome(), v1::OFFER_OUTCOME_DECLINED);
  v1::DeclineOfferResponse again;
  ASSERT_TRUE(stub_->DeclineOffer(ContextWithToken(Agent("a1")).get(), decline, &again).ok());
  EXPECT_EQ(again.offer().offer_id(), declined.offer().offer_id());
  v1::AcceptOfferRequest accept;
  accept.set_offer_id(decline.offer_id());
  v1::AcceptOfferResponse accepted;
  EXPECT_EQ(stub_->AcceptOffer(ContextWithToken(Agent("a1")).get(), accept, &accepted)
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  decline.set_reason(static_cast<v1::DeclineReason>(42));
  EXPECT_EQ(stub_->DeclineOffer(ContextWithToken(Agent("a1")).get(), decline, &declined)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Never offered again to the agent who declined, for this wait.
  v1::GetQueueEntryRequest get;
  get.set_session_id("s-1");
  v1::GetQueueEntryResponse entry;
  ASSERT_TRUE(stub_->GetQueueEntry(ContextWithToken(Supervisor()).get(), get, &entry).ok());
  EXPECT_EQ(entry.entry().state(), v1::ENTRY_STATE_WAITING);
  context->TryCancel();
}

TEST_F(RoutingServiceTest, ComplaintsAreQueuedOfferedToSupervisorsAndCancelled) {
  const std::string supervisor = tokens_.For(Role::kSupervisor, "sup-1");
  ASSERT_TRUE(router_->ResetPresence({Online("sup-1", 0)}).ok());
  auto context = ContextWithToken(supervisor, absl::Seconds(30));
  auto reader = stub_->WatchOffers(context.get(), {});
  v1::WatchOffersResponse message;
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_TRUE(message.has_caught_up());

  v1::EnqueueComplaintRequest complaint;
  complaint.set_complaint_id("cmp-1");
  complaint.set_customer_id("cust-1");
  complaint.set_category(common::v1::CATEGORY_WITHDRAWAL);
  complaint.set_session_id("s-9");
  v1::EnqueueComplaintResponse queued;
  EXPECT_EQ(stub_->EnqueueComplaint(ContextWithToken(Agent("a1")).get(), complaint, &queued)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::EnqueueComplaintRequest nameless = complaint;
  nameless.clear_complaint_id();
  grpc::Status refused =
      stub_->EnqueueComplaint(ContextWithToken(Feedback()).get(), nameless, &queued);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("complaint_id"), std::string::npos);
  ASSERT_TRUE(
      stub_->EnqueueComplaint(ContextWithToken(Feedback()).get(), complaint, &queued).ok());
  EXPECT_EQ(queued.entry().priority(), v1::PRIORITY_HIGH);
  EXPECT_FALSE(queued.replayed());
  ASSERT_TRUE(
      stub_->EnqueueComplaint(ContextWithToken(Feedback()).get(), complaint, &queued).ok());
  EXPECT_TRUE(queued.replayed());

  ASSERT_TRUE(ReadOffer(reader.get(), &message));
  ASSERT_TRUE(message.has_offer());
  EXPECT_EQ(message.offer().entry().complaint_id(), "cmp-1");

  v1::CancelComplaintRequest cancel;
  cancel.set_complaint_id("cmp-1");
  v1::CancelComplaintResponse cancelled;
  EXPECT_EQ(stub_->CancelComplaint(ContextWithToken(supervisor).get(), cancel, &cancelled)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(
      stub_->CancelComplaint(ContextWithToken(Feedback()).get(), cancel, &cancelled).ok());
  EXPECT_TRUE(cancelled.found());
  ASSERT_TRUE(ReadOffer(reader.get(), &message));
  EXPECT_EQ(message.offer_closed().outcome(), v1::OFFER_OUTCOME_WITHDRAWN);
  ASSERT_TRUE(
      stub_->CancelComplaint(ContextWithToken(Feedback()).get(), cancel, &cancelled).ok());
  EXPECT_FALSE(cancelled.found());
  v1::GetQueueEntryRequest get;
  get.set_complaint_id("cmp-1");
  v1::GetQueueEntryResponse entry;
  EXPECT_EQ(stub_->GetQueueEntry(ContextWithToken(Supervisor()).get(), get, &entry).error_code(),
            grpc::StatusCode::NOT_FOUND);
  context->TryCancel();
}

TEST_F(RoutingServiceTest, WatchOffersStreamsPerAgentAreCapped) {
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchOffersResponse>>> readers;
  v1::WatchOffersResponse message;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(ContextWithToken(Agent("a1"), absl::Seconds(30)));
    readers.push_back(stub_->WatchOffers(contexts.back().get(), {}));
    ASSERT_TRUE(readers.back()->Read(&message));
    EXPECT_TRUE(message.has_caught_up());
  }
  auto context = ContextWithToken(Agent("a1"));
  auto refused = stub_->WatchOffers(context.get(), {});
  EXPECT_FALSE(refused->Read(&message));
  EXPECT_EQ(refused->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  const auto& trailers = context->GetServerTrailingMetadata();
  EXPECT_NE(trailers.find("retry-after"), trailers.end());
  // Another agent is not affected.
  auto other_context = ContextWithToken(Agent("a2"), absl::Seconds(30));
  auto other = stub_->WatchOffers(other_context.get(), {});
  ASSERT_TRUE(other->Read(&message));
  EXPECT_TRUE(message.has_caught_up());
  for (auto& c : contexts) c->TryCancel();
  other_context->TryCancel();
}

TEST_F(RoutingServiceTest, AWatcherThatStopsReadingIsEndedInsteadOfBuffered) {
  // The same router behind a server whose streams may lag 3 messages.
  RoutingService::Options options;
  options.max_watch_backlog = 3;
  RoutingService service(router_.get(), schedules_.get(), &tokens_.verifier(), RealClock(),
                         &pool_, options);
  testing::TestServer server(std::vector<grpc::Service*>{&service});
  server.server().OnDrain([&service] { service.EndStreams(); });
  // A client with a small flow-control window that never reads: once the
  // window is full, gRPC takes no more writes and routing's queue grows.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  auto stalled_stub = v1::RoutingService::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", server.server().port()), grpc::InsecureChannelCredentials(),
      args));
  auto stalled_context = ContextWithToken(Agent("a1"), absl::Seconds(60));
  auto stalled = stalled_stub->WatchOffers(stalled_context.get(), {});
  constexpr int kSessions = 30;
  ASSERT_TRUE(router_->ResetPresence({Online("a1", kSessions)}).ok());
  for (int i = 0; i < kSessions; ++i) {
    ASSERT_EQ(Enqueue(Service(), Request(absl::StrCat("s-", i))), grpc::StatusCode::OK);
  }
  // Every session gets its offer; the stalled stream cannot take them all.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (presence_.Load("a1") < kSessions && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(presence_.Load("a1"), kSessions);
  v1::WatchOffersResponse message;
  int received = 0;
  while (stalled->Read(&message)) ++received;
  grpc::Status ended = stalled->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << ended.error_message();
  EXPECT_LT(received, kSessions + 1);
  // The ended stream no longer counts against the agent (two more fit under
  // the cap of 2), and reconnecting sends the open offers again.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchOffersResponse>>> readers;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(ContextWithToken(Agent("a1"), absl::Seconds(30)));
    readers.push_back(stub_->WatchOffers(contexts.back().get(), {}));
    int offers = 0;
    while (readers.back()->Read(&message) && !message.has_caught_up()) {
      offers += message.has_offer();
    }
    ASSERT_TRUE(message.has_caught_up());
    EXPECT_EQ(offers, message.caught_up().open_offers());
    EXPECT_GT(offers, 0);
  }
  for (auto& context : contexts) context->TryCancel();
  for (auto& reader : readers) reader->Finish().IgnoreError();
}

TEST_F(RoutingServiceTest, ChatEntriesHaveNoFirstResponseDueTime) {
  v1::EnqueueSessionResponse response;
  ASSERT_TRUE(
      stub_->EnqueueSession(ContextWithToken(Service()).get(), Request("s-chat"), &response)
          .ok());
  EXPECT_FALSE(response.entry().has_first_response_due_at());
  v1::GetQueueStatsResponse stats;
  ASSERT_TRUE(stub_->GetQueueStats(ContextWithToken(Supervisor()).get(), {}, &stats).ok());
  for (const auto& queue : stats.queues()) EXPECT_EQ(queue.sla_breached(), 0);
}

}  // namespace
}  // namespace switchboard::routing

namespace switchboard::routing {
namespace {

// A schedule that is closed now and for good (no hours at all) on PHONE
// deposit queues, and weekdays 09:00-17:00 in Berlin on EMAIL.
v1::Schedule ClosedPhone() {
  v1::Schedule s;
  s.set_schedule_id("phone-closed");
  s.set_display_name("Phone: closed");
  s.set_time_zone("Asia/Shanghai");
  v1::QueueSelector* selector = s.add_applies_to();
  selector->set_channel(common::v1::CHANNEL_PHONE);
  selector->set_category(common::v1::CATEGORY_DEPOSIT);
  return s;
}

v1::Schedule BerlinEmail() {
  v1::Schedule s;
  s.set_schedule_id("email-berlin");
  s.set_time_zone("Europe/Berlin");
  for (v1::DayOfWeek day : {v1::DAY_OF_WEEK_MONDAY, v1::DAY_OF_WEEK_TUESDAY,
                            v1::DAY_OF_WEEK_WEDNESDAY, v1::DAY_OF_WEEK_THURSDAY,
                            v1::DAY_OF_WEEK_FRIDAY}) {
    v1::WeeklyHours* hours = s.add_weekly_hours();
    hours->set_day(day);
    hours->set_start_time("09:00");
    hours->set_end_time("17:00");
  }
  s.add_applies_to()->set_channel(common::v1::CHANNEL_EMAIL);
  return s;
}

TEST_F(RoutingServiceTest, SupervisorsManageSchedulesThroughTheApi) {
  const std::string supervisor = tokens_.For(Role::kSupervisor, "sup-1");
  v1::SetScheduleRequest set;
  *set.mutable_schedule() = ClosedPhone();
  set.mutable_schedule()->set_version(42);  // output only: ignored
  set.set_expected_version(0);
  v1::SetScheduleResponse stored;
  // Only supervisors change schedules.
  EXPECT_EQ(stub_->SetSchedule(ContextWithToken(Agent("a1")).get(), set, &stored).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stub_->SetSchedule(ContextWithToken(Service()).get(), set, &stored).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status status = stub_->SetSchedule(ContextWithToken(supervisor).get(), set, &stored);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stored.schedule().version(), 1);
  EXPECT_EQ(stored.schedule().updated_by(), "sup-1");
  // The same request again is stale (it asks to create).
  status = stub_->SetSchedule(ContextWithToken(supervisor).get(), set, &stored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("expected_version"), std::string::npos);

  v1::SetScheduleRequest bad;
  *bad.mutable_schedule() = BerlinEmail();
  bad.mutable_schedule()->mutable_weekly_hours(3)->set_end_time("25:00");
  status = stub_->SetSchedule(ContextWithToken(supervisor).get(), bad, &stored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("weekly_hours[3].end_time"), std::string::npos);
  bad.clear_schedule();
  status = stub_->SetSchedule(ContextWithToken(supervisor).get(), bad, &stored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("schedule"), std::string::npos);

  v1::SetScheduleRequest email;
  *email.mutable_schedule() = BerlinEmail();
  ASSERT_TRUE(stub_->SetSchedule(ContextWithToken(supervisor).get(), email, &stored).ok());
  EXPECT_EQ(stored.schedule().version(), 2);

  v1::GetScheduleRequest get;
  get.set_schedule_id("phone-closed");
  v1::GetScheduleResponse got;
  ASSERT_TRUE(stub_->GetSchedule(ContextWithToken(Agent("a1")).get(), get, &got).ok());
  EXPECT_FALSE(got.open());
  EXPECT_FALSE(got.has_next_transition_at());
  EXPECT_EQ(got.schedule().display_name(), "Phone: closed");
  get.set_schedule_id("nope");
  EXPECT_EQ(stub_->GetSchedule(ContextWithToken(Agent("a1")).get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::ListSchedulesRequest list;
  list.set_page_size(1);
  v1::ListSchedulesResponse page;
  ASSERT_TRUE(stub_->ListSchedules(ContextWithToken(supervisor).get(), list, &page).ok());
  ASSERT_EQ(page.schedules_size(), 1);
  EXPECT_EQ(page.schedules(0).schedule_id(), "email-berlin");
  list.set_page_token(page.next_page_token());
  ASSERT_TRUE(stub_->ListSchedules(ContextWithToken(supervisor).get(), list, &page).ok());
  ASSERT_EQ(page.schedules_size(), 1);
  EXPECT_EQ(page.schedules(0).schedule_id(), "phone-closed");
  EXPECT_TRUE(page.next_page_token().empty());
  list.set_page_token("garbage");
  EXPECT_EQ(stub_->ListSchedules(ContextWithToken(supervisor).get(), list, &page).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::DeleteScheduleRequest del;
  del.set_schedule_id("email-berlin");
  del.set_expected_version(1);
  v1::DeleteScheduleResponse deleted;
  EXPECT_EQ(
      stub_->DeleteSchedule(ContextWithToken(supervisor).get(), del, &deleted).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);
  del.set_expected_version(2);
  ASSERT_TRUE(stub_->DeleteSchedule(ContextWithToken(supervisor).get(), del, &deleted).ok());
  EXPECT_TRUE(deleted.found());
}

TEST_F(RoutingServiceTest, EnqueueAndStatsTellWhetherTheQueueIsOpen) {
  ASSERT_TRUE(schedules_->Set(ClosedPhone(), std::nullopt, "sup-1").ok());
  v1::EnqueueSessionRequest callback = Request("s-cb");
  callback.set_channel(common::v1::CHANNEL_PHONE);
  callback.set_reason(v1::ENQUEUE_REASON_CALLBACK);
  v1::EnqueueSessionResponse response;
  ASSERT_TRUE(stub_->EnqueueSession(ContextWithToken(Service()).get(), callback, &response).ok());
  EXPECT_FALSE(response.hours().open());
  EXPECT_EQ(response.hours().schedule_id(), "phone-closed");
  EXPECT_FALSE(response.hours().has_next_opening_at());
  ASSERT_TRUE(stub_->EnqueueSession(ContextWithToken(Service()).get(), Request("s-chat"),
                                    &response)
                  .ok());
  EXPECT_TRUE(response.hours().open());

  v1::GetQueueStatsResponse stats;
  ASSERT_TRUE(stub_->GetQueueStats(ContextWithToken(Supervisor()).get(), {}, &stats).ok());
  ASSERT_EQ(stats.queues_size(), 2);
  for (const v1::QueueStats& s : stats.queues()) {
    EXPECT_EQ(s.hours().open(), s.queue().channel() != common::v1::CHANNEL_PHONE);
  }
}

TEST_F(RoutingServiceTest, GetQueueHoursCountsBusinessTime) {
  ASSERT_TRUE(schedules_->Set(BerlinEmail(), std::nullopt, "sup-1").ok());
  v1::GetQueueHoursRequest request;
  request.set_channel(common::v1::CHANNEL_EMAIL);
  request.set_category(common::v1::CATEGORY_WITHDRAWAL);
  request.set_language("de-DE");
  request.mutable_business_time()->set_seconds(2 * 3600);
  // Friday 2026-03-06 16:00 in Berlin: one hour on Friday, one on Monday.
  protoutil::ToTimestamp(absl::FromCivil(absl::CivilMinute(2026, 3, 6, 15, 0), absl::UTCTimeZone()),
                         request.mutable_from());
  v1::GetQueueHoursResponse response;
  grpc::Status status = stub_->GetQueueHours(
      ContextWithToken(tokens_.For(Role::kCustomer, "c")).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.hours().schedule_id(), "email-berlin");
  EXPECT_EQ(response.hours().time_zone(), "Europe/Berlin");
  EXPECT_EQ(protoutil::FromTimestamp(response.business_time_ends_at()),
            absl::FromCivil(absl::CivilMinute(2026, 3, 9, 9, 0), absl::UTCTimeZone()));

  // A queue without a schedule counts calendar time.
  request.set_channel(common::v1::CHANNEL_CHAT);
  ASSERT_TRUE(stub_->GetQueueHours(ContextWithToken(Service()).get(), request, &response).ok());
  EXPECT_TRUE(response.hours().open());
  EXPECT_EQ(protoutil::FromTimestamp(response.business_time_ends_at()),
            absl::FromCivil(absl::CivilMinute(2026, 3, 6, 17, 0), absl::UTCTimeZone()));

  request.clear_language();
  status = stub_->GetQueueHours(ContextWithToken(Service()).get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("language"), std::string::npos);
  request.set_language("en");
  request.mutable_business_time()->set_seconds(-1);
  status = stub_->GetQueueHours(ContextWithToken(Service()).get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("business_time"), std::string::npos);
}

}  // namespace
}  // namespace switchboard::routing
