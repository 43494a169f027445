// Measures the outbox relay publishing to a real Kafka broker: events/s from
// the first commit to the last delivery confirmation, and the delay from an
// event's commit to its confirmation (p50/p90/p99/max).
//
//   bazel run -c opt //libs/events:relay_kafka_benchmark
//   bazel run //libs/events:relay_kafka_benchmark -- --quick   # smoke run
//
// Starts a single-node KRaft broker (testing::KafkaBroker; needs
// tools/setup.sh), creates the topic, then runs two phases, each on a fresh
// SQLite file (synchronous=FULL) with its own GroupCommitter and Relay and
// the same idempotent KafkaSink (acks=all), warmed up beforehand so that
// connecting is not measured:
//   saturation  `--writers` threads commit `--events` sessions.message_sent
//               events as fast as group commit allows; the relay drains a
//               backlog, so the delay includes queueing behind it.
//   backlog     the same threads commit `--events` events before the
//               relay starts; its events/s (relay start to last
//               confirmation) is the relay's own capacity, with no writer
//               competing for the committer or the cores.
//   paced       the same threads commit `--paced_events` events on an
//               open-loop schedule of `--paced_rate` events/s; the delay is
//               the relay's own latency (notify, read, produce, ack, Publish
//               returning) rather than a backlog's.
// Each commit is one write holding one event (as an RPC's state change and
// its event would be), keyed by one of `--keys` session ids. An event's
// commit time is when GroupCommitter::Commit returned; its confirmation time
// is when KafkaSink::Publish returned OK for the batch holding it (the relay
// deletes the row after that). Writes per commit counts every write of the
// committer, including the relay's batched deletes.
//
// Prints a markdown table and one JSON line. Exit status 1 if anything
// failed or the relay did not drain within `--drain_timeout`.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/config/flags.h"
#include "libs/events/envelope.h"
#include "libs/events/kafka_sink.h"
#include "libs/events/kafka_topics.h"
#include "libs/events/outbox.h"
#include "libs/events/relay.h"
#include "libs/events/sink.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/kafka_broker.h"
#include "libs/testing/runfiles.h"
#include "prometheus/registry.h"
#include "switchboard/common/v1/common.pb.h"
#include "switchboard/events/v1/event.pb.h"
#include "switchboard/sessions/v1/sessions_service.pb.h"

namespace switchboard::events {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct Config {
  int events = 100000;
  int paced_events = 50000;
  // Half the 20,000 events/s the relay is to sustain.
  int paced_rate = 10000;
  int writers = 8;
  int keys = 1000;
  int partitions = 6;
  int relay_batch = Relay::Options().batch_size;
  absl::Duration drain_timeout = absl::Minutes(5);
  bool quick = false;
};

int64_t NanosSince(SteadyClock::time_point origin) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - origin)
      .count();
}

// Wraps the KafkaSink: records, per outbox id, when Publish confirmed it
// (the first time, should a lost delete make the relay publish it again).
class TimingSink : public Sink {
 public:
  TimingSink(Sink* inner, SteadyClock::time_point origin, int64_t max_id)
      : inner_(inner), origin_(origin), confirmed_at_(max_id + 1, -1) {}

