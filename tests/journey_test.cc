// A customer's conversation across real servers, as separate processes:
// presence, routing, sessions and the bot. The customer asks the bot for a
// human; routing offers the session to the online agent, who accepts; both
// see each other's messages in order; the agent's presence lapses and the
// session goes back to the head of the queue; a second agent accepts with
// the whole transcript and resolves. Also: a resumed stream misses nothing
// and repeats nothing, a retried message is not duplicated, another customer
// is refused, and with the bot down the customer still reaches a human.
// Variants: over Kafka through a broker outage, and over mTLS everywhere.
#include <grpcpp/grpcpp.h>
#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/client/tls.h"
#include "libs/events/kafka_topics.h"
#include "libs/metrics/scrape.h"
#include "libs/protoutil/time.h"
#include "libs/testing/kafka_broker.h"
#include "switchboard/events/v1/event.pb.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "libs/testing/reserved_port.h"
#include "libs/testing/test_certificates.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard {
namespace {

using sessions::v1::SessionsService;
using sessions::v1::SessionState;

// Waits up to `limit` for `done`, polling.
bool Eventually(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(20)) {
  const absl::Time give_up = absl::Now() + limit;
  while (absl::Now() < give_up) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return done();
}

// Reads a server stream on its own thread and keeps what arrives.
template <typename Response>
class StreamCollector {
 public:
  using Start = std::function<std::unique_ptr<grpc::ClientReader<Response>>(grpc::ClientContext*)>;
  StreamCollector(const std::string& token, Start start) {
    auth::AttachToken(context_, token);
    reader_ = start(&context_);
    thread_ = std::thread([this] {
      Response response;
      while (reader_->Read(&response)) {
        absl::MutexLock lock(&mu_);
        received_.push_back(response);
      }
    });
  }
  ~StreamCollector() {
    context_.TryCancel();
    thread_.join();
  }
  std::vector<Response> received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<Response>> reader_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<Response> received_;
};

using EventStream = StreamCollector<sessions::v1::StreamSessionEventsResponse>;
using OfferStream = StreamCollector<routing::v1::WatchOffersResponse>;

// The message texts on a session stream, in the order they arrived, with a
// check that sequences only grow.
std::vector<std::string> Texts(EventStream& stream) {
  std::vector<std::string> texts;
  int64_t last = 0;
  for (const auto& response : stream.received()) {
    if (!response.has_event()) continue;
    EXPECT_GT(response.event().sequence(), last) << "out of order or repeated";
    last = response.event().sequence();
    if (response.event().has_message()) texts.push_back(response.event().message().text());
  }
  return texts;
}

class JourneyTest : public ::testing::Test {
 protected:
  using FlagsOf = std::function<std::vector<std::string>(const std::string& service)>;

  JourneyTest() : JourneyTest(std::vector<std::string>{}) {}
  // `service_flags` go to every service (e.g. --kafka_brokers), and
  // `flags_of(name)` to the service `name` (e.g. its certificate); the test
  // dials the servers with `security`.
  //
  // Ports: each server listens on port 0 and reports the port it got, and
  // is started after the servers it calls, except routing and sessions,
  // which call each other: routing's port is reserved before sessions
  // starts and held until the test ends.
  explicit JourneyTest(std::vector<std::string> service_flags, FlagsOf flags_of = nullptr,
                       client::ChannelSecurity security = client::ChannelSecurity())
      : dir_(storage::MakeTempDir()),
        // One key folder for the platform, where each server looks first.
        tokens_(testing::TestTokens::InFolder(dir_ + "/keys", "journey")),
        security_(std::move(security)) {
    const auto flags = [&](const std::string& name, int port, std::vector<std::string> more) {
      more.insert(more.end(), service_flags.begin(), service_flags.end());
      if (flags_of != nullptr) {
        const std::vector<std::string> own = flags_of(name);
        more.insert(more.end(), own.begin(), own.end());
      }
      more.insert(more.end(), {"--data_dir=" + dir_, absl::StrCat("--port=", port),
                               "--metrics_port=0", "--bind_address=127.0.0.1",
                               "--drain_deadline=3s"});
      return more;
    };
    const std::string srcdir = std::getenv("TEST_SRCDIR");
    bot_ = std::make_unique<testing::ServerProcess>(
        "services/bot/bot_server",
        flags("bot", 0,
              {"--knowledge_base=" + srcdir + "/switchboard/services/bot/kb/intents.kb"}),
        dir_ + "/bot.log");
    presence_ = std::make_unique<testing::ServerProcess>(
        "services/presence/presence_server",
        flags("presence", 0, {"--lease=3s", "--sweep_interval=200ms"}), dir_ + "/presence.log");
    sessions_ = std::make_unique<testing::ServerProcess>(
        "services/sessions/sessions_server",
        flags("sessions", 0,
              {"--bot_address=" + bot_->address(),
               "--routing_address=" + routing_port_.address(),
               "--routing_retry_interval=200ms", "--sweep_interval=200ms"}),
        dir_ + "/sessions.log");
    routing_ = std::make_unique<testing::ServerProcess>(
        "services/routing/routing_server",
        flags("routing", routing_port_.port(),
              {"--presence_address=" + presence_->address(),
               "--sessions_address=" + sessions_->address(), "--offer_timeout=20s",
               "--dispatch_interval=100ms"}),
        dir_ + "/routing.log");
    for (auto* server : {bot_.get(), presence_.get(), routing_.get(), sessions_.get()}) {
      EXPECT_GT(server->grpc_port(), 0) << server->log();
    }
    sessions_stub_ = SessionsService::NewStub(Channel(sessions_->grpc_port()));
    routing_stub_ = routing::v1::RoutingService::NewStub(Channel(routing_->grpc_port()));
    presence_stub_ = presence::v1::PresenceService::NewStub(Channel(presence_->grpc_port()));
  }

