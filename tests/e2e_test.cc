// The whole platform as operators and users see it: tools/run.sh (the
// README's run command) starts the six binaries as processes on ports the
// test reserved (SWITCHBOARD_PORT_BASE, prebuilt binaries from the runfiles); a customer's
// journey plays over gRPC (bot, request for a human, offer, accept, chat,
// resolve, rating); the event files hold every step; every /metrics answers
// with the metrics deploy/METRICS.md defines; a real Prometheus (Debian's)
// scrapes the six ports with deploy/prometheus/alerts.yml loaded, finds every
// target up and returns data for every query of the Grafana dashboard; then
// SIGTERM to the launcher stops each service, which must exit 0 within its
// drain deadline.
#include <fcntl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/metrics/scrape.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "libs/testing/reserved_port.h"
#include "switchboard/feedback/v1/feedback_service.grpc.pb.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr absl::Duration kDrainDeadline = absl::Seconds(3);
const char* const kServices[] = {"sessions", "routing", "bot", "presence", "identity", "feedback"};

std::string Runfiles() { return absl::StrCat(std::getenv("TEST_SRCDIR"), "/switchboard"); }

// A port base for run.sh with its gRPC (base+1..6) and metrics
// (base+2001..6) ports, and one more above them for Prometheus, reserved
// into `held` (ReservedPort) for as long as the test runs: nobody else can
// take them before the servers bind them. 0 if none was found.
int ReservePortBase(std::vector<testing::ReservedPort>& held) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    // A kernel-picked port anchors the search, away from fixed ranges.
    const int base = testing::ReservedPort().port() % 20000 + 20000;
    std::vector<testing::ReservedPort> ports;
    ports.emplace_back(base + 2100);
    for (int i = 1; i <= 6; ++i) {
      ports.emplace_back(base + i);
      ports.emplace_back(base + 2000 + i);
    }
    bool all = true;
    for (const testing::ReservedPort& port : ports) all = all && port.held();
    if (all) {
      held = std::move(ports);
      return base;
    }
  }
  return 0;
}

bool Eventually(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(20)) {
  const absl::Time give_up = absl::Now() + limit;
  while (absl::Now() < give_up) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return done();
}

