// Scale-out on one PostgreSQL database: two processes of every service (bot,
// feedback and identity replicas sharing the calls; presence, routing and
// sessions a leader and a hot standby), 200 customer journeys from 30
// concurrent customers spread over both replicas (round_robin), while
// processes go away in two ways:
// - midway, one process of each service killed with SIGKILL: the leaders of
//   sessions, routing and presence (their standbys take over) and one
//   replica each of bot, feedback and identity. Prints the takeover times
//   clients saw;
// - a rolling restart: every process in turn stopped with SIGTERM and
//   started again, as a rollout replaces pods (leaders hand over on their
//   way out).
// Clients retry UNAVAILABLE and DEADLINE_EXCEEDED with the same idempotency
// keys; customers' streams resume after the last sequence they saw. At the
// end: every journey completed; each party's messages stored exactly once,
// in the order sent; every stream gapless and without repeats across
// resumes; each session assigned once, to one agent, through one accepted
// offer; no agent ever over capacity; every events file in order per key,
// and every session's events published (at least once) across the
// replicas' files. Before the kills the standbys must have passed calls to
// their leaders.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "libs/metrics/scrape.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/events/read_json_lines.h"
#include "libs/protoutil/time.h"
#include "libs/testing/postgres.h"
#include "libs/testing/process.h"
#include "tools/loadgen/journey.h"
#include "tools/loadgen/platform.h"

namespace switchboard {
namespace {

using loadgen::Journey;
using loadgen::Platform;
using loadgen::PlatformClients;

constexpr int kJourneys = 200;
constexpr int kCustomers = 30;
constexpr int kAgents = 12;
constexpr int kCapacity = 3;
constexpr int kMessages = 6;

bool Served(const grpc::Status& status) {
  return status.error_code() != grpc::StatusCode::UNAVAILABLE &&
         status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED;
}

// One cheap call to `service` through the clients' channel; any answer but
// UNAVAILABLE or DEADLINE_EXCEEDED means a process served it.
bool Probe(const PlatformClients& clients, const std::string& service) {
  const std::string supervisor = clients.Token(auth::Role::kSupervisor, "probe");
  auto context = clients.Context(supervisor);
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
  if (service == "sessions") {
    sessions::v1::GetSessionRequest request;
    request.set_session_id("probe");
    sessions::v1::GetSessionResponse response;
    return Served(clients.sessions().GetSession(context.get(), request, &response));
  }
  if (service == "routing") {
    routing::v1::GetQueueStatsRequest request;
    routing::v1::GetQueueStatsResponse response;
    return Served(clients.routing().GetQueueStats(context.get(), request, &response));
  }
  presence::v1::GetAgentRequest request;
  request.set_agent_id("agent-0");
  presence::v1::GetAgentResponse response;
  return Served(clients.presence().GetAgent(context.get(), request, &response));
}

// A kill and what followed it.
struct Kill {
  std::string service;
  std::string process;
  absl::Time at;
  // Leader-elected services: until a client was served again, and until
  // the standby's gauge said it leads.
  std::optional<absl::Duration> served_after, leading_after;
  std::string new_leader;
};

// Every event of `path`. A file of a killed process may end in a line cut
// short by the kill: that line is left out (its event is still in the
// outbox, which another relay publishes).
std::vector<events::JsonLine> ReadEvents(const std::string& path, bool killed) {
  std::string text = testing::ReadFile(path);
  if (text.empty()) return {};
  std::string whole_path = path;
  if (killed && text.back() != '\n') {
    whole_path = path + ".whole";
    FILE* out = std::fopen(whole_path.c_str(), "w");
    const std::string whole = text.substr(0, text.rfind('\n') + 1);
    std::fwrite(whole.data(), 1, whole.size(), out);
    std::fclose(out);
  }
  absl::StatusOr<std::vector<events::JsonLine>> lines = events::ReadJsonLines(whole_path);
  EXPECT_TRUE(lines.ok()) << lines.status();
  return lines.value_or(std::vector<events::JsonLine>{});
}

// The lines of file `path` that contain `needle`.
std::string LinesWith(const std::string& path, const std::string& needle) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(testing::ReadFile(path), '\n')) {
    if (absl::StrContains(line, needle)) absl::StrAppend(&out, line, "\n");
  }
  return out;
}

