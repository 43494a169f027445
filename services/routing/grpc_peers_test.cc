#include "services/routing/grpc_peers.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/client/peer.h"
#include "libs/server/server.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/test_tokens.h"
#include "prometheus/registry.h"
#include "services/presence/presence.h"
#include "services/presence/presence_service.h"
#include "services/presence/sqlite_store.h"
#include "services/routing/fake_peers.h"
#include "services/routing/sqlite_store.h"

namespace switchboard::routing {
namespace {

bool Eventually(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(20)) {
  const absl::Time give_up = absl::Now() + limit;
  while (absl::Now() < give_up) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return done();
}

// A real presence server in-process on SQLite, which the test can stop and
// start again on the same port (as a restarted process would come back).
class PresenceServer {
 public:
  PresenceServer(const std::string& db_path, const auth::TokenVerifier* tokens, int port,
                 int max_queued_calls = 64)
      : db_(*storage::Database::OpenMigrated({db_path}, presence::PresenceMigrations())),
        committer_(db_.get()),
        store_(&committer_, "switchboard.presence.v1", nullptr),
        registry_(std::make_shared<prometheus::Registry>()),
        metrics_(*registry_),
        presence_(&store_, RealClock(), &metrics_, presence::PresenceOptions()),
        pool_(2, max_queued_calls),
        service_(&presence_, tokens, RealClock(), &pool_) {
    EXPECT_TRUE(presence_.Load().ok());
    server::ServerOptions options;
    options.service_name = "presence";
    options.bind_address = "127.0.0.1";
    options.port = port;
    options.drain_deadline = absl::Milliseconds(200);
    // The port was this test's a moment ago; allow for the kernel letting it go.
    for (int attempt = 0; attempt < 50 && server_ == nullptr; ++attempt) {
      absl::StatusOr<std::unique_ptr<server::Server>> started =
          server::Server::Start(options, {&service_}, registry_);
      if (started.ok()) {
        server_ = std::move(*started);
      } else {
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
    EXPECT_NE(server_, nullptr);
    if (server_ != nullptr) server_->OnDrain([this] { service_.EndStreams(); });
  }
  ~PresenceServer() {
    if (server_ != nullptr) server_->Shutdown();
    pool_.Stop();
    committer_.Stop();
  }

  int port() const { return server_ != nullptr ? server_->port() : 0; }
  presence::Presence& presence() { return presence_; }

 private:
  std::unique_ptr<storage::Database> db_;
  storage::GroupCommitter committer_;
  presence::SqlitePresenceStore store_;
  std::shared_ptr<prometheus::Registry> registry_;
  presence::PresenceMetrics metrics_;
  presence::Presence presence_;
  server::BlockingPool pool_;
  presence::PresenceService service_;
  std::unique_ptr<server::Server> server_;
};

presence::v1::AgentProfile Profile(int chat_capacity) {
  presence::v1::AgentProfile profile;
  profile.set_display_name("Ana");
  profile.mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
  profile.mutable_skills()->add_languages("en");
  presence::v1::ChannelCapacity* chat = profile.add_capacities();
  chat->set_channel(common::v1::CHANNEL_CHAT);
  chat->set_capacity(chat_capacity);
  return profile;
}

// A supervisor sets `agent`'s profile, then the agent goes online.
absl::Status GoOnline(presence::Presence& presence, const std::string& agent,
                      const presence::v1::AgentProfile& profile, const std::string& device) {
  if (absl::Status s = presence.SetProfile(agent, profile, "sup-1").status(); !s.ok()) return s;
  return presence.SetStatus({agent, presence::v1::AGENT_STATUS_ONLINE, {}, device}).status();
}

class GrpcPeersTest : public ::testing::Test {
 protected:
  GrpcPeersTest()
      : dir_(storage::MakeTempDir()),
        service_token_(&tokens_.service_signer("routing"), "routing", "presence"),
        metrics_(registry_) {
    presence_ = std::make_unique<PresenceServer>(dir_ + "/presence.db", &tokens_.verifier(), 0);
    channel_ = client::PeerChannel(absl::StrCat("127.0.0.1:", presence_->port()));
  }

  int AvailableAgents(Router& router) {
    int available = 0;
    for (const auto& stats : router.Stats({})) available += stats.available_agents();
    return available;
  }

  std::string dir_;
  testing::TestTokens tokens_{"presence"};
  client::ServiceToken service_token_;
  prometheus::Registry registry_;
  RoutingMetrics metrics_;
  std::unique_ptr<PresenceServer> presence_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(GrpcPeersTest, PresenceCallsCarryHoldersAndReconcileOverTheWire) {
  ASSERT_TRUE(GoOnline(presence_->presence(), "ana", Profile(1), "laptop").ok());
  GrpcPresence presence(channel_, &service_token_, absl::Seconds(5));
  const absl::Time deadline = absl::InfiniteFuture();
  ASSERT_TRUE(presence.Reserve("ana", "s-1", common::v1::CHANNEL_CHAT, absl::Minutes(1), 4,
                               deadline)
                  .ok());
  // At capacity is a decision, not a failure to reach presence.
  EXPECT_EQ(presence.Reserve("ana", "s-2", common::v1::CHANNEL_CHAT, absl::Minutes(1), 5,
                             deadline)
                .code(),
            absl::StatusCode::kResourceExhausted);
  // A release for an older holder leaves the capacity alone.
  ASSERT_TRUE(presence.Release("ana", "s-1", 3, deadline).ok());
  EXPECT_EQ(presence_->presence().GetAgent("ana")->profile.capacities(0).load(), 1);

  absl::StatusOr<ReconcileReply> reply = presence.Reconcile(
      10, "", "", {HeldCapacity{"ana", "s-9", common::v1::CHANNEL_CHAT, 9, false}}, deadline);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->released, 1);
  ASSERT_EQ(reply->missing.size(), 1u);
  EXPECT_EQ(reply->missing[0].session_id, "s-9");
  EXPECT_EQ(presence_->presence().GetAgent("ana")->profile.capacities(0).load(), 0);

  // A deadline already past is not worth a call.
  EXPECT_EQ(presence.Confirm("ana", "s-1", absl::Now() - absl::Seconds(1)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(GrpcPeersTest, AnOverloadedPresenceIsUnavailableNotAtCapacity) {
  const int port = presence_->port();
  presence_.reset();
  // No call may wait for a worker: every call is refused with a retry-after.
  presence_ = std::make_unique<PresenceServer>(dir_ + "/presence.db", &tokens_.verifier(), port,
                                               /*max_queued_calls=*/0);
  GrpcPresence presence(channel_, &service_token_, absl::Seconds(5));
  absl::Status refused = presence.Reserve("ana", "s-1", common::v1::CHANNEL_CHAT,
                                          absl::Minutes(1), 1, absl::InfiniteFuture());
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
}

TEST_F(GrpcPeersTest, TheWatcherReconnectsAfterPresenceRestarts) {
  ASSERT_TRUE(GoOnline(presence_->presence(), "ana", Profile(2), "laptop").ok());
  auto db = *storage::Database::OpenMigrated({dir_ + "/routing.db"}, RoutingMigrations());
  storage::GroupCommitter committer(db.get());
  SqliteRoutingStore store(&committer, "switchboard.routing.v1", nullptr);
  FakePresence presence_port;
  FakeSessions sessions;
  Router router(&store, &presence_port, &sessions, RealClock(), &metrics_, RouterOptions());
  ASSERT_TRUE(router.Load().ok());
  PresenceWatcher watcher(channel_, &service_token_, &router, absl::Milliseconds(50),
                          absl::Milliseconds(200));
  watcher.Start();
  ASSERT_TRUE(Eventually([&] { return AvailableAgents(router) == 1; }));
  // The watcher counts a snapshot once the router has applied it, so the
  // count may trail the router by a moment.
  ASSERT_TRUE(Eventually([&] { return watcher.snapshots() >= 1; }));
  EXPECT_EQ(watcher.snapshots(), 1);

  // Presence goes away (its stream ends), and comes back on the same port
  // having lost nothing; meanwhile a second agent came online.
  const int port = presence_->port();
  presence_.reset();
  presence_ = std::make_unique<PresenceServer>(dir_ + "/presence.db", &tokens_.verifier(), port);
  ASSERT_EQ(presence_->port(), port);
  ASSERT_TRUE(GoOnline(presence_->presence(), "bo", Profile(1), "phone").ok());
  ASSERT_TRUE(Eventually([&] { return watcher.snapshots() >= 2; }));
  EXPECT_GE(watcher.connections(), 2);
  ASSERT_TRUE(Eventually([&] { return AvailableAgents(router) == 2; }));

  // Changes after the reconnect arrive as they happen.
  ASSERT_TRUE(presence_->presence()
                  .SetStatus({"ana", presence::v1::AGENT_STATUS_OFFLINE, {}, ""})
                  .ok());
  EXPECT_TRUE(Eventually([&] { return AvailableAgents(router) == 1; }));
  watcher.Stop();
  committer.Stop();
}

}  // namespace
}  // namespace switchboard::routing