  std::vector<absl::Status> Publish(const std::vector<OutboxRecord>& records) override {
    std::vector<absl::Status> results = inner_->Publish(records);
    const int64_t now = NanosSince(origin_);
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < records.size() && i < results.size(); ++i) {
      if (!results[i].ok()) {
        ++failures_;
        continue;
      }
      const int64_t id = records[i].outbox_id;
      if (id <= 0 || id >= static_cast<int64_t>(confirmed_at_.size())) {
        ++unexpected_;
        continue;
      }
      if (confirmed_at_[id] < 0) {
        confirmed_at_[id] = now;
        ++confirmed_;
      } else {
        ++duplicates_;
      }
    }
    return results;
  }

  // Waits until `count` distinct events are confirmed or `timeout` passes.
  bool WaitForConfirmed(int64_t count, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return confirmed_ >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }

  struct Snapshot {
    std::vector<int64_t> confirmed_at;
    int64_t failures = 0;
    int64_t duplicates = 0;
    int64_t unexpected = 0;
  };
  Snapshot Take() {
    absl::MutexLock lock(&mu_);
    return {confirmed_at_, failures_, duplicates_, unexpected_};
  }

 private:
  Sink* const inner_;
  const SteadyClock::time_point origin_;
  absl::Mutex mu_;
  // Nanoseconds since origin_, indexed by outbox id; -1 until confirmed.
  std::vector<int64_t> confirmed_at_ ABSL_GUARDED_BY(mu_);
  int64_t confirmed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failures_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t unexpected_ ABSL_GUARDED_BY(mu_) = 0;
};

struct PhaseResult {
  std::string name;
  int events = 0;
  int writers = 0;
  // 0 for saturation and backlog.
  int target_rate = 0;
  // The relay started after the last commit.
  bool backlog = false;
  int64_t commit_failures = 0;
  int64_t publish_failures = 0;
  int64_t duplicates = 0;
  bool drained = false;
  double wall_seconds = 0;    // Phase start to last confirmation.
  double commit_per_s = 0;    // First to last commit.
  double relay_per_s = 0;     // First commit (backlog: relay start) to last confirmation.
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;
  double writes_per_commit = 0;
  int64_t writes = 0, commits = 0;
};

// Nearest rank of sorted values.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(p / 100.0 * sorted.size() + 0.999999);
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

class Benchmark {
 public:
  Benchmark(const Config& config, std::string topic, Sink* kafka)
      : config_(config), topic_(std::move(topic)), kafka_(kafka) {
    for (int k = 0; k < config_.keys; ++k) sessions_.push_back(RandomUuid());
    sequences_ = std::make_unique<std::atomic<int64_t>[]>(config_.keys);
  }

