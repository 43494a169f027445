// Issue 8, measure #7: full journeys per second across the platform's
// processes. Starts presence, routing, sessions, bot and feedback as real
// processes on free ports (durable SQLite, group commit, outboxes, JSON-lines
// events; or every service on one PostgreSQL database with --database, and
// with --replicas=N N processes each of bot and feedback, which clients and
// sessions reach with round_robin), puts agents online with auto-accept,
// then K concurrent customers
// each play journeys: create a chat asking for a human (bot → escalate) →
// routing offers and the agent auto-accepts → 10 messages, alternating
// customer and agent → the agent resolves → the customer rates. Prints
// journeys/s and journey latency percentiles, errors by stage, and a JSON
// line.
//
//   bazel run -c opt //tools/loadgen:journey_benchmark -- [--journeys=300]
//       [--concurrency=16] [--agents=24] [--messages=10]
//       [--database=postgresql://... [--replicas=2]] [--label=journeys]
//
// A journey's time runs from CreateSession to the rating's answer. Waiting
// for assignment polls GetSession every 5 ms, so assignment is seen at most
// 5 ms late.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/token.h"
#include "libs/config/flags.h"
#include "libs/testing/runfiles.h"
#include "switchboard/feedback/v1/feedback_service.grpc.pb.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"
#include "tools/loadgen/histogram.h"
#include "tools/loadgen/platform.h"

namespace switchboard::loadgen {
namespace {

struct Config {
  int journeys = 300;
  int concurrency = 16;
  int agents = 24;
  int messages = 10;
  // The JSON line's label (report.json's key).
  std::string label = "journeys";
  Platform::Options platform;
};

// The clients of the platform's services, and the tokens they carry.
struct Clients {
  explicit Clients(const Platform& platform) : platform(platform) {
    const auto channel = [&](const std::string& service) {
      // A service with replicas is a list of addresses: spread the calls.
      grpc::ChannelArguments args;
      args.SetLoadBalancingPolicyName("round_robin");
      return grpc::CreateCustomChannel(platform.address(service),
                                       grpc::InsecureChannelCredentials(), args);
    };
    sessions_ = sessions::v1::SessionsService::NewStub(channel("sessions"));
    routing_ = routing::v1::RoutingService::NewStub(channel("routing"));
    presence_ = presence::v1::PresenceService::NewStub(channel("presence"));
    feedback_ = feedback::v1::FeedbackService::NewStub(channel("feedback"));
  }

  std::string Token(auth::Role role, const std::string& subject) {
    return platform.Token(role, subject);
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(15)));
    return context;
  }

  const Platform& platform;
  std::unique_ptr<sessions::v1::SessionsService::Stub> sessions_;
  std::unique_ptr<routing::v1::RoutingService::Stub> routing_;
  std::unique_ptr<presence::v1::PresenceService::Stub> presence_;
  std::unique_ptr<feedback::v1::FeedbackService::Stub> feedback_;
};