// The last 3,000 characters of process `name`'s log.
std::string LogTail(const Platform& platform, const std::string& name) {
  const std::string log = testing::ReadFile(absl::StrCat(platform.data_dir(), "/", name, ".log"));
  return log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
}

// The calls a standby passed to its leader that ended OK, from its
// /metrics; -1 if they cannot be read.
double ForwardedOk(const Platform::Process& standby) {
  absl::StatusOr<std::string> metrics = metrics::ScrapeMetrics("127.0.0.1", standby.metrics_port);
  if (!metrics.ok()) return -1;
  const std::string kSeries = "\nswitchboard_forwarded_calls_total{grpc_code=\"OK\"} ";
  const size_t at = metrics->find(kSeries);
  double value = 0;
  if (at == std::string::npos) return 0;
  const size_t start = at + kSeries.size();
  if (!absl::SimpleAtod(metrics->substr(start, metrics->find('\n', start) - start), &value)) {
    return -1;
  }
  return value;
}

// Two processes of every service, identity included, on `postgres`.
Platform::Options ScaleoutOptions(const testing::PostgresServer& postgres) {
  Platform::Options options;
  options.database = postgres.uri();
  options.replicas = 2;
  options.identity = true;
  return options;
}

// Clients retry UNAVAILABLE and DEADLINE_EXCEEDED for up to a minute.
loadgen::RetryPolicy ClientRetries() {
  loadgen::RetryPolicy retry;
  retry.give_up_after = absl::Seconds(60);
  retry.max_backoff = absl::Milliseconds(500);
  retry.attempt_deadline = absl::Seconds(5);
  return retry;
}

// kCustomers customers playing kJourneys journeys (kMessages messages each
// way, streams watched), each taking the next until all are played.
class Customers {
 public:
  explicit Customers(const PlatformClients& clients) : journeys_(kJourneys), start_(absl::Now()) {
    loadgen::JourneyOptions options;
    options.messages = kMessages;
    options.watch = true;
    for (int c = 0; c < kCustomers; ++c) {
      threads_.emplace_back([this, &clients, options] {
        for (int i = next_.fetch_add(1); i < kJourneys; i = next_.fetch_add(1)) {
          journeys_[i] = PlayJourney(clients, options, absl::StrCat("customer-", i), i);
          finished_.fetch_add(1);
        }
      });
    }
  }
  ~Customers() { Join(); }