  // target_rate 0: as fast as possible. backlog: the relay starts once
  // every event is committed.
  absl::StatusOr<PhaseResult> Run(const std::string& name, int events, int target_rate,
                                  bool backlog) {
    PhaseResult result;
    result.name = name;
    result.events = events;
    result.writers = config_.writers;
    result.target_rate = target_rate;
    result.backlog = backlog;

    const std::string dir = storage::MakeTempDir();
    const std::string path = absl::StrCat(dir, "/", name, ".db");
    storage::Database::Options db_options;
    db_options.path = path;
    db_options.synchronous_full = true;
    auto db = storage::Database::Open(db_options);
    if (!db.ok()) return db.status();
    if (absl::Status s = (*db)->Migrate({kOutboxMigration}); !s.ok()) return s;
    auto reader = storage::Database::Open(db_options);
    if (!reader.ok()) return reader.status();

    const SteadyClock::time_point origin = SteadyClock::now();
    // Outbox ids of a fresh file run 1..events (AUTOINCREMENT).
    TimingSink timing(kafka_, origin, events);
    std::vector<int64_t> committed_at(events + 1, -1);
    std::atomic<int64_t> commit_failures{0};
    std::atomic<int> next{0};

    prometheus::Registry registry;
    storage::GroupCommitter committer(db->get());
    Relay::Options relay_options;
    relay_options.batch_size = config_.relay_batch;
    std::unique_ptr<Relay> relay;
    auto start_relay = [&] {
      relay = std::make_unique<Relay>(std::move(*reader), &committer, &timing, registry,
                                      relay_options);
    };
    if (!backlog) start_relay();

    std::vector<std::thread> threads;
    for (int w = 0; w < config_.writers; ++w) {
      threads.emplace_back([&] {
        while (true) {
          const int i = next.fetch_add(1);
          if (i >= events) return;
          if (target_rate > 0) {
            std::this_thread::sleep_until(
                origin + std::chrono::nanoseconds(static_cast<int64_t>(1e9 * i / target_rate)));
          }
          const int key = static_cast<int>((static_cast<int64_t>(i) * 7919) % config_.keys);
          v1::Event event = MessageSent(key, i);
          if (absl::Status s = Seal(event, "sessions", sessions_[key], absl::Now()); !s.ok()) {
            ++commit_failures;
            continue;
          }
          int64_t outbox_id = 0;
          absl::Status s = committer.Commit([&](storage::Database& db) {
            absl::Status appended = AppendToOutbox(db, topic_, event);
            outbox_id = db.LastInsertRowId();
            return appended;
          });
          const int64_t now = NanosSince(origin);
          if (!s.ok() || outbox_id <= 0 || outbox_id > events) {
            ++commit_failures;
            continue;
          }
          committed_at[outbox_id] = now;
          if (relay != nullptr) relay->Notify();
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const int64_t relay_started = backlog ? NanosSince(origin) : 0;
    if (backlog) start_relay();

    const int64_t committed = events - commit_failures.load();
    result.drained = timing.WaitForConfirmed(committed, config_.drain_timeout);
    relay->Stop(absl::Seconds(5));
    committer.Stop();
    const storage::GroupCommitter::Stats stats = committer.stats();
    db->reset();
    for (const char* suffix : {"", "-wal", "-shm"}) unlink(absl::StrCat(path, suffix).c_str());
    rmdir(dir.c_str());

    TimingSink::Snapshot snapshot = timing.Take();
    result.commit_failures = commit_failures.load();
    result.publish_failures = snapshot.failures;
    result.duplicates = snapshot.duplicates;
    result.writes = stats.writes;
    result.commits = stats.commits;
    result.writes_per_commit =
        stats.commits > 0 ? static_cast<double>(stats.writes) / stats.commits : 0;

    int64_t first_commit = INT64_MAX, last_commit = 0, last_confirm = 0;
    std::vector<double> delays_ms;
    delays_ms.reserve(events);
    for (int64_t id = 1; id <= events; ++id) {
      const int64_t c = committed_at[id];
      const int64_t k = snapshot.confirmed_at[id];
      if (c < 0 || k < 0) continue;
      first_commit = std::min(first_commit, c);
      last_commit = std::max(last_commit, c);
      last_confirm = std::max(last_confirm, k);
      // Publish can return before the committing thread records its time
      // (the relay may read the row as soon as it is committed).
      delays_ms.push_back(std::max<int64_t>(0, k - c) / 1e6);
    }
    if (delays_ms.empty()) return absl::InternalError("no event was committed and confirmed");
    std::sort(delays_ms.begin(), delays_ms.end());
    double sum = 0;
    for (double d : delays_ms) sum += d;
    const double n = static_cast<double>(delays_ms.size());
    result.wall_seconds = last_confirm / 1e9;
    result.commit_per_s = last_commit > first_commit ? n / ((last_commit - first_commit) / 1e9) : 0;
    const int64_t relay_from = backlog ? relay_started : first_commit;
    result.relay_per_s = last_confirm > relay_from ? n / ((last_confirm - relay_from) / 1e9) : 0;
    result.p50_ms = Percentile(delays_ms, 50);
    result.p90_ms = Percentile(delays_ms, 90);
    result.p99_ms = Percentile(delays_ms, 99);
    result.max_ms = delays_ms.back();
    result.mean_ms = sum / n;
    return result;
  }

 private:
  // A message as the sessions service reports it: a customer's text message
  // in an assigned session.
  v1::Event MessageSent(int key, int i) {
    v1::Event event;
    v1::MessageSent* sent = event.mutable_message_sent();
    sent->set_session_id(sessions_[key]);
    sent->set_message_id(absl::StrCat("m-", i));
    sent->set_sequence(++sequences_[key]);
    sent->set_sender_role(common::v1::SENDER_ROLE_CUSTOMER);
    sent->set_sender_id(absl::StrCat("customer-", key));
    sent->set_text_length(40 + i % 200);
    sent->set_session_state(sessions::v1::SESSION_STATE_ASSIGNED);
    return event;
  }

  const Config config_;
  const std::string topic_;
  Sink* const kafka_;
  std::vector<std::string> sessions_;
  std::unique_ptr<std::atomic<int64_t>[]> sequences_;
};

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "model name")) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
  }
  return "unknown";
}