// Errors by the stage of the journey where they happened.
class Errors {
 public:
  void Add(const std::string& stage, const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    ++counts_[absl::StrCat(stage, ":", status.error_code())];
    if (first_.empty()) first_ = absl::StrCat(stage, ": ", status.error_message());
  }
  std::string Json() {
    absl::MutexLock lock(&mu_);
    std::string out = "{";
    for (const auto& [key, count] : counts_) {
      absl::StrAppend(&out, out.size() > 1 ? "," : "", "\"", key, "\":", count);
    }
    return out + "}";
  }
  std::string first() {
    absl::MutexLock lock(&mu_);
    return first_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> counts_;
  std::string first_;
};

// Plays one journey for customer `customer`; true if it completed.
bool PlayJourney(Clients& p, const Config& config, const std::string& customer, int index,
                 Errors& errors) {
  const std::string ctoken = p.Token(auth::Role::kCustomer, customer);
  sessions::v1::CreateSessionRequest create;
  create.set_channel(common::v1::CHANNEL_CHAT);
  create.set_category(common::v1::CATEGORY_DEPOSIT);
  create.set_language("en");
  create.set_request_id(absl::StrCat("journey-", index));
  create.mutable_first_message()->set_text("My deposit has not arrived, I want a human agent");
  sessions::v1::CreateSessionResponse created;
  if (grpc::Status s = p.sessions_->CreateSession(p.Context(ctoken).get(), create, &created);
      !s.ok()) {
    errors.Add("create", s);
    return false;
  }
  const std::string session = created.session().session_id();
  const std::string supervisor = p.Token(auth::Role::kSupervisor, "bench-supervisor");
  std::string agent;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (agent.empty()) {
    sessions::v1::GetSessionRequest get;
    get.set_session_id(session);
    sessions::v1::GetSessionResponse got;
    grpc::Status s = p.sessions_->GetSession(p.Context(supervisor).get(), get, &got);
    if (!s.ok()) {
      errors.Add("wait_assigned", s);
      return false;
    }
    if (got.session().state() == sessions::v1::SESSION_STATE_ASSIGNED) {
      agent = got.session().assigned_agent_id();
    } else if (absl::Now() > give_up) {
      errors.Add("wait_assigned", grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                               "not assigned within 60 s"));
      return false;
    } else {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  const std::string atoken = p.Token(auth::Role::kAgent, agent);
  for (int m = 0; m < config.messages; ++m) {
    const bool from_customer = m % 2 == 0;
    sessions::v1::SendMessageRequest send;
    send.set_session_id(session);
    send.set_client_message_id(absl::StrCat("m-", m));
    send.mutable_message()->set_text(from_customer ? "Here are the details of my deposit"
                                                   : "Thank you, checking it now");
    sessions::v1::SendMessageResponse sent;
    if (grpc::Status s = p.sessions_->SendMessage(
            p.Context(from_customer ? ctoken : atoken).get(), send, &sent);
        !s.ok()) {
      errors.Add("send_message", s);
      return false;
    }
  }
  sessions::v1::ResolveSessionRequest resolve;
  resolve.set_session_id(session);
  resolve.set_resolution_summary("credited");
  sessions::v1::ResolveSessionResponse resolved;
  if (grpc::Status s = p.sessions_->ResolveSession(p.Context(atoken).get(), resolve, &resolved);
      !s.ok()) {
    errors.Add("resolve", s);
    return false;
  }
  feedback::v1::SubmitFeedbackRequest rate;
  rate.set_session_id(session);
  rate.mutable_ratings()->set_response_speed(5);
  rate.mutable_ratings()->set_professionalism(5);
  rate.mutable_ratings()->set_problem_resolution(5);
  rate.set_overall_satisfaction(5);
  rate.set_request_id(absl::StrCat("rate-", index));
  feedback::v1::SubmitFeedbackResponse rated;
  if (grpc::Status s = p.feedback_->SubmitFeedback(p.Context(ctoken).get(), rate, &rated);
      !s.ok()) {
    errors.Add("rate", s);
    return false;
  }
  return true;
}

int Main(int argc, char** argv) {
  testing::UseRunfilesOf(argv[0]);
  Config config;
  config::FlagSet flags("journey_benchmark");
  flags.Add("journeys", &config.journeys, "journeys to play");
  flags.Add("concurrency", &config.concurrency, "customers playing at once");
  flags.Add("agents", &config.agents, "agents online (chat capacity 5 each, auto-accept)");
  flags.Add("messages", &config.messages, "messages per journey, alternating customer and agent");
  flags.Add("database", &config.platform.database,
            "empty: SQLite files; else a postgresql:// URI every service stores in");
  flags.Add("replicas", &config.platform.replicas,
            "processes of bot and feedback (needs --database); the others run one");
  flags.Add("label", &config.label, "the JSON line's label");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "journey_benchmark: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (config.journeys < 1 || config.concurrency < 1 || config.agents < 1 || config.messages < 0 ||
      config.platform.replicas < 1) {
    std::fprintf(stderr, "journey_benchmark: counts must be positive\n");
    return 2;
  }
  if (config.platform.replicas > 1 && config.platform.database.empty()) {
    std::fprintf(stderr, "journey_benchmark: --replicas needs --database (PostgreSQL)\n");
    return 2;
  }
  Platform platform(config.platform);
  Clients p(platform);

  // Agents online with auto-accept, kept alive by heartbeats.
  std::atomic<bool> done{false};
  std::vector<std::string> agents;
  for (int i = 0; i < config.agents; ++i) {
    const std::string agent = absl::StrCat("bench-agent-", i);
    agents.push_back(agent);
    const std::string token = p.Token(auth::Role::kAgent, agent);
    // A supervisor sets what the agent handles; the agent goes online.
    presence::v1::SetAgentProfileRequest grant;
    grant.set_agent_id(agent);
    grant.mutable_profile()->mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
    grant.mutable_profile()->mutable_skills()->add_languages("en");
    presence::v1::ChannelCapacity* chat = grant.mutable_profile()->add_capacities();
    chat->set_channel(common::v1::CHANNEL_CHAT);
    chat->set_capacity(5);
    presence::v1::SetAgentProfileResponse granted;
    presence::v1::SetStatusRequest online;
    online.set_status(presence::v1::AGENT_STATUS_ONLINE);
    presence::v1::SetStatusResponse set;
    routing::v1::UpdateAgentSettingsRequest settings;
    settings.mutable_settings()->set_auto_accept(true);
    routing::v1::UpdateAgentSettingsResponse updated;
    grpc::Status status = p.presence_->SetAgentProfile(
        p.Context(p.Token(auth::Role::kSupervisor, "bench-supervisor")).get(), grant, &granted);
    if (status.ok()) status = p.presence_->SetStatus(p.Context(token).get(), online, &set);
    if (status.ok()) {
      status = p.routing_->UpdateAgentSettings(p.Context(token).get(), settings, &updated);
    }
    if (!status.ok()) {
      std::fprintf(stderr, "agent %s: %s\n", agent.c_str(), status.error_message().c_str());
      return 1;
    }
  }
  std::thread heartbeats([&] {
    while (!done) {
      for (const std::string& agent : agents) {
        presence::v1::HeartbeatResponse beat;
        p.presence_->Heartbeat(p.Context(p.Token(auth::Role::kAgent, agent)).get(), {}, &beat);
      }
      for (int i = 0; i < 50 && !done; ++i) absl::SleepFor(absl::Milliseconds(100));
    }
  });

  Histogram latency;
  Errors errors;
  std::atomic<int> next{0};
  std::atomic<int> completed{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> customers;
  for (int c = 0; c < config.concurrency; ++c) {
    customers.emplace_back([&] {
      for (int i = next.fetch_add(1); i < config.journeys; i = next.fetch_add(1)) {
        // One customer id per journey: sessions limits creations per customer.
        const absl::Time begin = absl::Now();
        if (PlayJourney(p, config, absl::StrCat("bench-customer-", i), i, errors)) {
          latency.Record(absl::ToInt64Microseconds(absl::Now() - begin));
          completed.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : customers) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  done = true;
  heartbeats.join();

  const double per_second = completed.load() / seconds;
  std::printf(
      "journeys: %d of %d completed in %.2f s = %.1f journeys/s (%d concurrent customers, %d "
      "agents, %d messages each)\n"
      "journey latency: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
      completed.load(), config.journeys, seconds, per_second, config.concurrency, config.agents,
      config.messages, latency.Percentile(0.5) / 1000.0, latency.Percentile(0.9) / 1000.0,
      latency.Percentile(0.99) / 1000.0, latency.max() / 1000.0);
  if (!errors.first().empty()) std::printf("first error: %s\n", errors.first().c_str());
  std::printf(
      "{\"label\":\"%s\",\"backend\":\"%s\",\"replicas\":%d,\"journey\":\"create (bot escalates) -> offer, auto-accept -> "
      "%d messages -> resolve -> rate\",\"journeys\":%d,\"completed\":%d,\"seconds\":%.3f,"
      "\"journeys_per_s\":%.2f,\"concurrency\":%d,\"agents\":%d,\"latency_ms\":{\"p50\":%.2f,"
      "\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},\"errors\":%s}\n",
      config.label.c_str(), config.platform.database.empty() ? "sqlite" : "postgresql",
      config.platform.replicas, config.messages, config.journeys, completed.load(), seconds,
      per_second,
      config.concurrency, config.agents, latency.Percentile(0.5) / 1000.0,
      latency.Percentile(0.9) / 1000.0, latency.Percentile(0.99) / 1000.0,
      latency.max() / 1000.0, errors.Json().c_str());
  return completed.load() == config.journeys ? 0 : 1;
}

}  // namespace
}  // namespace switchboard::loadgen

int main(int argc, char** argv) { return switchboard::loadgen::Main(argc, argv); }