  ~JourneyTest() override {
    // Every process drains and exits 0 on SIGTERM.
    for (auto* server : {sessions_.get(), routing_.get(), presence_.get(), bot_.get()}) {
      EXPECT_EQ(server->Terminate(absl::Seconds(10)), 0) << server->log();
    }
  }

  std::shared_ptr<grpc::Channel> Channel(int port) const {
    return security_.Channel(absl::StrCat("127.0.0.1:", port));
  }

  std::string Token(auth::Role role, const std::string& subject) {
    return tokens_.For(role, subject);
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  // A supervisor sets the agent up, then the agent goes online.
  void GoOnline(const std::string& agent) {
    presence::v1::SetAgentProfileRequest grant;
    grant.set_agent_id(agent);
    presence::v1::AgentProfile* profile = grant.mutable_profile();
    profile->set_display_name(agent);
    profile->mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
    profile->mutable_skills()->add_languages("en");
    presence::v1::ChannelCapacity* chat = profile->add_capacities();
    chat->set_channel(common::v1::CHANNEL_CHAT);
    chat->set_capacity(2);
    presence::v1::SetAgentProfileResponse granted;
    ASSERT_TRUE(presence_stub_
                    ->SetAgentProfile(Context(Token(auth::Role::kSupervisor, "sup-1")).get(),
                                      grant, &granted)
                    .ok());
    presence::v1::SetStatusRequest request;
    request.set_status(presence::v1::AGENT_STATUS_ONLINE);
    presence::v1::SetStatusResponse response;
    ASSERT_TRUE(
        presence_stub_->SetStatus(Context(Token(auth::Role::kAgent, agent)).get(), request, &response)
            .ok());
  }

  // Keeps an agent's presence lease (3 s) alive while it exists, as a device
  // does: a heartbeat every 500 ms, and a failed one retried at once, since
  // a few lost heartbeats in a row would let the lease lapse and move the
  // agent's sessions for no reason the test meant. If heartbeats failed
  // for a whole lease anyway, the test fails with their errors rather than
  // with a puzzling re-queue.
  class Heartbeats {
   public:
    Heartbeats(JourneyTest* test, std::string agent)
        : agent_(std::move(agent)), thread_([this, test] {
            absl::Time last_ok = absl::Now();
            absl::Duration wait = absl::ZeroDuration();
            while (!stop_.WaitForNotificationWithTimeout(wait)) {
              presence::v1::HeartbeatResponse response;
              auto context = test->Context(test->Token(auth::Role::kAgent, agent_));
              context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
              const grpc::Status status =
                  test->presence_stub_->Heartbeat(context.get(), {}, &response);
              if (status.ok()) {
                last_ok = absl::Now();
                wait = absl::Milliseconds(500);
                continue;
              }
              absl::MutexLock lock(&mu_);
              errors_.push_back(absl::StrCat(status.error_code(), " ", status.error_message()));
              lapsed_ |= absl::Now() - last_ok >= absl::Seconds(3) ||
                         status.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
              wait = absl::Milliseconds(50);
            }
          }) {}
    ~Heartbeats() {
      stop_.Notify();
      thread_.join();
      absl::MutexLock lock(&mu_);
      EXPECT_FALSE(lapsed_) << agent_ << "'s lease lapsed because heartbeats failed: "
                            << absl::StrJoin(errors_, "; ");
    }

   private:
    const std::string agent_;
    absl::Notification stop_;
    absl::Mutex mu_;
    std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
    bool lapsed_ ABSL_GUARDED_BY(mu_) = false;
    std::thread thread_;
  };

  std::unique_ptr<OfferStream> WatchOffers(const std::string& agent) {
    return std::make_unique<OfferStream>(Token(auth::Role::kAgent, agent),
                                         [this](grpc::ClientContext* context) {
                                           return routing_stub_->WatchOffers(context, {});
                                         });
  }

  std::unique_ptr<EventStream> WatchSession(const std::string& token, const std::string& session,
                                            int64_t after = 0) {
    return std::make_unique<EventStream>(token, [this, session, after](grpc::ClientContext* c) {
      sessions::v1::StreamSessionEventsRequest request;
      request.set_session_id(session);
      request.set_after_sequence(after);
      return sessions_stub_->StreamSessionEvents(c, request);
    });
  }

  // Waits for an open offer of `session` on `offers` and accepts it.
  void AcceptOfferFor(OfferStream& offers, const std::string& agent, const std::string& session) {
    std::string offer_id;
    ASSERT_TRUE(Eventually([&] {
      for (const auto& response : offers.received()) {
        if (response.has_offer() && response.offer().entry().session_id() == session) {
          offer_id = response.offer().offer_id();
        }
      }
      return !offer_id.empty();
    })) << routing_->log();
    routing::v1::AcceptOfferRequest accept;
    accept.set_offer_id(offer_id);
    routing::v1::AcceptOfferResponse accepted;
    grpc::Status status = routing_stub_->AcceptOffer(
        Context(Token(auth::Role::kAgent, agent)).get(), accept, &accepted);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  sessions::v1::Session GetSession(const std::string& token, const std::string& session) {
    sessions::v1::GetSessionRequest request;
    request.set_session_id(session);
    sessions::v1::GetSessionResponse response;
    EXPECT_TRUE(sessions_stub_->GetSession(Context(token).get(), request, &response).ok());
    return response.session();
  }

  bool ReachesState(const std::string& session, SessionState state) {
    const std::string supervisor = Token(auth::Role::kSupervisor, "sup");
    return Eventually([&] { return GetSession(supervisor, session).state() == state; });
  }

  sessions::v1::SendMessageResponse Send(const std::string& token, const std::string& session,
                                         const std::string& client_id, const std::string& text) {
    sessions::v1::SendMessageRequest request;
    request.set_session_id(session);
    request.set_client_message_id(client_id);
    request.mutable_message()->set_text(text);
    sessions::v1::SendMessageResponse response;
    grpc::Status status = sessions_stub_->SendMessage(Context(token).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::string CreateChat(const std::string& customer, const std::string& text) {
    sessions::v1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_CHAT);
    request.set_category(common::v1::CATEGORY_DEPOSIT);
    request.set_language("en");
    request.set_request_id(absl::StrCat("create-", customer, "-", absl::ToUnixNanos(absl::Now())));
    request.mutable_first_message()->set_text(text);
    sessions::v1::CreateSessionResponse response;
    grpc::Status status = sessions_stub_->CreateSession(
        Context(Token(auth::Role::kCustomer, customer)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.session().session_id();
  }

  void PlayJourney(const std::function<void()>& after_queued, std::string* session);

  std::string dir_;
  testing::TestTokens tokens_;
  const client::ChannelSecurity security_;
  testing::ReservedPort routing_port_;
  std::unique_ptr<testing::ServerProcess> bot_, presence_, routing_, sessions_;
  std::unique_ptr<SessionsService::Stub> sessions_stub_;
  std::unique_ptr<routing::v1::RoutingService::Stub> routing_stub_;
  std::unique_ptr<presence::v1::PresenceService::Stub> presence_stub_;
};

// Plays the whole journey; `*session` gets the session id. `after_queued`
// runs once the session exists (the Kafka variant stops the broker there).
void JourneyTest::PlayJourney(const std::function<void()>& after_queued, std::string* session) {
  const std::string customer = Token(auth::Role::kCustomer, "cust-1");
  const std::string ana = Token(auth::Role::kAgent, "ana");
  const std::string ben = Token(auth::Role::kAgent, "ben");

  auto ana_offers = WatchOffers("ana");
  GoOnline("ana");
  auto ana_heartbeats = std::make_unique<Heartbeats>(this, "ana");

  // The customer asks the bot for a human: the session is queued and offered.
  *session = CreateChat("cust-1", "My USDT deposit has not arrived, I want to talk to a human agent");
  ASSERT_FALSE(session->empty());
  const std::string& id = *session;
  after_queued();
  auto customer_stream = WatchSession(customer, id);
  AcceptOfferFor(*ana_offers, "ana", id);
  ASSERT_TRUE(ReachesState(id, sessions::v1::SESSION_STATE_ASSIGNED)) << sessions_->log();
  const sessions::v1::Session assigned = GetSession(ana, id);
  EXPECT_EQ(assigned.assigned_agent_id(), "ana");
  // The hand-off carries the bot's context: why, what about, in which language.
  EXPECT_EQ(assigned.handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
  EXPECT_EQ(assigned.handoff().category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(assigned.handoff().language(), "en");
  EXPECT_FALSE(assigned.handoff().transcript_excerpt().empty());

  // Messages both ways arrive on both streams, in order.
  auto ana_stream = WatchSession(ana, id);
  Send(customer, id, "c-1", "I sent 100 USDT on TRC20 an hour ago");
  Send(ana, id, "a-1", "Checking the transaction now");
  const auto first = Send(customer, id, "c-2", "Here is the txid: abc123");
  // A retry of the same message returns the first result: no duplicate.
  const auto retried = Send(customer, id, "c-2", "Here is the txid: abc123");
  EXPECT_TRUE(retried.replayed());
  EXPECT_EQ(retried.message().sequence(), first.message().sequence());
  const std::vector<std::string> conversation = {"I sent 100 USDT on TRC20 an hour ago",
                                                 "Checking the transaction now",
                                                 "Here is the txid: abc123"};
  const auto ends_with_conversation = [&](EventStream& stream) {
    std::vector<std::string> texts = Texts(stream);
    return texts.size() >= conversation.size() &&
           std::equal(conversation.begin(), conversation.end(),
                      texts.end() - conversation.size());
  };
  EXPECT_TRUE(Eventually([&] { return ends_with_conversation(*customer_stream); }));
  EXPECT_TRUE(Eventually([&] { return ends_with_conversation(*ana_stream); }));

  // Another customer gets the same answer as for a session that does not exist.
  sessions::v1::GetSessionRequest peek;
  peek.set_session_id(id);
  sessions::v1::GetSessionResponse peeked;
  EXPECT_EQ(sessions_stub_
                ->GetSession(Context(Token(auth::Role::kCustomer, "cust-2")).get(), peek, &peeked)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Ana's devices stop renewing her lease: the session goes back to the queue.
  ana_heartbeats.reset();
  ASSERT_TRUE(ReachesState(id, sessions::v1::SESSION_STATE_QUEUED))
      << routing_->log() << presence_->log();
  routing::v1::GetQueueEntryRequest entry_request;
  entry_request.set_session_id(id);
  routing::v1::GetQueueEntryResponse entry;
  ASSERT_TRUE(routing_stub_
                  ->GetQueueEntry(Context(Token(auth::Role::kSupervisor, "sup")).get(),
                                  entry_request, &entry)
                  .ok());
  EXPECT_EQ(entry.entry().position(), 1) << "a re-queued session goes to the head";

  // Ben comes online, is offered the session, and sees the whole transcript.
  auto ben_offers = WatchOffers("ben");
  GoOnline("ben");
  Heartbeats ben_heartbeats(this, "ben");
  AcceptOfferFor(*ben_offers, "ben", id);
  ASSERT_TRUE(ReachesState(id, sessions::v1::SESSION_STATE_ASSIGNED));
  EXPECT_EQ(GetSession(ben, id).assigned_agent_id(), "ben");
  sessions::v1::ListMessagesRequest list;
  list.set_session_id(id);
  list.set_page_size(100);
  sessions::v1::ListMessagesResponse transcript;
  ASSERT_TRUE(sessions_stub_->ListMessages(Context(ben).get(), list, &transcript).ok());
  std::vector<std::string> texts;
  for (const auto& message : transcript.messages()) texts.push_back(message.text());
  for (const std::string& line : conversation) {
    EXPECT_NE(std::find(texts.begin(), texts.end(), line), texts.end()) << line;
  }

  Send(ben, id, "b-1", "Your deposit is credited now");
  sessions::v1::ResolveSessionRequest resolve;
  resolve.set_session_id(id);
  resolve.set_resolution_summary("deposit credited after confirmations");
  sessions::v1::ResolveSessionResponse resolved;
  ASSERT_TRUE(sessions_stub_->ResolveSession(Context(ben).get(), resolve, &resolved).ok());
  ASSERT_TRUE(ReachesState(id, sessions::v1::SESSION_STATE_RESOLVED));

  // A stream resumed from the middle misses nothing and repeats nothing.
  const int64_t resume_after = first.message().sequence() - 1;
  auto resumed = WatchSession(customer, id, resume_after);
  const int64_t last = GetSession(customer, id).last_sequence();
  ASSERT_TRUE(Eventually([&] {
    int64_t seen = 0;
    for (const auto& response : resumed->received()) {
      if (response.has_event()) seen = response.event().sequence();
    }
    return seen == last;
  }));
  int64_t expected = resume_after + 1;
  for (const auto& response : resumed->received()) {
    if (!response.has_event()) continue;
    EXPECT_EQ(response.event().sequence(), expected);
    ++expected;
  }
  EXPECT_EQ(expected, last + 1);
}

TEST_F(JourneyTest, FromBotToAgentThroughALapseToASecondAgentAndResolution) {
  std::string session;
  PlayJourney([] {}, &session);
}

TEST_F(JourneyTest, WithTheBotDownTheCustomerStillReachesAHuman) {
  ASSERT_EQ(bot_->Terminate(absl::Seconds(10)), 0);
  auto offers = WatchOffers("cara");
  GoOnline("cara");
  Heartbeats heartbeats(this, "cara");
  const std::string session = CreateChat("cust-3", "How long do deposits take to arrive?");
  ASSERT_FALSE(session.empty());
  AcceptOfferFor(*offers, "cara", session);
  ASSERT_TRUE(ReachesState(session, sessions::v1::SESSION_STATE_ASSIGNED));
  EXPECT_EQ(GetSession(Token(auth::Role::kAgent, "cara"), session).handoff().reason(),
            common::v1::ESCALATION_REASON_BOT_UNAVAILABLE);
  // The customer's message was kept.
  sessions::v1::ListMessagesRequest list;
  list.set_session_id(session);
  sessions::v1::ListMessagesResponse messages;
  ASSERT_TRUE(sessions_stub_
                  ->ListMessages(Context(Token(auth::Role::kAgent, "cara")).get(), list, &messages)
                  .ok());
  ASSERT_GE(messages.messages_size(), 1);
  EXPECT_EQ(messages.messages(0).text(), "How long do deposits take to arrive?");
  // Restart the bot so the fixture's clean shutdown check holds.
  bot_ = std::make_unique<testing::ServerProcess>(
      "services/bot/bot_server",
      std::vector<std::string>{"--data_dir=" + dir_, "--port=0", "--metrics_port=0",
                               "--bind_address=127.0.0.1",
                               "--knowledge_base=" + std::string(std::getenv("TEST_SRCDIR")) +
                                   "/switchboard/services/bot/kb/intents.kb"},
      dir_ + "/bot2.log");
}

// The certificates are a base class so that they exist before the services
// start: a CA, one certificate per service, one for the test's clients.
struct CertificatesFirst {
  testing::TestCertificates pki{{"bot", "presence", "sessions", "routing", "client"}};
};

// Every service serves mTLS with its own certificate and requires one of
// the CA from every client; sessions and routing present theirs to the
// peers they call; the test's own calls present the "client" certificate.
class MtlsJourneyTest : public CertificatesFirst, public JourneyTest {
 protected:
  MtlsJourneyTest() : JourneyTest({}, ServiceFlags(pki), ClientSecurity(pki, "client")) {}

  static FlagsOf ServiceFlags(const testing::TestCertificates& pki) {
    return [&pki](const std::string& name) {
      std::vector<std::string> flags = {
          "--tls_cert_file=" + pki.cert(name), "--tls_key_file=" + pki.key(name),
          "--tls_client_ca_file=" + pki.ca(), "--tls_require_client_cert"};
      if (name == "sessions" || name == "routing") {
        flags.insert(flags.end(), {"--peer_tls_ca_file=" + pki.ca(),
                                   "--peer_tls_cert_file=" + pki.cert(name),
                                   "--peer_tls_key_file=" + pki.key(name)});
      }
      return flags;
    };
  }

  // TLS trusting `pki`'s CA, presenting its certificate `name` unless empty.
  static client::ChannelSecurity ClientSecurity(const testing::TestCertificates& pki,
                                                const std::string& name) {
    client::ClientTlsOptions options;
    options.ca_file = pki.ca();
    if (!name.empty()) {
      options.cert_file = pki.cert(name);
      options.key_file = pki.key(name);
    }
    absl::StatusOr<client::ChannelSecurity> security =
        client::ChannelSecurity::Create(options, "");
    EXPECT_TRUE(security.ok()) << security.status();
    return security.value_or(client::ChannelSecurity());
  }

  // A health check of `server` over a new channel secured by `security`.
  static grpc::Status Check(const testing::ServerProcess& server,
                            const client::ChannelSecurity& security) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = grpc::health::v1::Health::NewStub(security.Channel(server.address(), args));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::health::v1::HealthCheckResponse response;
    return stub->Check(&context, {}, &response);
  }
};

TEST_F(MtlsJourneyTest, CustomerAndAgentTalkWithEveryCallOverMutualTls) {
  const std::string customer = Token(auth::Role::kCustomer, "cust-9");
  const std::string ana = Token(auth::Role::kAgent, "ana");
  auto offers = WatchOffers("ana");
  GoOnline("ana");
  Heartbeats heartbeats(this, "ana");

  // sessions asks the bot (mTLS), the bot hands over, sessions enqueues
  // with routing (mTLS), routing reserves ana's capacity with presence
  // (mTLS) and offers; on acceptance routing assigns through sessions (mTLS).
  const std::string id =
      CreateChat("cust-9", "My USDT deposit has not arrived, I want to talk to a human agent");
  ASSERT_FALSE(id.empty());
  auto customer_stream = WatchSession(customer, id);
  AcceptOfferFor(*offers, "ana", id);
  ASSERT_TRUE(ReachesState(id, sessions::v1::SESSION_STATE_ASSIGNED)) << sessions_->log();
  const sessions::v1::Session assigned = GetSession(ana, id);
  EXPECT_EQ(assigned.assigned_agent_id(), "ana");
  // The bot answered (over mTLS) rather than being skipped as unreachable.
  EXPECT_EQ(assigned.handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED)
      << sessions_->log();

  auto ana_stream = WatchSession(ana, id);
  Send(customer, id, "c-1", "I sent 100 USDT on TRC20 an hour ago");
  Send(ana, id, "a-1", "Checking the transaction now");
  Send(customer, id, "c-2", "Here is the txid: abc123");
  const std::vector<std::string> conversation = {"I sent 100 USDT on TRC20 an hour ago",
                                                 "Checking the transaction now",
                                                 "Here is the txid: abc123"};
  const auto ends_with_conversation = [&](EventStream& stream) {
    std::vector<std::string> texts = Texts(stream);
    return texts.size() >= conversation.size() &&
           std::equal(conversation.begin(), conversation.end(),
                      texts.end() - conversation.size());
  };
  EXPECT_TRUE(Eventually([&] { return ends_with_conversation(*customer_stream); }));
  EXPECT_TRUE(Eventually([&] { return ends_with_conversation(*ana_stream); }));

  // Every server: the test's certificate passes; plaintext, no certificate,
  // a certificate of another CA and trust in another CA do not.
  testing::TestCertificates other({"client"});
  for (const auto* server : {bot_.get(), presence_.get(), routing_.get(), sessions_.get()}) {
    EXPECT_TRUE(Check(*server, security_).ok()) << server->address();
    EXPECT_EQ(Check(*server, client::ChannelSecurity()).error_code(),
              grpc::StatusCode::UNAVAILABLE)
        << server->address();
    EXPECT_EQ(Check(*server, ClientSecurity(pki, "")).error_code(), grpc::StatusCode::UNAVAILABLE)
        << server->address();
    client::ClientTlsOptions foreign_certificate;
    foreign_certificate.ca_file = pki.ca();
    foreign_certificate.cert_file = other.cert("client");
    foreign_certificate.key_file = other.key("client");
    EXPECT_EQ(
        Check(*server, *client::ChannelSecurity::Create(foreign_certificate, "")).error_code(),
        grpc::StatusCode::UNAVAILABLE)
        << server->address();
    client::ClientTlsOptions foreign_ca;
    foreign_ca.ca_file = other.ca();
    foreign_ca.cert_file = pki.cert("client");
    foreign_ca.key_file = pki.key("client");
    EXPECT_EQ(Check(*server, *client::ChannelSecurity::Create(foreign_ca, "")).error_code(),
              grpc::StatusCode::UNAVAILABLE)
        << server->address();
    EXPECT_NE(server->log().find("\"transport\":\"mtls\""), std::string::npos) << server->log();
  }
}

// The broker is a base class so that it starts before the services.
struct BrokerFirst {
  BrokerFirst() {
    auto specs = events::ParseTopicSpecs(testing::ReadFile(
        std::string(std::getenv("TEST_SRCDIR")) + "/switchboard/deploy/kafka/topics.conf"));
    EXPECT_TRUE(specs.ok()) << specs.status();
    events::OverrideReplication(*specs, 1);
    auto created = events::CreateTopics(broker.address(), {}, *specs, absl::Seconds(20));
    EXPECT_TRUE(created.ok()) << created.status();
  }
  testing::KafkaBroker broker;
};

class KafkaJourneyTest : public BrokerFirst, public JourneyTest {
 protected:
  KafkaJourneyTest()
      : JourneyTest({"--kafka_brokers=" + broker.address(), "--kafka_delivery_timeout=5s"}) {}
};

struct Record {
  std::string topic;
  std::string key;
  events::v1::Event event;
  int32_t partition = 0;
  int64_t offset = 0;
};

// Reads `topics` from the start until nothing new arrives for `quiet` after
// the first record (joining a new consumer group takes seconds, more on a
// loaded machine or a broker just restarted, so silence before the first
// record is not the end).
std::vector<Record> ReadTopics(const std::string& brokers, const std::vector<std::string>& topics,
                               absl::Duration quiet) {
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", brokers, error);
  conf->set("group.id", absl::StrCat("journey-", absl::ToUnixNanos(absl::Now())), error);
  conf->set("auto.offset.reset", "earliest", error);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), error));
  consumer->subscribe(topics);
  std::vector<Record> records;
  absl::Time last = absl::Now();
  const absl::Time give_up = absl::Now() + absl::Seconds(90);
  while ((records.empty() || absl::Now() - last < quiet) && absl::Now() < give_up) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(200));
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    Record record{message->topic_name(), message->key() ? *message->key() : ""};
    EXPECT_TRUE(record.event.ParseFromArray(message->payload(), message->len()));
    record.partition = message->partition();
    record.offset = message->offset();
    records.push_back(std::move(record));
    last = absl::Now();
  }
  consumer->close();
  return records;
}

TEST_F(KafkaJourneyTest, EveryStateChangeReachesKafkaOnceAndInOrderThroughAnOutage) {
  // The broker goes down once the session exists; the journey goes on (no
  // RPC may fail because of Kafka) and the broker returns at the end.
  std::string session;
  PlayJourney([this] { broker.Stop(); }, &session);
  broker.Start();
  for (auto* server : {sessions_.get(), routing_.get(), presence_.get(), bot_.get()}) {
    EXPECT_TRUE(Eventually(
        [&] {
          return metrics::ScrapeMetrics("127.0.0.1", server->metrics_port())
                         .value_or("")
                         .find("switchboard_outbox_depth 0\n") != std::string::npos;
        },
        absl::Seconds(90)))
        << server->log();
  }
  std::vector<Record> records = ReadTopics(
      broker.address(),
      {"switchboard.sessions.v1", "switchboard.routing.v1", "switchboard.presence.v1",
       "switchboard.bot.v1"},
      absl::Seconds(5));

  // At least once: drop duplicates by event id (and count them), keeping
  // each event's first arrival.
  std::set<std::string> seen;
  int duplicates = 0;
  std::map<std::pair<std::string, std::string>, std::vector<events::v1::Event>> by_key;
  std::map<std::pair<std::string, std::string>, std::vector<const Record*>> arrivals;
  for (const Record& record : records) {
    EXPECT_EQ(record.key, record.event.entity_id());
    arrivals[{record.topic, record.key}].push_back(&record);
    if (!seen.insert(record.event.event_id()).second) {
      ++duplicates;
      continue;
    }
    by_key[{record.topic, record.key}].push_back(record.event);
  }
  std::printf("kafka journey: %zu records, %d duplicates, %zu keys\n", records.size(),
              duplicates, by_key.size());

  // Per key, one partition read in offset order, and times that never go
  // back. Equal times (events of one transaction) say nothing about order:
  // the real order is checked below through what the events carry (message
  // sequence numbers, the session's state machine, offer ids).
  for (const auto& [key, arrived] : arrivals) {
    for (size_t i = 1; i < arrived.size(); ++i) {
      EXPECT_EQ(arrived[i]->partition, arrived[0]->partition) << key.first << " " << key.second;
      EXPECT_GT(arrived[i]->offset, arrived[i - 1]->offset) << key.first << " " << key.second;
    }
  }
  for (const auto& [key, events] : by_key) {
    for (size_t i = 1; i < events.size(); ++i) {
      EXPECT_LE(protoutil::FromTimestamp(events[i - 1].occurred_at()),
                protoutil::FromTimestamp(events[i].occurred_at()))
          << key.first << " " << key.second << " " << events[i].type();
    }
  }

  // Every state change of the session, once, in order; every message once,
  // in sequence order. Messages are told apart by writer and length (the
  // text is not in the event); sessions' own SYSTEM notices are not counted.
  std::vector<std::string> states;
  int64_t last_sequence = 0;
  std::vector<std::string> messages;
  for (const events::v1::Event& event : by_key[{"switchboard.sessions.v1", session}]) {
    if (event.has_message_sent()) {
      const events::v1::MessageSent& sent = event.message_sent();
      EXPECT_GT(sent.sequence(), last_sequence) << "out of order";
      last_sequence = sent.sequence();
      if (sent.sender_role() == common::v1::SENDER_ROLE_SYSTEM) continue;
      messages.push_back(sent.sender_role() == common::v1::SENDER_ROLE_BOT
                             ? "bot"
                             : absl::StrCat(sent.sender_id(), ":", sent.text_length()));
    } else if (event.type() != "sessions.first_response_recorded") {
      states.push_back(event.type());
    }
  }
  EXPECT_EQ(states, (std::vector<std::string>{
                        "sessions.session_created", "sessions.session_escalated",
                        "sessions.agent_assigned", "sessions.session_requeued",
                        "sessions.agent_assigned", "sessions.session_resolved"}));
  // The first message, the bot's reply, then the four from people in the
  // order they were sent (the retried one once).
  const auto from = [](const std::string& who, const std::string& text) {
    return absl::StrCat(who, ":", text.size());
  };
  EXPECT_EQ(messages,
            (std::vector<std::string>{
                from("cust-1", "My USDT deposit has not arrived, I want to talk to a human agent"),
                "bot", from("cust-1", "I sent 100 USDT on TRC20 an hour ago"),
                from("ana", "Checking the transaction now"),
                from("cust-1", "Here is the txid: abc123"),
                from("ben", "Your deposit is credited now")}));

  // Routing's events of the session follow its protocol: enqueued first,
  // each acceptance after the offer it accepts, the re-queue between the
  // two acceptances.
  std::vector<std::string> routing_types;
  std::set<std::string> offers_made;
  for (const events::v1::Event& event : by_key[{"switchboard.routing.v1", session}]) {
    routing_types.push_back(event.type());
    if (event.has_offer_made()) offers_made.insert(event.offer_made().offer_id());
    if (event.has_offer_accepted()) {
      EXPECT_EQ(offers_made.count(event.offer_accepted().offer_id()), 1u)
          << "an acceptance arrived before its offer";
    }
  }
  ASSERT_FALSE(routing_types.empty());
  EXPECT_EQ(routing_types.front(), "routing.entry_enqueued");
  EXPECT_EQ(std::count(routing_types.begin(), routing_types.end(), "routing.offer_accepted"), 2);
  EXPECT_EQ(std::count(routing_types.begin(), routing_types.end(), "routing.entry_requeued"), 1);
  const auto first_accept =
      std::find(routing_types.begin(), routing_types.end(), "routing.offer_accepted");
  const auto requeue =
      std::find(routing_types.begin(), routing_types.end(), "routing.entry_requeued");
  const auto last_accept =
      std::find(routing_types.rbegin(), routing_types.rend(), "routing.offer_accepted").base() - 1;
  EXPECT_TRUE(first_accept < requeue && requeue < last_accept)
      << absl::StrJoin(routing_types, ", ");

  // Ana went online before her lease lapsed.
  int online_at = -1, lapsed_at = -1, i = 0;
  for (const events::v1::Event& event : by_key[{"switchboard.presence.v1", "ana"}]) {
    if (event.has_agent_status_changed()) {
      const auto& change = event.agent_status_changed();
      if (online_at < 0 && change.status() == presence::v1::AGENT_STATUS_ONLINE) online_at = i;
      if (change.reason() == presence::v1::CHANGE_REASON_LEASE_EXPIRED) lapsed_at = i;
    }
    ++i;
  }
  EXPECT_GE(online_at, 0);
  EXPECT_GT(lapsed_at, online_at);
  const auto bot_key = std::make_pair(std::string("switchboard.bot.v1"), session);
  EXPECT_FALSE(by_key[bot_key].empty());
}

}  // namespace
}  // namespace switchboard