std::string JsonEscape(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out.push_back(c);
  }
  return out;
}

std::string PhaseJson(const PhaseResult& r) {
  return absl::StrFormat(
      "{\"phase\":\"%s\",\"events\":%d,\"writers\":%d,\"target_rate\":%d,"
      "\"drained\":%s,\"commit_failures\":%d,\"publish_failures\":%d,"
      "\"duplicates\":%d,\"wall_s\":%.3f,\"commit_events_per_s\":%.0f,"
      "\"relay_events_per_s\":%.0f,\"delay_ms\":{\"p50\":%.2f,\"p90\":%.2f,"
      "\"p99\":%.2f,\"max\":%.2f,\"mean\":%.2f},\"writes_per_commit\":%.2f,"
      "\"writes\":%d,\"commits\":%d}",
      r.name, r.events, r.writers, r.target_rate, r.drained ? "true" : "false",
      r.commit_failures, r.publish_failures, r.duplicates, r.wall_seconds, r.commit_per_s,
      r.relay_per_s, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms, r.mean_ms, r.writes_per_commit,
      r.writes, r.commits);
}

int Main(int argc, char** argv) {
  Config config;
  config::FlagSet flags("relay_kafka_benchmark");
  flags.Add("events", &config.events, "events committed in the saturation phase");
  flags.Add("paced_events", &config.paced_events, "events committed in the paced phase");
  flags.Add("paced_rate", &config.paced_rate, "events/s offered in the paced phase");
  flags.Add("writers", &config.writers, "threads committing events");
  flags.Add("keys", &config.keys, "distinct entity ids (record keys)");
  flags.Add("partitions", &config.partitions, "partitions of the topic");
  flags.Add("relay_batch", &config.relay_batch, "Relay::Options::batch_size");
  flags.Add("drain_timeout", &config.drain_timeout,
            "how long a phase may wait for the relay to drain");
  flags.Add("quick", &config.quick, "tiny counts, for a smoke run");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (config.quick) {
    config.events = 500;
    config.paced_events = 400;
  }
  if (config.events < 1 || config.paced_events < 1 || config.paced_rate < 1 ||
      config.writers < 1 || config.keys < 1 || config.partitions < 1 || config.relay_batch < 1) {
    std::fprintf(stderr, "counts, rates and sizes must be at least 1\n");
    return 2;
  }

  testing::UseRunfilesOf(argv[0]);
  const absl::Time broker_start = absl::Now();
  testing::KafkaBroker broker;
  std::printf("broker %s ready in %.1f s\n", broker.address().c_str(),
              absl::ToDoubleSeconds(absl::Now() - broker_start));
  std::fflush(stdout);

  const std::string topic = TopicFor("sessions");
  TopicSpec spec;
  spec.name = topic;
  spec.partitions = config.partitions;
  spec.replication_factor = 1;
  auto created = CreateTopics(broker.address(), {}, {spec}, absl::Seconds(30));
  if (!created.ok()) {
    std::fprintf(stderr, "create topic: %s\n", created.status().ToString().c_str());
    return 1;
  }

  KafkaSink::Options sink_options;
  sink_options.brokers = broker.address();
  sink_options.client_id = "relay-kafka-benchmark";
  auto sink = KafkaSink::Create(sink_options);
  if (!sink.ok()) {
    std::fprintf(stderr, "kafka sink: %s\n", sink.status().ToString().c_str());
    return 1;
  }
  // Warm-up: connect and learn every partition's leader before measuring.
  {
    std::vector<OutboxRecord> warmup;
    for (int p = 0; p < 4 * config.partitions; ++p) {
      v1::Event event;
      event.mutable_message_sent()->set_session_id("warmup");
      const std::string key = absl::StrCat("warmup-", p);
      if (!Seal(event, "sessions", key, absl::Now()).ok()) return 1;
      warmup.push_back({p + 1, topic, key, event.event_id(), event.type(),
                        event.SerializeAsString()});
    }
    for (const absl::Status& s : (*sink)->Publish(warmup)) {
      if (!s.ok()) {
        std::fprintf(stderr, "warm-up publish: %s\n", s.ToString().c_str());
        return 1;
      }
    }
  }

  Benchmark benchmark(config, topic, sink->get());
  std::vector<PhaseResult> results;
  struct Phase {
    std::string name;
    int events;
    int target_rate;
    bool backlog;
  };
  const std::vector<Phase> phases = {
      {"saturation", config.events, 0, false},
      {"backlog", config.events, 0, true},
      {"paced", config.paced_events, config.paced_rate, false},
  };
  for (const Phase& phase : phases) {
    const std::string& name = phase.name;
    std::fprintf(stderr, "phase %s: %d events...\n", name.c_str(), phase.events);
    auto result = benchmark.Run(name, phase.events, phase.target_rate, phase.backlog);
    if (!result.ok()) {
      std::fprintf(stderr, "phase %s: %s\n", name.c_str(), result.status().ToString().c_str());
      return 1;
    }
    results.push_back(*result);
  }
  sink->reset();

  const unsigned cpus = std::thread::hardware_concurrency();
  const std::string model = CpuModel();
  std::printf(
      "\nrelay → Kafka: 1 broker (KRaft, loopback), topic %s with %d partitions, "
      "replication 1; idempotent producer, acks=all; SQLite synchronous=FULL; "
      "%d writers, %d keys, relay batch %d\nmachine: %u cpus, %s\n\n",
      topic.c_str(), config.partitions, config.writers, config.keys, config.relay_batch, cpus,
      model.c_str());
  std::printf(
      "| phase | offered | events | wall s | commits/s | relay events/s | "
      "delay p50 ms | p90 ms | p99 ms | max ms | writes/commit |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const PhaseResult& r : results) {
    std::printf("| %s | %s | %d | %.2f | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f |\n",
                r.name.c_str(),
                r.target_rate > 0 ? absl::StrCat(r.target_rate, "/s").c_str()
                : r.backlog       ? "committed first"
                                  : "max",
                r.events,
                r.wall_seconds, r.commit_per_s, r.relay_per_s, r.p50_ms, r.p90_ms, r.p99_ms,
                r.max_ms, r.writes_per_commit);
  }
  std::vector<std::string> phase_json;
  bool ok = true;
  for (const PhaseResult& r : results) {
    phase_json.push_back(PhaseJson(r));
    ok = ok && r.drained && r.commit_failures == 0;
  }
  std::printf(
      "\n{\"benchmark\":\"relay_kafka\",\"nproc\":%u,\"cpu\":\"%s\",\"partitions\":%d,"
      "\"keys\":%d,\"relay_batch\":%d,\"phases\":[%s]}\n",
      cpus, JsonEscape(model).c_str(), config.partitions, config.keys, config.relay_batch,
      absl::StrJoin(phase_json, ",").c_str());
  for (const PhaseResult& r : results) {
    if (!r.drained) std::fprintf(stderr, "phase %s: the relay did not drain\n", r.name.c_str());
    if (r.commit_failures > 0) {
      std::fprintf(stderr, "phase %s: %lld commits failed\n", r.name.c_str(),
                   static_cast<long long>(r.commit_failures));
    }
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace switchboard::events

int main(int argc, char** argv) { return switchboard::events::Main(argc, argv); }