// A child process with stdout and stderr in `log_path`.
class Child {
 public:
  Child(std::vector<std::string> argv, const std::vector<std::string>& env,
        std::string log_path)
      : log_path_(std::move(log_path)) {
    pid_ = fork();
    if (pid_ == 0) {
      const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
      for (const std::string& entry : env) putenv(strdup(entry.c_str()));
      std::vector<char*> args;
      for (std::string& arg : argv) args.push_back(arg.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Child() {
    if (running()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool running() {
    if (exited_) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    return !exited_;
  }
  // SIGTERM; the exit code, or -1 if it took longer than `limit` or died of
  // a signal.
  int Terminate(absl::Duration limit) {
    if (!running()) return code_;
    kill(pid_, SIGTERM);
    if (!Eventually([this] { return !running(); }, limit)) return -1;
    return code_;
  }
  std::string log() const { return testing::ReadFile(log_path_); }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int code_ = -1;
  std::string log_path_;
};

std::string UrlEncode(absl::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

Struct ParseJson(const std::string& json) {
  Struct parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
  return parsed;
}

class EndToEndTest : public ::testing::Test {
 protected:
  EndToEndTest() : dir_(storage::MakeTempDir()), base_(ReservePortBase(ports_)) {
    EXPECT_GT(base_, 0) << "no free port range";
    const std::string root = Runfiles();
    launcher_ = std::make_unique<Child>(
        std::vector<std::string>{"/bin/bash", root + "/tools/run.sh"},
        std::vector<std::string>{
            "SWITCHBOARD_BIN_DIR=" + root, absl::StrCat("SWITCHBOARD_PORT_BASE=", base_),
            "SWITCHBOARD_DATA_DIR=" + dir_ + "/data",
            absl::StrCat("SWITCHBOARD_DRAIN_DEADLINE=", absl::FormatDuration(kDrainDeadline))},
        dir_ + "/run.log");
    ready_ = Eventually(
        [&] {
          return absl::StrContains(launcher_->log(), "Ctrl-C stops everything") ||
                 !launcher_->running();
        },
        absl::Seconds(60)) &&
             launcher_->running();
    EXPECT_TRUE(ready_) << launcher_->log();
    // The development keys run.sh made; the test mints as the local issuer.
    if (ready_) {
      tokens_ = std::make_unique<testing::TestTokens>(
          testing::TestTokens::FromFolder(dir_ + "/data/keys", "e2e"));
    }
  }

  int GrpcPort(int index) const { return base_ + index; }      // 1-based, kServices order
  int MetricsPort(int index) const { return base_ + 2000 + index; }

  std::shared_ptr<grpc::Channel> Channel(int index) {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", GrpcPort(index)),
                               grpc::InsecureChannelCredentials());
  }

  std::unique_ptr<grpc::ClientContext> Context(auth::Role role, const std::string& subject) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, tokens_->For(role, subject));
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  // Starts Debian's Prometheus on the six metrics ports with the alert rules.
  void StartPrometheus() {
    prometheus_port_ = base_ + 2100;
    std::string targets;
    for (int i = 1; i <= 6; ++i) {
      absl::StrAppend(&targets, "      - targets: [\"127.0.0.1:", MetricsPort(i), "\"]\n",
                      "        labels: {service: ", kServices[i - 1], "}\n");
    }
    const std::string config = dir_ + "/prometheus.yml";
    FILE* file = fopen(config.c_str(), "w");
    ASSERT_NE(file, nullptr);
    fprintf(file, "%s",
            absl::StrCat("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n",
                         "rule_files:\n  - ", Runfiles(), "/deploy/prometheus/alerts.yml\n",
                         "scrape_configs:\n  - job_name: switchboard\n    static_configs:\n",
                         targets)
                .c_str());
    fclose(file);
    prometheus_ = std::make_unique<Child>(
        std::vector<std::string>{"/usr/bin/prometheus", "--config.file=" + config,
                                 "--storage.tsdb.path=" + dir_ + "/tsdb",
                                 absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_)},
        std::vector<std::string>{}, dir_ + "/prometheus.log");
    ASSERT_TRUE(Eventually([&] {
      return metrics::HttpGet("127.0.0.1", prometheus_port_, "/-/ready").ok();
    })) << prometheus_->log();
  }

  // GET on Prometheus's API; `data` of a successful answer.
  Value PrometheusApi(const std::string& target) {
    auto body = metrics::HttpGet("127.0.0.1", prometheus_port_, target);
    if (!body.ok()) return Value();
    Struct answer = ParseJson(*body);
    if (answer.fields().at("status").string_value() != "success") return Value();
    return answer.fields().at("data");
  }

  std::string dir_;
  std::vector<testing::ReservedPort> ports_;
  int base_;
  bool ready_ = false;
  std::unique_ptr<Child> launcher_;
  std::unique_ptr<testing::TestTokens> tokens_;
  int prometheus_port_ = 0;
  std::unique_ptr<Child> prometheus_;
};

TEST_F(EndToEndTest, JourneyEventsMetricsPrometheusAndCleanShutdown) {
  ASSERT_TRUE(ready_);
  ASSERT_NO_FATAL_FAILURE(StartPrometheus());
  auto sessions = sessions::v1::SessionsService::NewStub(Channel(1));
  auto routing = routing::v1::RoutingService::NewStub(Channel(2));
  auto presence = presence::v1::PresenceService::NewStub(Channel(4));
  auto feedback = feedback::v1::FeedbackService::NewStub(Channel(6));

  // A supervisor sets an agent up; the agent goes online and watches for
  // offers.
  presence::v1::SetAgentProfileRequest grant;
  grant.set_agent_id("ana");
  grant.mutable_profile()->mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
  grant.mutable_profile()->mutable_skills()->add_languages("en");
  auto* capacity = grant.mutable_profile()->add_capacities();
  capacity->set_channel(common::v1::CHANNEL_CHAT);
  capacity->set_capacity(2);
  presence::v1::SetAgentProfileResponse granted;
  ASSERT_TRUE(presence->SetAgentProfile(Context(auth::Role::kSupervisor, "sup-1").get(), grant,
                                        &granted).ok());
  presence::v1::SetStatusRequest online;
  online.set_status(presence::v1::AGENT_STATUS_ONLINE);
  presence::v1::SetStatusResponse online_response;
  ASSERT_TRUE(presence->SetStatus(Context(auth::Role::kAgent, "ana").get(), online,
                                  &online_response).ok());
  grpc::ClientContext offers_context;
  // Bounds the wait for the offer below.
  offers_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  auth::AttachToken(offers_context, tokens_->For(auth::Role::kAgent, "ana"));
  auto offers = routing->WatchOffers(&offers_context, {});

  const auto create = [&](const std::string& customer, const std::string& text) {
    sessions::v1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_CHAT);
    request.set_category(common::v1::CATEGORY_DEPOSIT);
    request.set_language("en");
    request.set_request_id("e2e-" + customer);
    request.mutable_first_message()->set_text(text);
    sessions::v1::CreateSessionResponse response;
    grpc::Status status = sessions->CreateSession(
        Context(auth::Role::kCustomer, customer).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.session().session_id();
  };
  const auto send = [&](auth::Role role, const std::string& who, const std::string& session,
                        const std::string& id, const std::string& text) {
    sessions::v1::SendMessageRequest request;
    request.set_session_id(session);
    request.set_client_message_id(id);
    request.mutable_message()->set_text(text);
    sessions::v1::SendMessageResponse response;
    grpc::Status status = sessions->SendMessage(Context(role, who).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  };
  const auto state = [&](const std::string& session) {
    sessions::v1::GetSessionRequest request;
    request.set_session_id(session);
    sessions::v1::GetSessionResponse response;
    sessions->GetSession(Context(auth::Role::kSupervisor, "sup").get(), request, &response);
    return response.session().state();
  };

  // One customer is answered by the bot (containment), another asks for a human.
  const std::string answered = create("cust-bot", "How long do deposits take to arrive?");
  const std::string session =
      create("cust-1", "My USDT deposit has not arrived, I want to talk to a human agent");
  ASSERT_FALSE(session.empty());

  // The offer reaches the agent, who accepts.
  std::string offer_id;
  routing::v1::WatchOffersResponse offer;
  while (offer_id.empty() && offers->Read(&offer)) {
    if (offer.has_offer() && offer.offer().entry().session_id() == session) {
      offer_id = offer.offer().offer_id();
    }
  }
  ASSERT_FALSE(offer_id.empty()) << launcher_->log();
  routing::v1::AcceptOfferRequest accept;
  accept.set_offer_id(offer_id);
  routing::v1::AcceptOfferResponse accepted;
  ASSERT_TRUE(routing->AcceptOffer(Context(auth::Role::kAgent, "ana").get(), accept, &accepted)
                  .ok());
  ASSERT_TRUE(Eventually([&] { return state(session) == sessions::v1::SESSION_STATE_ASSIGNED; }));

  // They chat; the agent resolves; the customer rates.
  send(auth::Role::kCustomer, "cust-1", session, "c-1", "I sent 100 USDT on TRC20");
  send(auth::Role::kAgent, "ana", session, "a-1", "Your deposit is credited now");
  sessions::v1::ResolveSessionRequest resolve;
  resolve.set_session_id(session);
  resolve.set_resolution_summary("deposit credited");
  sessions::v1::ResolveSessionResponse resolved;
  ASSERT_TRUE(
      sessions->ResolveSession(Context(auth::Role::kAgent, "ana").get(), resolve, &resolved).ok());
  feedback::v1::SubmitFeedbackRequest rating;
  rating.set_session_id(session);
  rating.set_request_id("rate-1");
  rating.set_overall_satisfaction(5);
  rating.mutable_ratings()->set_response_speed(4);
  rating.mutable_ratings()->set_professionalism(5);
  rating.mutable_ratings()->set_problem_resolution(5);
  feedback::v1::SubmitFeedbackResponse rated;
  grpc::Status rate_status =
      feedback->SubmitFeedback(Context(auth::Role::kCustomer, "cust-1").get(), rating, &rated);
  EXPECT_TRUE(rate_status.ok()) << rate_status.error_message();
  offers_context.TryCancel();
  offers->Finish();

  // The event files hold every step.
  const std::string events = dir_ + "/data/events/";
  const std::vector<std::pair<std::string, std::vector<std::string>>> expected_events = {
      {"sessions",
       {"sessions.session_created", "sessions.session_escalated", "sessions.agent_assigned",
        "sessions.session_resolved"}},
      {"routing", {"routing.entry_enqueued", "routing.offer_accepted"}},
      {"presence", {"presence."}},
      {"bot", {"bot.turn_completed"}},
      {"feedback", {"feedback.feedback_submitted"}},
  };
  for (const auto& [service, types] : expected_events) {
    for (const std::string& type : types) {
      EXPECT_TRUE(Eventually([&, &service = service] {
        return absl::StrContains(testing::ReadFile(events + service + ".jsonl"), type);
      })) << service << " has no " << type;
    }
  }
  EXPECT_TRUE(absl::StrContains(testing::ReadFile(events + "sessions.jsonl"), session));
  EXPECT_TRUE(absl::StrContains(testing::ReadFile(events + "bot.jsonl"), answered));

  // Every /metrics answers; every metric METRICS.md defines is exposed
  // (routing's queue gauges within a second of the queue's first entry),
  // but those of its section "On PostgreSQL only": this platform runs on
  // SQLite (the PostgreSQL process tests check those).
  std::string doc = testing::ReadFile(Runfiles() + "/deploy/METRICS.md");
  const size_t postgres_only = doc.find("\n## On PostgreSQL only\n");
  ASSERT_NE(postgres_only, std::string::npos) << "METRICS.md lost its PostgreSQL section";
  const size_t next_section = doc.find("\n## ", postgres_only + 1);
  doc.erase(postgres_only, next_section == std::string::npos ? std::string::npos
                                                              : next_section - postgres_only);
  const std::regex documented("\\n\\| `([a-z_]+)` \\|");
  std::vector<std::string> defined;
  for (std::sregex_iterator it(doc.begin(), doc.end(), documented), end; it != end; ++it) {
    if ((*it)[1] != "up") defined.push_back((*it)[1]);  // up: Prometheus's own.
  }
  EXPECT_GE(defined.size(), 12u);
  std::vector<std::string> missing;
  Eventually([&] {
    std::string all_metrics;
    for (int i = 1; i <= 6; ++i) {
      auto scraped = metrics::ScrapeMetrics("127.0.0.1", MetricsPort(i));
      if (!scraped.ok()) return false;
      all_metrics += *scraped;
    }
    missing.clear();
    for (const std::string& name : defined) {
      if (!absl::StrContains(all_metrics, "# HELP " + name + " ")) missing.push_back(name);
    }
    return missing.empty();
  }, absl::Seconds(5));
  EXPECT_TRUE(missing.empty()) << "not exposed: " << absl::StrJoin(missing, ", ");
  for (int i = 1; i <= 6; ++i) {
    auto scraped = metrics::ScrapeMetrics("127.0.0.1", MetricsPort(i));
    ASSERT_TRUE(scraped.ok()) << kServices[i - 1] << ": " << scraped.status();
    EXPECT_TRUE(absl::StrContains(*scraped, "grpc_server_handled_total{")) << kServices[i - 1];
    EXPECT_TRUE(absl::StrContains(*scraped, "# HELP switchboard_outbox_depth "))
        << kServices[i - 1];
  }

  // Prometheus: every target up, the rules loaded, every dashboard query
  // returns data.
  EXPECT_TRUE(Eventually([&] {
    const Value data = PrometheusApi("/api/v1/targets?state=active");
    if (!data.has_struct_value()) return false;
    const auto& targets = data.struct_value().fields().at("activeTargets").list_value().values();
    int up = 0;
    for (const Value& target : targets) {
      up += target.struct_value().fields().at("health").string_value() == "up";
    }
    return targets.size() == 6 && up == 6;
  })) << prometheus_->log();
  const Value rules = PrometheusApi("/api/v1/rules");
  ASSERT_TRUE(rules.has_struct_value());
  int alerts = 0;
  for (const Value& group : rules.struct_value().fields().at("groups").list_value().values()) {
    for (const Value& rule : group.struct_value().fields().at("rules").list_value().values()) {
      ++alerts;
      EXPECT_EQ(rule.struct_value().fields().at("health").string_value(), "ok")
          << rule.struct_value().fields().at("name").string_value();
    }
  }
  EXPECT_GE(alerts, 10);

  const Struct dashboard =
      ParseJson(testing::ReadFile(Runfiles() + "/deploy/grafana/switchboard.json"));
  int queries = 0;
  for (const Value& panel : dashboard.fields().at("panels").list_value().values()) {
    for (const Value& target : panel.struct_value().fields().at("targets").list_value().values()) {
      ++queries;
      const std::string expr = absl::StrReplaceAll(
          target.struct_value().fields().at("expr").string_value(), {{"$__rate_interval", "1m"}});
      EXPECT_TRUE(Eventually(
          [&] {
            const Value data = PrometheusApi("/api/v1/query?query=" + UrlEncode(expr));
            return data.has_struct_value() &&
                   data.struct_value().fields().at("result").list_value().values_size() > 0;
          },
          absl::Seconds(15)))
          << panel.struct_value().fields().at("title").string_value() << ": " << expr;
    }
  }
  EXPECT_GE(queries, 6);
  EXPECT_EQ(prometheus_->Terminate(absl::Seconds(10)), 0) << prometheus_->log();

  // SIGTERM: the launcher stops every service; each exits 0 within its drain
  // deadline (plus process start-up slack), and so does the launcher.
  const absl::Time stopping = absl::Now();
  EXPECT_EQ(launcher_->Terminate(kDrainDeadline + absl::Seconds(7)), 0) << launcher_->log();
  std::printf("e2e: services stopped in %s\n",
              absl::FormatDuration(absl::Now() - stopping).c_str());
  const std::string log = launcher_->log();
  for (const char* service : kServices) {
    EXPECT_TRUE(absl::StrContains(log, absl::StrCat("run: ", service, " exited 0\n")))
        << service << "\n"
        << log;
  }
}

}  // namespace
}  // namespace switchboard
