// Crash safety of routing's offer/accept protocol, with real processes
// (presence, routing, sessions) and kill -9:
// (b) routing dies at each named step of the protocol (started with
//     --fault_point, driven to that step, dead by SIGKILL there) and is
//     started again without it;
// (c) presence is killed while offers are open, and started again.
// Afterwards no session is lost, none is assigned twice, nobody is ever
// over capacity, and every agent's load in presence equals the truth: their
// ASSIGNED sessions in sessions plus their open offers in routing.
//
// Processes take port 0 and the test reads their ports from their logs. A
// restarted process comes back on a new port while its peers keep the
// address they were started with, so the test hands out addresses of TCP
// forwarders it holds open itself (routing's and presence's) and points them
// at the current process: no port is picked free and used later.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard {
namespace {

using auth::Role;
namespace pv1 = presence::v1;
namespace rv1 = routing::v1;
namespace sv1 = sessions::v1;

constexpr int kCapacity = 2;
const char* const kAgents[] = {"ana", "ben"};

bool Eventually(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(30)) {
  const absl::Time give_up = absl::Now() + limit;
  while (absl::Now() < give_up) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return done();
}

// Forwards TCP connections arriving on a port the test holds to the port a
// server process listens on now. A connection made while the target is
// down is closed at once, as a refused connection would be.
class Forwarder {
 public:
  Forwarder() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(listener_, 64);
    socklen_t length = sizeof(address);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~Forwarder() {
    stop_ = true;
    shutdown(listener_, SHUT_RDWR);
    acceptor_.join();
    close(listener_);
    std::vector<std::thread> pipes;
    {
      absl::MutexLock lock(&mu_);
      for (int fd : open_) shutdown(fd, SHUT_RDWR);
      pipes.swap(pipes_);
    }
    for (std::thread& pipe : pipes) pipe.join();
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  void set_target(int port) { target_ = port; }
  // Cuts every forwarded connection (their process died).
  void CutAll() {
    absl::MutexLock lock(&mu_);
    for (int fd : open_) shutdown(fd, SHUT_RDWR);
  }

 private:
  void Accept() {
    while (!stop_) {
      const int client = accept(listener_, nullptr, nullptr);
      if (client < 0) continue;
      const int server = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      address.sin_port = htons(target_);
      if (target_ == 0 ||
          connect(server, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        close(server);
        close(client);
        continue;
      }
      absl::MutexLock lock(&mu_);
      open_.insert(client);
      open_.insert(server);
      pipes_.emplace_back([this, client, server] { Pipe(client, server); });
    }
  }

  void Pipe(int a, int b) {
    char buffer[16384];
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    bool open = true;
    while (open && !stop_) {
      if (poll(fds, 2, 200) <= 0) continue;
      for (int i = 0; i < 2 && open; ++i) {
        if (fds[i].revents == 0) continue;
        const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
        if (n <= 0) {
          open = false;
          break;
        }
        for (ssize_t sent = 0; sent < n;) {
          const ssize_t w = send(fds[1 - i].fd, buffer + sent, n - sent, MSG_NOSIGNAL);
          if (w <= 0) {
            open = false;
            break;
          }
          sent += w;
        }
      }
    }
    absl::MutexLock lock(&mu_);
    shutdown(a, SHUT_RDWR);
    shutdown(b, SHUT_RDWR);
    open_.erase(a);
    open_.erase(b);
    close(a);
    close(b);
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> target_{0};
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  absl::Mutex mu_;
  std::set<int> open_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> pipes_ ABSL_GUARDED_BY(mu_);
};

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// The three services as processes, each in its own data folder, sharing
// the key folder.
class CrashTest : public ::testing::Test {
 protected:
  CrashTest()
      : dir_(storage::MakeTempDir()),
        tokens_(testing::TestTokens::InFolder(dir_ + "/keys", "crash")) {}

  // The processes die as they would in a crash: their data folders are
  // the test's own, and draining them would only add seconds.
  ~CrashTest() override {
    stop_desk_ = true;
    if (desk_.joinable()) desk_.join();
  }

  std::vector<std::string> Common(const std::string& name) {
    return {"--data_dir=" + dir_ + "/" + name, "--keys_dir=" + dir_ + "/keys",
            "--port=0",        "--metrics_port=0",
            "--bind_address=127.0.0.1", "--drain_deadline=2s"};
  }

  void StartPresence() {
    std::vector<std::string> flags = Common("presence");
    flags.push_back("--sweep_interval=200ms");
    presence_ = std::make_unique<testing::ServerProcess>("services/presence/presence_server",
                                                         flags, dir_ + "/presence.log");
    ASSERT_GT(presence_->grpc_port(), 0) << presence_->log();
    presence_forwarder_.set_target(presence_->grpc_port());
  }

  void StartSessions() {
    std::vector<std::string> flags = Common("sessions");
    flags.push_back("--routing_address=" + routing_forwarder_.address());
    flags.push_back("--bot_address=");
    flags.push_back("--routing_retry_interval=100ms");
    flags.push_back("--routing_timeout=2s");
    sessions_ = std::make_unique<testing::ServerProcess>("services/sessions/sessions_server",
                                                         flags, dir_ + "/sessions.log");
    ASSERT_GT(sessions_->grpc_port(), 0) << sessions_->log();
    sessions_stub_ = sv1::SessionsService::NewStub(Channel(sessions_->address()));
  }

  void StartRouting(const std::string& fault_point, absl::Duration offer_timeout) {
    std::vector<std::string> flags = Common("routing");
    flags.push_back("--presence_address=" + presence_forwarder_.address());
    flags.push_back("--sessions_address=" + sessions_->address());
    flags.push_back("--dispatch_interval=50ms");
    flags.push_back("--reconcile_interval=1s");
    flags.push_back("--peer_timeout=2s");
    flags.push_back(absl::StrCat("--offer_timeout=", absl::ToInt64Seconds(offer_timeout), "s"));
    if (!fault_point.empty()) flags.push_back("--fault_point=" + fault_point);
    routing_ = std::make_unique<testing::ServerProcess>("services/routing/routing_server", flags,
                                                        dir_ + "/routing.log");
    ASSERT_GT(routing_->grpc_port(), 0) << routing_->log();
    routing_forwarder_.set_target(routing_->grpc_port());
  }

  void StartAll(const std::string& fault_point, absl::Duration offer_timeout) {
    StartPresence();
    StartSessions();
    StartRouting(fault_point, offer_timeout);
    presence_stub_ = pv1::PresenceService::NewStub(Channel(presence_forwarder_.address()));
    routing_stub_ = rv1::RoutingService::NewStub(Channel(routing_forwarder_.address()));
    for (const char* agent : kAgents) GoOnline(agent);
  }

  std::string Token(Role role, const std::string& subject) {
    return tokens_.For(role, subject);
  }

  std::unique_ptr<grpc::ClientContext> Context(Role role, const std::string& subject,
                                               absl::Duration deadline = absl::Seconds(5)) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, Token(role, subject));
    context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    return context;
  }

  // A supervisor sets the agent up, then the agent goes online.
  void GoOnline(const std::string& agent) {
    pv1::SetAgentProfileRequest grant;
    grant.set_agent_id(agent);
    pv1::AgentProfile* profile = grant.mutable_profile();
    profile->set_display_name(agent);
    profile->mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
    profile->mutable_skills()->add_languages("en");
    pv1::ChannelCapacity* chat = profile->add_capacities();
    chat->set_channel(common::v1::CHANNEL_CHAT);
    chat->set_capacity(kCapacity);
    pv1::SetAgentProfileResponse granted;
    grpc::Status status = presence_stub_->SetAgentProfile(
        Context(Role::kSupervisor, "sup-1").get(), grant, &granted);
    ASSERT_TRUE(status.ok()) << status.error_message();
    pv1::SetStatusRequest request;
    request.set_status(pv1::AGENT_STATUS_ONLINE);
    request.set_device_id("desk");
    pv1::SetStatusResponse response;
    status = presence_stub_->SetStatus(Context(Role::kAgent, agent).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // A customer opens a chat; without a bot it goes straight to the queue.
  std::string OpenChat(int n) {
    const std::string customer = absl::StrCat("cust-", n);
    sv1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_CHAT);
    request.set_category(common::v1::CATEGORY_DEPOSIT);
    request.set_language("en");
    request.set_request_id(absl::StrCat("create-", n));
    request.mutable_first_message()->set_text("My deposit has not arrived");
    sv1::CreateSessionResponse response;
    grpc::Status status = sessions_stub_->CreateSession(
        Context(Role::kCustomer, customer).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    sv1::EscalateSessionRequest escalate;
    escalate.set_session_id(response.session().session_id());
    sv1::EscalateSessionResponse escalated;
    status = sessions_stub_->EscalateSession(Context(Role::kCustomer, customer).get(), escalate,
                                             &escalated);
    EXPECT_TRUE(status.ok()) << status.error_message();
    session_ids_.push_back(response.session().session_id());
    return response.session().session_id();
  }

  absl::StatusOr<sv1::Session> GetSession(const std::string& session_id) {
    sv1::GetSessionRequest request;
    request.set_session_id(session_id);
    sv1::GetSessionResponse response;
    grpc::Status status =
        sessions_stub_->GetSession(Context(Role::kSupervisor, "sup").get(), request, &response);
    if (!status.ok()) return absl::UnavailableError(status.error_message());
    return response.session();
  }

  // The agents' desks: every 100 ms each agent renews their presence and,
  // while `accepting_`, accepts every open offer once, as a person would.
  // Errors are expected while a process is down; a lease found lapsed is
  // counted (and renewed by going online again), never ignored.
  void StartDesk() {
    desk_ = std::thread([this] {
      while (!stop_desk_) {
        for (const char* agent : kAgents) {
          pv1::HeartbeatResponse beat;
          grpc::Status status =
              presence_stub_->Heartbeat(Context(Role::kAgent, agent, absl::Seconds(1)).get(),
                                        pv1::HeartbeatRequest(), &beat);
          if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
              status.error_code() == grpc::StatusCode::NOT_FOUND) {
            ++lapses_;
            GoOnline(agent);
          }
          if (accepting_) AcceptOpenOffers(agent);
        }
        CheckNobodyOverCapacity();
        absl::SleepFor(absl::Milliseconds(100));
      }
    });
  }

  void AcceptOpenOffers(const std::string& agent) {
    auto context = Context(Role::kAgent, agent, absl::Seconds(1));
    auto reader = routing_stub_->WatchOffers(context.get(), rv1::WatchOffersRequest());
    std::vector<std::string> open;
    rv1::WatchOffersResponse message;
    while (reader->Read(&message)) {
      if (message.has_caught_up()) break;
      if (message.has_offer()) open.push_back(message.offer().offer_id());
    }
    context->TryCancel();
    while (reader->Read(&message)) {
    }
    reader->Finish();
    for (const std::string& offer : open) {
      // Each offer is accepted once, as a person clicks once: an accept cut
      // short by a crash must be finished by routing, not by a retry.
      if (!tried_.insert(offer).second) continue;
      rv1::AcceptOfferRequest accept;
      accept.set_offer_id(offer);
      rv1::AcceptOfferResponse accepted;
      routing_stub_->AcceptOffer(Context(Role::kAgent, agent, absl::Seconds(3)).get(), accept,
                                 &accepted);
    }
  }

  // Presence's loads, when presence answers.
  std::map<std::string, int> Loads() {
    std::map<std::string, int> loads;
    for (const char* agent : kAgents) {
      pv1::GetAgentRequest request;
      request.set_agent_id(agent);
      pv1::GetAgentResponse response;
      if (!presence_stub_->GetAgent(Context(Role::kSupervisor, "sup", absl::Seconds(1)).get(),
                                    request, &response)
               .ok()) {
        return {};
      }
      loads[agent] = response.agent().total_load();
    }
    return loads;
  }

  void CheckNobodyOverCapacity() {
    for (const auto& [agent, load] : Loads()) {
      if (load > kCapacity) {
        absl::MutexLock lock(&mu_);
        over_capacity_.push_back(absl::StrCat(agent, " had ", load));
      }
    }
  }

  // Routing's open offers per agent (entries OFFERED), and entries still
  // waiting; false if routing does not answer.
  bool Queue(std::map<std::string, int>* offers, int* waiting) {
    rv1::ListQueueEntriesRequest request;
    request.set_page_size(500);
    rv1::ListQueueEntriesResponse response;
    if (!routing_stub_->ListQueueEntries(Context(Role::kSupervisor, "sup").get(), request,
                                         &response)
             .ok()) {
      return false;
    }
    *waiting = 0;
    for (const rv1::QueueEntry& entry : response.entries()) {
      if (entry.state() == rv1::ENTRY_STATE_OFFERED) {
        ++(*offers)[entry.offered_agent_id()];
      } else {
        ++*waiting;
      }
    }
    return true;
  }

  // What should hold once routing has settled: every session but the
  // resolved ones is ASSIGNED, except `expected_waiting` QUEUED ones that
  // wait in routing, no offer is left open, and each agent's load in
  // presence is their ASSIGNED sessions plus their open offers. Returns the
  // first mismatch ("" when none).
  std::string Mismatch(int expected_waiting, const std::set<std::string>& resolved) {
    std::map<std::string, int> truth;
    int queued = 0;
    for (const std::string& id : session_ids_) {
      absl::StatusOr<sv1::Session> session = GetSession(id);
      if (!session.ok()) return "sessions does not answer";
      if (resolved.count(id)) {
        if (session->state() != sv1::SESSION_STATE_RESOLVED) return id + " is not RESOLVED";
        continue;
      }
      if (session->state() == sv1::SESSION_STATE_ASSIGNED) {
        ++truth[session->assigned_agent_id()];
      } else if (session->state() == sv1::SESSION_STATE_QUEUED) {
        ++queued;
      } else {
        return absl::StrCat(id, " is ", sv1::SessionState_Name(session->state()));
      }
    }
    // A session sessions holds QUEUED must be waiting in routing (sessions
    // hands it over again until routing has it).
    if (queued != expected_waiting) {
      return absl::StrCat(queued, " sessions are QUEUED, expected ", expected_waiting);
    }
    std::map<std::string, int> offers;
    int waiting = 0;
    if (!Queue(&offers, &waiting)) return "routing does not answer";
    if (waiting != expected_waiting) {
      return absl::StrCat(waiting, " entries wait, expected ", expected_waiting);
    }
    // The desks accept every offer: one still open is not settled yet.
    if (!offers.empty()) return absl::StrCat(offers.begin()->first, " has an open offer");
    for (const auto& [agent, count] : offers) truth[agent] += count;
    std::map<std::string, int> loads = Loads();
    if (loads.empty()) return "presence does not answer";
    for (const char* agent : kAgents) {
      if (loads[agent] != truth[agent]) {
        return absl::StrCat(agent, "'s load is ", loads[agent], ", the truth is ",
                            truth[agent]);
      }
    }
    return "";
  }

  // Every session has had exactly one agent (none assigned twice).
  void ExpectOneAgentEach() {
    for (const std::string& id : session_ids_) {
      absl::StatusOr<sv1::Session> session = GetSession(id);
      ASSERT_TRUE(session.ok()) << session.status();
      int agents = 0;
      for (const sv1::Participant& p : session->participants()) {
        agents += p.role() == common::v1::SENDER_ROLE_AGENT;
      }
      EXPECT_EQ(agents, 1) << id << " had " << agents << " agents";
    }
  }

  void ResolveAs(const std::string& agent, const std::string& session_id) {
    sv1::ResolveSessionRequest request;
    request.set_session_id(session_id);
    request.set_request_id("resolve-" + session_id);
    sv1::ResolveSessionResponse response;
    grpc::Status status =
        sessions_stub_->ResolveSession(Context(Role::kAgent, agent).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  std::string dir_;
  testing::TestTokens tokens_;
  Forwarder presence_forwarder_, routing_forwarder_;
  std::unique_ptr<testing::ServerProcess> presence_, sessions_, routing_;
  std::unique_ptr<pv1::PresenceService::Stub> presence_stub_;
  std::unique_ptr<sv1::SessionsService::Stub> sessions_stub_;
  std::unique_ptr<rv1::RoutingService::Stub> routing_stub_;
  std::vector<std::string> session_ids_;
  std::thread desk_;
  std::atomic<bool> stop_desk_{false};
  std::atomic<bool> accepting_{true};
  std::atomic<int> lapses_{0};
  // Offers the desks tried to accept (only the desk thread uses it).
  std::set<std::string> tried_;
  absl::Mutex mu_;
  std::vector<std::string> over_capacity_ ABSL_GUARDED_BY(mu_);
};

// (b) Routing killed at each step of the offer/accept protocol.
class RoutingCrashTest : public CrashTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(RoutingCrashTest, NothingIsLostAssignedTwiceOrLeaked) {
  const std::string point = GetParam();
  // Short offers: an offer whose single accept never reached routing (it
  // was down) goes to the next agent soon.
  StartAll(point, absl::Seconds(3));
  StartDesk();
  for (int n = 0; n < 3; ++n) OpenChat(n);

  // Drive until routing dies at the fault point. The first assignment is
  // resolved as soon as it exists, which makes routing release capacity.
  std::set<std::string> resolved;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!absl::StrContains(routing_->log(), "\"fault_point_hit\"") && absl::Now() < give_up) {
    if (resolved.empty()) {
      for (const std::string& id : session_ids_) {
        absl::StatusOr<sv1::Session> session = GetSession(id);
        if (session.ok() && session->state() == sv1::SESSION_STATE_ASSIGNED) {
          ResolveAs(session->assigned_agent_id(), id);
          resolved.insert(id);
          break;
        }
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(absl::StrContains(routing_->log(), "\"fault_point_hit\",\"point\":\"" + point + "\""))
      << "routing never reached " << point << "\n"
      << routing_->log();
  routing_->Kill();
  routing_forwarder_.CutAll();
  StartRouting("", absl::Seconds(3));

  // Everything settles by routing's own doing: each session is assigned
  // once (or resolved), and presence's loads are the truth.
  std::string mismatch;
  EXPECT_TRUE(Eventually([&] {
    mismatch = Mismatch(0, resolved);
    return mismatch.empty();
  })) << mismatch << "\n"
      << routing_->log();

  // And the restarted routing releases capacity as it should.
  for (const std::string& id : session_ids_) {
    absl::StatusOr<sv1::Session> session = GetSession(id);
    ASSERT_TRUE(session.ok()) << session.status();
    if (session->state() != sv1::SESSION_STATE_ASSIGNED) continue;
    ResolveAs(session->assigned_agent_id(), id);
    resolved.insert(id);
    break;
  }
  EXPECT_TRUE(Eventually([&] {
    mismatch = Mismatch(0, resolved);
    return mismatch.empty();
  })) << mismatch << "\n"
      << routing_->log();
  ExpectOneAgentEach();
  absl::MutexLock lock(&mu_);
  EXPECT_TRUE(over_capacity_.empty()) << over_capacity_.front();
  EXPECT_EQ(lapses_.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(EveryStep, RoutingCrashTest,
                         ::testing::Values("routing.after_reserve",
                                           "routing.after_record_offer",
                                           "routing.after_offer_commit",
                                           "routing.after_accept_intent",
                                           "routing.after_confirm", "routing.after_assign",
                                           "routing.after_accept_commit",
                                           "routing.after_cancel_commit",
                                           "routing.after_release"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           return name.substr(sizeof("routing.") - 1);
                         });

// (c) Presence killed while offers are open.
TEST_F(CrashTest, PresenceKilledWhileOffersAreOpenLeaksNothing) {
  StartAll("", absl::Seconds(60));
  accepting_ = false;
  StartDesk();
  for (int n = 0; n < 2 * kCapacity; ++n) OpenChat(n);
  std::map<std::string, int> offers;
  int waiting = 0;
  ASSERT_TRUE(Eventually([&] {
    offers.clear();
    return Queue(&offers, &waiting) && offers["ana"] == kCapacity && offers["ben"] == kCapacity;
  })) << routing_->log();

  presence_->Kill();
  presence_forwarder_.CutAll();
  // While presence is down: a new session waits, and the agents try to
  // accept (their accepts are recorded and finish once presence is back).
  OpenChat(2 * kCapacity);
  accepting_ = true;
  absl::SleepFor(absl::Milliseconds(500));
  StartPresence();

  // Presence kept its reservations: the four offers are accepted, the fifth
  // session waits (everyone is full), and the loads are the truth.
  std::string mismatch;
  ASSERT_TRUE(Eventually([&] {
    mismatch = Mismatch(1, {});
    return mismatch.empty();
  })) << mismatch << "\n"
      << routing_->log();
  const std::map<std::string, int> loads = Loads();
  EXPECT_EQ(loads.at("ana"), kCapacity);
  EXPECT_EQ(loads.at("ben"), kCapacity);

  // A resolution frees a place: the waiting session is offered and taken.
  absl::StatusOr<sv1::Session> first = GetSession(session_ids_[0]);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->state(), sv1::SESSION_STATE_ASSIGNED);
  ResolveAs(first->assigned_agent_id(), session_ids_[0]);
  EXPECT_TRUE(Eventually([&] {
    mismatch = Mismatch(0, {session_ids_[0]});
    return mismatch.empty();
  })) << mismatch << "\n"
      << routing_->log();
  ExpectOneAgentEach();
  absl::MutexLock lock(&mu_);
  EXPECT_TRUE(over_capacity_.empty()) << over_capacity_.front();
  EXPECT_EQ(lapses_.load(), 0);
}

}  // namespace
}  // namespace switchboard