  int finished() const { return finished_.load(); }
  // Waits until `count` journeys have finished, or 3 minutes have passed
  // since the first began.
  void AwaitFinished(int count) const {
    while (finished() < count && absl::Now() - start_ < absl::Minutes(3)) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  // Waits for every journey; returns them and how long they took.
  const std::vector<Journey>& Join() {
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    if (took_ == absl::ZeroDuration()) took_ = absl::Now() - start_;
    return journeys_;
  }
  absl::Duration took() const { return took_; }

 private:
  std::vector<Journey> journeys_;
  const absl::Time start_;
  std::atomic<int> next_{0}, finished_{0};
  absl::Duration took_ = absl::ZeroDuration();
  std::vector<std::thread> threads_;
};

// Every journey completed, and nothing of it was lost, doubled or
// reordered (the file's header says what is checked); then the platform
// stops, every process but the `killed` with exit 0, and the outboxes are
// empty.
void ExpectEveryJourneyWhole(Platform& platform, const PlatformClients& clients,
                             std::unique_ptr<loadgen::OnlineAgents> agents,
                             const std::vector<Journey>& journeys, absl::Duration took,
                             const std::set<std::string>& killed,
                             const testing::PostgresServer& postgres) {
  int completed = 0, retries = 0, resumes = 0;
  for (const Journey& journey : journeys) {
    if (journey.failed_stage.empty()) {
      ++completed;
    } else {
      ADD_FAILURE() << journey.customer << " failed at " << journey.failed_stage << ": "
                    << journey.failure.error_code() << " " << journey.failure.error_message();
    }
    retries += journey.retries;
    resumes += journey.stream_resumes;
  }
  EXPECT_EQ(completed, kJourneys);
  std::printf("%d of %d journeys completed in %.1f s, %d retried calls, %d stream resumes, %d "
              "lost heartbeats\n",
              completed, kJourneys, absl::ToDoubleSeconds(took), retries, resumes,
              agents->lost_heartbeats());

  // Each party's messages exactly once, in the order sent, with the
  // sequences acknowledged; each stream gapless from 1 to the end, nothing
  // twice, across resumes.
  const std::string supervisor = clients.Token(auth::Role::kSupervisor, "checker");
  std::map<std::string, std::set<int64_t>> message_sequences;  // session -> stored
  for (const Journey& journey : journeys) {
    if (!journey.failed_stage.empty()) continue;
    std::vector<sessions::v1::Message> stored;
    sessions::v1::ListMessagesRequest list;
    list.set_session_id(journey.session_id);
    list.set_page_size(100);
    do {
      sessions::v1::ListMessagesResponse page;
      int unused = 0;
      grpc::Status status = clients.Retrying(
          [&] {
            return clients.sessions().ListMessages(clients.Context(supervisor).get(), list,
                                                   &page);
          },
          &unused);
      ASSERT_TRUE(status.ok()) << status.error_message();
      stored.insert(stored.end(), page.messages().begin(), page.messages().end());
      list.set_page_token(page.next_page_token());
    } while (!list.page_token().empty());
    for (const auto& [who, sent] : {std::make_pair(journey.customer, journey.customer_sent),
                                    std::make_pair(journey.agent, journey.agent_sent)}) {
      std::vector<std::pair<std::string, int64_t>> found;
      for (const sessions::v1::Message& message : stored) {
        if (message.sender_id() == who && !message.client_message_id().empty()) {
          found.emplace_back(message.client_message_id(), message.sequence());
        }
      }
      EXPECT_EQ(found, sent) << journey.session_id << " " << who;
    }
    for (const sessions::v1::Message& message : stored) {
      message_sequences[journey.session_id].insert(message.sequence());
    }
    // (The session may close after the last sequence was read: the stream
    // may go on to its CLOSED event.)
    std::vector<int64_t> expected(
        std::max<int64_t>(journey.last_sequence, journey.streamed.size()));
    for (size_t s = 0; s < expected.size(); ++s) expected[s] = s + 1;
    EXPECT_EQ(journey.streamed, expected) << journey.session_id << " after "
                                          << journey.stream_resumes << " resumes";
  }

  // No agent held more sessions at once than its capacity, as the clients
  // saw it (each journey's time from seeing the assignment to its first
  // resolve call lies within the agent's real hold; the resolve's answer
  // does not when a kill made the client retry a resolve that had committed).
  std::map<std::string, std::vector<std::pair<absl::Time, int>>> holds;
  for (const Journey& journey : journeys) {
    if (!journey.failed_stage.empty()) continue;
    holds[journey.agent].emplace_back(journey.assigned_seen, 1);
    holds[journey.agent].emplace_back(journey.resolve_called, -1);
  }
  for (auto& [agent, changes] : holds) {
    std::sort(changes.begin(), changes.end());  // a release before a hold at one instant
    int held = 0;
    for (const auto& [at, change] : changes) {
      held += change;
      EXPECT_LE(held, kCapacity) << agent;
    }
  }

  // Everything stops cleanly but the killed; the outboxes are empty.
  agents.reset();
  for (const auto& [name, code] : platform.Stop()) {
    EXPECT_EQ(code, 0) << name << ":\n" << LogTail(platform, name);
  }
  for (const char* service : {"presence", "routing", "sessions", "bot", "feedback", "identity"}) {
    EXPECT_EQ(testing::CountInSchema(postgres.uri(), service, "SELECT COUNT(*) FROM outbox"), 0)
        << service;
  }

  // Events: each file in order per key; across the files (deduplicated by
  // event id: a relay killed mid-publish is published again by another),
  // each session created, escalated, assigned once to its journey's agent
  // through the one offer routing saw accepted, never re-queued, resolved,
  // every stored message published; presence never reported a load over
  // the capacity.
  std::map<std::string, std::vector<events::v1::Event>> by_session;  // deduplicated
  std::map<std::string, std::set<std::string>> accepted_offers;      // session -> offer ids
  // Routing's events by session, as "process: type" in file order, for
  // failure messages.
  std::map<std::string, std::vector<std::string>> routing_trail;
  std::set<std::string> seen;
  int lines = 0, duplicates = 0;
  for (const Platform::Process& process : platform.processes()) {
    const std::vector<events::JsonLine> file =
        ReadEvents(absl::StrCat(platform.data_dir_of(process.name), "/events/", process.service,
                                ".jsonl"),
                   killed.count(process.name) > 0);
    std::map<std::string, const events::v1::Event*> last_of_key;
    for (const events::JsonLine& line : file) {
      ++lines;
      const events::v1::Event& event = line.event;
      const auto last = last_of_key.find(line.key);
      if (last != last_of_key.end()) {
        EXPECT_LE(protoutil::FromTimestamp(last->second->occurred_at()),
                  protoutil::FromTimestamp(event.occurred_at()))
            << process.name << " " << line.key << " " << event.type();
        if (last->second->has_message_sent() && event.has_message_sent()) {
          EXPECT_LT(last->second->message_sent().sequence(), event.message_sent().sequence())
              << process.name << " " << line.key;
        }
      }
      last_of_key[line.key] = &event;
      if (process.service == "routing") {
        routing_trail[line.key].push_back(absl::StrCat(process.name, ": ", event.type()));
      }
      if (!seen.insert(event.event_id()).second) {
        ++duplicates;
        continue;
      }
      if (process.service == "sessions") by_session[line.key].push_back(event);
      if (event.has_offer_accepted()) {
        accepted_offers[event.offer_accepted().session_id()].insert(
            event.offer_accepted().offer_id());
      }
      if (event.has_agent_load_changed()) {
        EXPECT_LE(event.agent_load_changed().load(), event.agent_load_changed().capacity())
            << line.key;
      }
    }
  }
  std::printf("events: %d lines, %d published twice\n", lines, duplicates);
  for (const Journey& journey : journeys) {
    if (!journey.failed_stage.empty()) continue;
    std::map<std::string, int> types;
    std::set<std::string> assigned_agents, assigned_offers;
    std::set<int64_t> published;
    for (const events::v1::Event& event : by_session[journey.session_id]) {
      ++types[event.type()];
      if (event.has_agent_assigned()) {
        assigned_agents.insert(event.agent_assigned().agent_id());
        assigned_offers.insert(event.agent_assigned().offer_id());
      }
      if (event.has_message_sent()) published.insert(event.message_sent().sequence());
    }
    EXPECT_EQ(types["sessions.session_created"], 1) << journey.session_id;
    EXPECT_EQ(types["sessions.session_escalated"], 1) << journey.session_id;
    EXPECT_EQ(types["sessions.agent_assigned"], 1) << journey.session_id;
    EXPECT_EQ(types["sessions.session_requeued"], 0) << journey.session_id;
    EXPECT_EQ(types["sessions.session_resolved"], 1) << journey.session_id;
    EXPECT_EQ(assigned_agents, std::set<std::string>{journey.agent}) << journey.session_id;
    EXPECT_EQ(accepted_offers[journey.session_id], assigned_offers)
        << journey.session_id << "; routing's events of it: "
        << absl::StrJoin(routing_trail[journey.session_id], ", ") << "; routing's log lines:\n"
        << LinesWith(platform.data_dir() + "/routing.log", journey.session_id)
        << LinesWith(platform.data_dir() + "/routing-2.log", journey.session_id);
    EXPECT_EQ(published, message_sequences[journey.session_id]) << journey.session_id;
  }
}

TEST(ScaleoutTest, JourneysCompleteWhileOneProcessOfEveryServiceIsKilled) {
  testing::PostgresServer postgres;
  Platform platform(ScaleoutOptions(postgres));
  for (const char* service : {"presence", "routing", "sessions"}) {
    const std::optional<Platform::Process> leader = platform.Leader(service);
    ASSERT_TRUE(leader.has_value()) << service;
    EXPECT_EQ(leader->name, service) << "the process started first leads";
  }

  const PlatformClients clients(platform, ClientRetries());
  auto agents = std::make_unique<loadgen::OnlineAgents>(clients, "agent", kAgents, kCapacity,
                                                        absl::Seconds(1));
  ASSERT_TRUE(agents->status().ok()) << agents->status();

  Customers customers(clients);

  // Midway, one process of each service, a few journeys apart: the leaders
  // of sessions, routing and presence, then a replica each of the others.
  std::vector<Kill> kills;
  kills.reserve(6);  // the watchers hold indexes into it
  std::vector<std::thread> watchers;
  absl::Mutex kills_mu;
  int after = kJourneys * 3 / 10;
  bool counted_forwarding = false;
  for (const char* service : {"sessions", "routing", "presence", "bot", "feedback", "identity"}) {
    customers.AwaitFinished(after);
    // Before the first kill: clients balance over the standbys too, which
    // pass those calls to their leaders.
    if (!counted_forwarding) {
      counted_forwarding = true;
      for (const char* elected : {"sessions", "routing", "presence"}) {
        for (const Platform::Process& process : platform.processes()) {
          if (process.name != absl::StrCat(elected, "-2")) continue;
          const double forwarded = ForwardedOk(process);
          std::printf("%s forwarded %.0f calls to its leader\n", process.name.c_str(), forwarded);
          EXPECT_GT(forwarded, 0) << process.name;
        }
      }
    }
    after += kJourneys / 20;
    const bool elected = std::string(service) == "presence" ||
                         std::string(service) == "routing" ||
                         std::string(service) == "sessions";
    std::string victim = service;
    if (elected) {
      const std::optional<Platform::Process> leader = platform.Leader(service);
      if (!leader.has_value()) {
        ADD_FAILURE() << service << " has no leader to kill";
        continue;
      }
      victim = leader->name;
    }
    platform.Kill(victim);
    const size_t k = kills.size();
    kills.push_back({service, victim, absl::Now()});
    std::printf("killed %s after %d journeys\n", victim.c_str(), customers.finished());
    if (!elected) continue;
    // How long clients wait, and the standby takes, to lead.
    watchers.emplace_back([&, k, killed_at = kills[k].at, service = std::string(service)] {
      std::optional<absl::Duration> served, leading;
      std::string leader;
      while ((!served || !leading) && absl::Now() - killed_at < absl::Seconds(60)) {
        if (!served && Probe(clients, service)) served = absl::Now() - killed_at;
        if (!leading) {
          if (std::optional<Platform::Process> now = platform.Leader(service)) {
            leading = absl::Now() - killed_at;
            leader = now->name;
          }
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
      absl::MutexLock lock(&kills_mu);
      kills[k].served_after = served;
      kills[k].leading_after = leading;
      kills[k].new_leader = leader;
    });
  }
  const std::vector<Journey>& journeys = customers.Join();
  for (std::thread& t : watchers) t.join();
  ASSERT_EQ(kills.size(), 6u);

  // The standbys took over.
  for (const Kill& kill : kills) {
    if (kill.service == "presence" || kill.service == "routing" || kill.service == "sessions") {
      EXPECT_TRUE(kill.served_after.has_value())
          << kill.service << " served no client again; " << kill.service << "-2's log:\n"
          << LogTail(platform, kill.service + "-2");
      EXPECT_TRUE(kill.leading_after.has_value()) << kill.service << ": no standby took over";
      EXPECT_EQ(kill.new_leader, kill.service + "-2");
      std::printf("takeover of %s by %s: leading after %s, clients served after %s\n",
                  kill.process.c_str(), kill.new_leader.c_str(),
                  absl::FormatDuration(kill.leading_after.value_or(absl::InfiniteDuration()))
                      .c_str(),
                  absl::FormatDuration(kill.served_after.value_or(absl::InfiniteDuration()))
                      .c_str());
    }
  }

  std::set<std::string> killed;
  for (const Kill& kill : kills) killed.insert(kill.process);
  ExpectEveryJourneyWhole(platform, clients, std::move(agents), journeys, customers.took(), killed,
                          postgres);
}

// A rollout of every service while the journeys run: each process replaced
// in turn (SIGTERM, its exit awaited, started again on its port and
// folder), each service's first process before its second, so that the
// leaders of presence, routing and sessions hand over to their standbys on
// SIGTERM and take over again from them. Every process exits 0, and every
// journey completes whole, as after the kills.
TEST(ScaleoutTest, JourneysCompleteThroughARollingRestartOfEveryProcess) {
  testing::PostgresServer postgres;
  Platform platform(ScaleoutOptions(postgres));
  const PlatformClients clients(platform, ClientRetries());
  auto agents = std::make_unique<loadgen::OnlineAgents>(clients, "agent", kAgents, kCapacity,
                                                        absl::Seconds(1));
  ASSERT_TRUE(agents->status().ok()) << agents->status();
  Customers customers(clients);

  // Meanwhile, the longest stretch in which clients found no process of
  // presence, routing or sessions serving (a probe of each every 20 ms),
  // printed, not judged: the machine is shared.
  const std::vector<std::string> elected = {"presence", "routing", "sessions"};
  std::atomic<bool> rolling{true};
  std::map<std::string, absl::Duration> longest_gap;
  std::thread prober([&] {
    std::map<std::string, absl::Time> last_served;
    for (const std::string& service : elected) last_served[service] = absl::Now();
    while (rolling) {
      for (const std::string& service : elected) {
        if (!Probe(clients, service)) continue;
        const absl::Time now = absl::Now();
        longest_gap[service] = std::max(longest_gap[service], now - last_served[service]);
        last_served[service] = now;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  });

  // One after the other from a tenth of the journeys on, as a rollout
  // goes: each process is stopped once it has started again.
  customers.AwaitFinished(kJourneys / 10);
  for (const char* service : {"sessions", "routing", "presence", "feedback", "bot", "identity"}) {
    for (const std::string& name : {std::string(service), absl::StrCat(service, "-2")}) {
      const absl::Time stopping = absl::Now();
      const int code = platform.Restart(name);
      EXPECT_EQ(code, 0) << name << ":\n" << LogTail(platform, name);
      std::printf("restarted %s after %d journeys: %s from SIGTERM to started again\n",
                  name.c_str(), customers.finished(),
                  absl::FormatDuration(absl::Now() - stopping).c_str());
    }
  }
  rolling = false;
  prober.join();
  for (const std::string& service : elected) {
    std::printf("%s: clients found no process serving for at most %s at a stretch\n",
                service.c_str(), absl::FormatDuration(longest_gap[service]).c_str());
  }
  const std::vector<Journey>& journeys = customers.Join();
  ExpectEveryJourneyWhole(platform, clients, std::move(agents), journeys, customers.took(), {},
                          postgres);
}

}  // namespace
}  // namespace switchboard
