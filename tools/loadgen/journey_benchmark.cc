// Issue 8, measure #7: full journeys per second across the platform's
// processes. Starts presence, routing, sessions, bot and feedback as real
// processes on free ports (durable SQLite, group commit, outboxes, JSON-lines
// events; or every service on one PostgreSQL database with --database, and
// with --replicas=N N processes of every service: bot and feedback replicas
// share the calls (round_robin), presence, routing and sessions run a
// leader and hot standbys, which pass the calls they get to the leader:
// availability, not throughput), puts
// agents online with auto-accept, then K concurrent customers each play
// journeys (tools/loadgen/journey.h): create a chat asking for a human (bot
// → escalate) → routing offers and the agent auto-accepts → 10 messages,
// alternating customer and agent → the agent resolves → the customer rates.
// Prints
// journeys/s and journey latency percentiles, errors by stage, and a JSON
// line.
//
//   bazel run -c opt //tools/loadgen:journey_benchmark -- [--journeys=300]
//       [--concurrency=16] [--agents=24] [--messages=10]
//       [--database=postgresql://... [--replicas=2]] [--label=journeys]
//       [--keep_data]
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
#include "libs/config/flags.h"
#include "libs/testing/runfiles.h"
#include "tools/loadgen/histogram.h"
#include "tools/loadgen/journey.h"
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
            "processes of every service (needs --database): bot and feedback replicas, "
            "presence, routing and sessions a leader and hot standbys");
  flags.Add("label", &config.label, "the JSON line's label");
  flags.Add("keep_data", &config.platform.keep_data,
            "leave the platform's data folder (databases, logs) behind");
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
  const PlatformClients clients(platform, RetryPolicy());
  // Agents online with auto-accept, kept alive by heartbeats.
  const OnlineAgents agents(clients, "bench-agent", config.agents, 5, absl::Seconds(5));
  if (!agents.status().ok()) {
    std::fprintf(stderr, "%s\n", std::string(agents.status().message()).c_str());
    return 1;
  }

  Histogram latency;
  Errors errors;
  std::atomic<int> next{0};
  std::atomic<int> completed{0};
  JourneyOptions journey_options;
  journey_options.messages = config.messages;
  const absl::Time start = absl::Now();
  std::vector<std::thread> customers;
  for (int c = 0; c < config.concurrency; ++c) {
    customers.emplace_back([&] {
      for (int i = next.fetch_add(1); i < config.journeys; i = next.fetch_add(1)) {
        // One customer id per journey: sessions limits creations per customer.
        const absl::Time begin = absl::Now();
        const Journey journey =
            PlayJourney(clients, journey_options, absl::StrCat("bench-customer-", i), i);
        if (journey.failed_stage.empty()) {
          latency.Record(absl::ToInt64Microseconds(absl::Now() - begin));
          completed.fetch_add(1);
        } else {
          errors.Add(journey.failed_stage, journey.failure);
        }
      }
    });
  }
  for (auto& t : customers) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);

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

int main(int argc, char** argv) {
  // As the servers run (libs/server): Debian's Abseil has the mutex deadlock
  // detector on, a global graph update on every lock, which would load the
  // instrument instead of the platform.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return switchboard::loadgen::Main(argc, argv);
}
