// A customer's conversation across real servers, as separate processes:
// presence, routing, sessions and the bot. The customer asks the bot for a
// human; routing offers the session to the online agent, who accepts; both
// see each other's messages in order; the agent's presence lapses and the
// session goes back to the head of the queue; a second agent accepts with
// the whole transcript and resolves. Also: a resumed stream misses nothing
// and repeats nothing, a retried message is not duplicated, another customer
// is refused, and with the bot down the customer still reaches a human.
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/token.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard {
namespace {

using sessions::v1::SessionsService;
using sessions::v1::SessionState;

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

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
  JourneyTest()
      : dir_(storage::MakeTempDir()),
        key_(*auth::LoadOrCreateKey(dir_ + "/token.key", true)),
        codec_(key_) {
    const int presence_port = FreePort(), routing_port = FreePort(),
              sessions_port = FreePort(), bot_port = FreePort();
    const auto flags = [&](int port, std::vector<std::string> more) {
      more.insert(more.end(), {"--data_dir=" + dir_, absl::StrCat("--port=", port),
                               "--metrics_port=0", "--bind_address=127.0.0.1",
                               "--drain_deadline=3s"});
      return more;
    };
    const std::string srcdir = std::getenv("TEST_SRCDIR");
    bot_ = std::make_unique<testing::ServerProcess>(
        "services/bot/bot_server",
        flags(bot_port, {"--knowledge_base=" + srcdir +
                         "/switchboard/services/bot/kb/intents.kb"}),
        dir_ + "/bot.log");
    presence_ = std::make_unique<testing::ServerProcess>(
        "services/presence/presence_server",
        flags(presence_port, {"--lease=3s", "--sweep_interval=200ms"}), dir_ + "/presence.log");
    routing_ = std::make_unique<testing::ServerProcess>(
        "services/routing/routing_server",
        flags(routing_port,
              {absl::StrCat("--presence_address=127.0.0.1:", presence_port),
               absl::StrCat("--sessions_address=127.0.0.1:", sessions_port),
               "--offer_timeout=20s", "--dispatch_interval=100ms"}),
        dir_ + "/routing.log");
    sessions_ = std::make_unique<testing::ServerProcess>(
        "services/sessions/sessions_server",
        flags(sessions_port, {absl::StrCat("--bot_address=127.0.0.1:", bot_port),
                              absl::StrCat("--routing_address=127.0.0.1:", routing_port),
                              "--routing_retry_interval=200ms", "--sweep_interval=200ms"}),
        dir_ + "/sessions.log");
    for (auto* server : {bot_.get(), presence_.get(), routing_.get(), sessions_.get()}) {
      EXPECT_GT(server->grpc_port(), 0) << server->log();
    }
    sessions_stub_ = SessionsService::NewStub(Channel(sessions_port));
    routing_stub_ = routing::v1::RoutingService::NewStub(Channel(routing_port));
    presence_stub_ = presence::v1::PresenceService::NewStub(Channel(presence_port));
  }

  ~JourneyTest() override {
    // Every process drains and exits 0 on SIGTERM.
    for (auto* server : {sessions_.get(), routing_.get(), presence_.get(), bot_.get()}) {
      EXPECT_EQ(server->Terminate(absl::Seconds(10)), 0) << server->log();
    }
  }

  static std::shared_ptr<grpc::Channel> Channel(int port) {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                               grpc::InsecureChannelCredentials());
  }

  std::string Token(auth::Role role, const std::string& subject) {
    return *auth::MintAccessToken(codec_, {subject, role, absl::Now() + absl::Hours(1)},
                                  absl::Now());
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  void GoOnline(const std::string& agent) {
    presence::v1::SetStatusRequest request;
    request.set_status(presence::v1::AGENT_STATUS_ONLINE);
    presence::v1::AgentProfile* profile = request.mutable_profile();
    profile->set_display_name(agent);
    profile->mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
    profile->mutable_skills()->add_languages("en");
    presence::v1::ChannelCapacity* chat = profile->add_capacities();
    chat->set_channel(common::v1::CHANNEL_CHAT);
    chat->set_capacity(2);
    presence::v1::SetStatusResponse response;
    ASSERT_TRUE(
        presence_stub_->SetStatus(Context(Token(auth::Role::kAgent, agent)).get(), request, &response)
            .ok());
  }

  // Keeps an agent's presence lease alive until stopped.
  std::thread KeepAlive(const std::string& agent, std::atomic<bool>& stop) {
    return std::thread([this, agent, &stop] {
      while (!stop) {
        presence::v1::HeartbeatResponse response;
        presence_stub_->Heartbeat(Context(Token(auth::Role::kAgent, agent)).get(), {}, &response);
        absl::SleepFor(absl::Milliseconds(500));
      }
    });
  }

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

  std::string dir_;
  std::string key_;
  auth::TokenCodec codec_;
  std::unique_ptr<testing::ServerProcess> bot_, presence_, routing_, sessions_;
  std::unique_ptr<SessionsService::Stub> sessions_stub_;
  std::unique_ptr<routing::v1::RoutingService::Stub> routing_stub_;
  std::unique_ptr<presence::v1::PresenceService::Stub> presence_stub_;
};

TEST_F(JourneyTest, FromBotToAgentThroughALapseToASecondAgentAndResolution) {
  const std::string customer = Token(auth::Role::kCustomer, "cust-1");
  const std::string ana = Token(auth::Role::kAgent, "ana");
  const std::string ben = Token(auth::Role::kAgent, "ben");

  std::atomic<bool> ana_gone{false};
  auto ana_offers = WatchOffers("ana");
  GoOnline("ana");
  std::thread ana_heartbeats = KeepAlive("ana", ana_gone);

  // The customer asks the bot for a human: the session is queued and offered.
  const std::string session =
      CreateChat("cust-1", "My USDT deposit has not arrived, I want to talk to a human agent");
  ASSERT_FALSE(session.empty());
  auto customer_stream = WatchSession(customer, session);
  AcceptOfferFor(*ana_offers, "ana", session);
  ASSERT_TRUE(ReachesState(session, sessions::v1::SESSION_STATE_ASSIGNED)) << sessions_->log();
  const sessions::v1::Session assigned = GetSession(ana, session);
  EXPECT_EQ(assigned.assigned_agent_id(), "ana");
  // The hand-off carries the bot's context: why, what about, in which language.
  EXPECT_EQ(assigned.handoff().reason(), common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
  EXPECT_EQ(assigned.handoff().category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(assigned.handoff().language(), "en");
  EXPECT_FALSE(assigned.handoff().transcript_excerpt().empty());

  // Messages both ways arrive on both streams, in order.
  auto ana_stream = WatchSession(ana, session);
  Send(customer, session, "c-1", "I sent 100 USDT on TRC20 an hour ago");
  Send(ana, session, "a-1", "Checking the transaction now");
  const auto first = Send(customer, session, "c-2", "Here is the txid: abc123");
  // A retry of the same message returns the first result: no duplicate.
  const auto retried = Send(customer, session, "c-2", "Here is the txid: abc123");
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
  peek.set_session_id(session);
  sessions::v1::GetSessionResponse peeked;
  EXPECT_EQ(sessions_stub_
                ->GetSession(Context(Token(auth::Role::kCustomer, "cust-2")).get(), peek, &peeked)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Ana's devices stop renewing her lease: the session goes back to the queue.
  ana_gone = true;
  ana_heartbeats.join();
  ASSERT_TRUE(ReachesState(session, sessions::v1::SESSION_STATE_QUEUED))
      << routing_->log() << presence_->log();
  routing::v1::GetQueueEntryRequest entry_request;
  entry_request.set_session_id(session);
  routing::v1::GetQueueEntryResponse entry;
  ASSERT_TRUE(routing_stub_
                  ->GetQueueEntry(Context(Token(auth::Role::kSupervisor, "sup")).get(),
                                  entry_request, &entry)
                  .ok());
  EXPECT_EQ(entry.entry().position(), 1) << "a re-queued session goes to the head";

  // Ben comes online, is offered the session, and sees the whole transcript.
  auto ben_offers = WatchOffers("ben");
  std::atomic<bool> ben_gone{false};
  GoOnline("ben");
  std::thread ben_heartbeats = KeepAlive("ben", ben_gone);
  AcceptOfferFor(*ben_offers, "ben", session);
  ASSERT_TRUE(ReachesState(session, sessions::v1::SESSION_STATE_ASSIGNED));
  EXPECT_EQ(GetSession(ben, session).assigned_agent_id(), "ben");
  sessions::v1::ListMessagesRequest list;
  list.set_session_id(session);
  list.set_page_size(100);
  sessions::v1::ListMessagesResponse transcript;
  ASSERT_TRUE(sessions_stub_->ListMessages(Context(ben).get(), list, &transcript).ok());
  std::vector<std::string> texts;
  for (const auto& message : transcript.messages()) texts.push_back(message.text());
  for (const std::string& line : conversation) {
    EXPECT_NE(std::find(texts.begin(), texts.end(), line), texts.end()) << line;
  }

  Send(ben, session, "b-1", "Your deposit is credited now");
  sessions::v1::ResolveSessionRequest resolve;
  resolve.set_session_id(session);
  resolve.set_resolution_summary("deposit credited after confirmations");
  sessions::v1::ResolveSessionResponse resolved;
  ASSERT_TRUE(sessions_stub_->ResolveSession(Context(ben).get(), resolve, &resolved).ok());
  ASSERT_TRUE(ReachesState(session, sessions::v1::SESSION_STATE_RESOLVED));

  // A stream resumed from the middle misses nothing and repeats nothing.
  const int64_t resume_after = first.message().sequence() - 1;
  auto resumed = WatchSession(customer, session, resume_after);
  const int64_t last = GetSession(customer, session).last_sequence();
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

  ben_gone = true;
  ben_heartbeats.join();
}

TEST_F(JourneyTest, WithTheBotDownTheCustomerStillReachesAHuman) {
  ASSERT_EQ(bot_->Terminate(absl::Seconds(10)), 0);
  auto offers = WatchOffers("cara");
  std::atomic<bool> gone{false};
  GoOnline("cara");
  std::thread heartbeats = KeepAlive("cara", gone);
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
  gone = true;
  heartbeats.join();
  // Restart the bot so the fixture's clean shutdown check holds.
  bot_ = std::make_unique<testing::ServerProcess>(
      "services/bot/bot_server",
      std::vector<std::string>{"--data_dir=" + dir_, "--port=0", "--metrics_port=0",
                               "--bind_address=127.0.0.1",
                               "--knowledge_base=" + std::string(std::getenv("TEST_SRCDIR")) +
                                   "/switchboard/services/bot/kb/intents.kb"},
      dir_ + "/bot2.log");
}

}  // namespace
}  // namespace switchboard
