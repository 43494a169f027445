#include "services/routing/routing_service.h"

#include "gtest/gtest.h"
#include "libs/protoutil/time.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/service_fixture.h"
#include "services/routing/sqlite_store.h"

namespace switchboard::routing {
namespace {

using auth::Role;
using testing::ContextWithToken;

class OkPresence : public PresencePort {
 public:
  absl::Status Reserve(const std::string&, const std::string&, common::v1::Channel,
                       absl::Duration) override {
    return absl::OkStatus();
  }
  absl::Status Confirm(const std::string&, const std::string&) override {
    return absl::OkStatus();
  }
  absl::Status Release(const std::string&, const std::string&) override {
    return absl::OkStatus();
  }
};

class RecordingSessions : public SessionsPort {
 public:
  absl::Status RecordOffer(const std::string&, const std::string&, const std::string&,
                           absl::Time) override {
    return absl::OkStatus();
  }
  absl::Status AssignAgent(const std::string& s, const std::string& a, const std::string&,
                           const std::string&) override {
    absl::MutexLock lock(&mu);
    assigned.push_back(s + "/" + a);
    return absl::OkStatus();
  }
  absl::Status RequeueSession(const std::string&, const std::string&) override {
    return absl::OkStatus();
  }
  absl::Mutex mu;
  std::vector<std::string> assigned;
};

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
    router_ = std::make_unique<Router>(store_.get(), &presence_, &sessions_, RealClock(),
                                       metrics_.get(), RouterOptions());
    EXPECT_TRUE(router_->Load().ok());
    service_ = std::make_unique<RoutingService>(router_.get(), &tokens_.codec(), RealClock(),
                                                &pool_);
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

  grpc::StatusCode Enqueue(const std::string& token, const v1::EnqueueSessionRequest& r) {
    v1::EnqueueSessionResponse response;
    return stub_->EnqueueSession(ContextWithToken(token).get(), r, &response).error_code();
  }

  testing::TestTokens tokens_;
  server::BlockingPool pool_{4};
  OkPresence presence_;
  RecordingSessions sessions_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteRoutingStore> store_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<RoutingMetrics> metrics_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<RoutingService> service_;
  std::unique_ptr<testing::TestServer> server_;
  std::unique_ptr<v1::RoutingService::Stub> stub_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

TEST_F(RoutingServiceTest, AuthFailuresAndBadInputs) {
  EXPECT_EQ(Enqueue("", Request("s-1")), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Enqueue("junk", Request("s-1")), grpc::StatusCode::UNAUTHENTICATED);
  testing::TestTokens other_key;
  EXPECT_EQ(Enqueue(other_key.For(Role::kService, "x"), Request("s-1")),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Enqueue(Agent("a1"), Request("s-1")), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Enqueue(tokens_.For(Role::kCustomer, "c"), Request("s-1")),
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
  EXPECT_EQ(stub_->ListQueueEntries(ContextWithToken(Service()).get(), bad_page, &list)
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
  router_->ResetPresence({agent});

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
  {
    absl::MutexLock lock(&sessions_.mu);
    ASSERT_EQ(sessions_.assigned.size(), 1u);
    EXPECT_EQ(sessions_.assigned[0], "s-7/a1");
  }
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_EQ(message.offer_closed().outcome(), v1::OFFER_OUTCOME_ACCEPTED);

  server_->server().Shutdown();
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace switchboard::routing
