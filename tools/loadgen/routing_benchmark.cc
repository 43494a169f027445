// Issue 8, measure #5: routing decisions per second with 1,000 agents and
// 10,000 queued sessions, and enqueue-to-offer latency. In-process, over
// services/routing's Router (the domain logic the routing server runs),
// with its real SQLite store on a temp file (WAL, synchronous=FULL, group
// commit, outbox) or, with --store=memory, a store that commits at once (the
// decision logic alone). Presence and sessions are in-memory fakes: presence
// keeps each agent's load and feeds every change back to the router as its
// WatchPresence stream would; sessions accepts every call.
//
// A DECISION is one offer made by the dispatcher: pick the next queue entry,
// rank the eligible agents (skills, language, free capacity, idle longest),
// reserve the agent's capacity at presence, record the offer at sessions and
// commit the OFFERED entry with its event. Every offer is then accepted
// (AcceptOffer: confirm + commit the assignment) and the session resolved
// (Cancel RESOLVED: release the capacity + commit), so agents free up again.
//
// Three phases, each on a fresh router and store:
//   saturation  --queued sessions wait before the dispatcher starts; each
//               resolved session is replaced by a new one, so the queue stays
//               that deep. Reports decisions/s and full cycles/s over the
//               window; its enqueue-to-offer figures are queue wait (depth /
//               rate, Little's law), reported as such. Each of --workers
//               threads waits on three commits per cycle (accept, resolve,
//               enqueue): on SQLite and two cores 64 workers make about
//               three times the cycles of 8 (~6,000/s against ~2,300/s),
//               steady from 5 s to 20 s windows.
//   drain       --queued sessions wait, agents have room for all of them and
//               nobody accepts: the dispatcher's decisions by themselves,
//               timed from its start to the last offer made durable.
//   latency     empty queues, --latency_callers closed-loop callers each
//               enqueue one session, wait for its offer, accept and resolve
//               it: enqueue-to-offer latency when an agent is free.
//
//   routing_benchmark [--agents=1000] [--queued=10000] [--store=sqlite|memory]
//                     [--workers=8] [--concurrent_offers=16] [--duration=10s]
//                     [--json_out=FILE]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "libs/clock/clock.h"
#include "libs/config/flags.h"
#include "libs/protoutil/time.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "prometheus/registry.h"
#include "services/routing/metrics.h"
#include "services/routing/peers.h"
#include "services/routing/router.h"
#include "services/routing/sqlite_store.h"
#include "services/routing/store.h"
#include "tools/loadgen/histogram.h"

namespace switchboard::loadgen {
namespace {

using routing::Router;
namespace rv1 = ::switchboard::routing::v1;
namespace pv1 = ::switchboard::presence::v1;
namespace cv1 = ::switchboard::common::v1;

struct Config {
  int agents = 1000;
  int queued = 10000;
  int queues = 4;       // chat queues, one category each, language "en"
  int capacity = 3;     // chat capacity per agent
  int workers = 8;      // threads accepting and resolving offers
  int concurrent_offers = routing::RouterOptions().concurrent_offers;
  int latency_callers = 8;
  std::string store = "sqlite";
  absl::Duration warmup = absl::Seconds(1);
  absl::Duration duration = absl::Seconds(10);
  std::string label = "routing";
  std::string json_out;
};

constexpr cv1::Category kCategories[] = {
    cv1::CATEGORY_DEPOSIT, cv1::CATEGORY_WITHDRAWAL, cv1::CATEGORY_TRADING,
    cv1::CATEGORY_KYC,     cv1::CATEGORY_TECHNICAL,  cv1::CATEGORY_FROZEN_FUNDS,
    cv1::CATEGORY_GENERAL, cv1::CATEGORY_ACCOUNT_SECURITY};

int64_t NowNanos() { return absl::GetCurrentTimeNanos(); }

// Commits at once: the decision logic without the disk.
class MemoryStore : public routing::RoutingStore {
 public:
  absl::StatusOr<Contents> Load() override { return Contents(); }
  absl::StatusOr<ScheduleContents> LoadSchedules() override { return ScheduleContents(); }
  absl::Status Admit() const override { return absl::OkStatus(); }
  absl::StatusOr<std::optional<routing::ClosedOfferRecord>> FindClosedOffer(
      const std::string&) override {
    return std::nullopt;
  }
  void Apply(routing::RoutingWrite, std::function<void(absl::Status)> done) override {
    done(absl::OkStatus());
  }
};

// Presence's capacity rule in memory; every load change goes back to the
// router (OnAgentChange), as presence's WatchPresence stream would carry it.
class FakePresence : public routing::PresencePort {
 public:
  void Add(const pv1::Agent& agent) {
    absl::MutexLock lock(&mu_);
    agents_[agent.agent_id()] = agent;
  }
  void set_router(Router* router) { router_ = router; }

  absl::Status Reserve(const std::string& agent_id, const std::string& session_id,
                       cv1::Channel channel, absl::Duration, int64_t, absl::Time) override {
    pv1::Agent changed;
    {
      absl::MutexLock lock(&mu_);
      auto held = held_.find(session_id);
      if (held != held_.end()) {
        return held->second == agent_id ? absl::OkStatus()
                                        : absl::AlreadyExistsError("held by another agent");
      }
      pv1::Agent& agent = agents_.at(agent_id);
      pv1::ChannelCapacity* c = Capacity(agent, channel);
      if (c == nullptr || c->load() >= c->capacity()) {
        return absl::ResourceExhaustedError("at capacity");
      }
      c->set_load(c->load() + 1);
      held_[session_id] = agent_id;
      channels_[session_id] = channel;
      changed = agent;
    }
    router_->OnAgentChange(changed).IgnoreError();
    return absl::OkStatus();
  }
  absl::Status Confirm(const std::string& agent_id, const std::string& session_id,
                       absl::Time) override {
    absl::MutexLock lock(&mu_);
    auto held = held_.find(session_id);
    return held != held_.end() && held->second == agent_id
               ? absl::OkStatus()
               : absl::NotFoundError("no reservation");
  }
  absl::Status Release(const std::string& agent_id, const std::string& session_id, int64_t,
                       absl::Time) override {
    pv1::Agent changed;
    {
      absl::MutexLock lock(&mu_);
      auto held = held_.find(session_id);
      if (held == held_.end() || held->second != agent_id) return absl::OkStatus();
      pv1::Agent& agent = agents_.at(agent_id);
      pv1::ChannelCapacity* c = Capacity(agent, channels_[session_id]);
      c->set_load(c->load() - 1);
      if (c->load() == 0) protoutil::ToTimestamp(absl::Now(), agent.mutable_idle_since());
      held_.erase(held);
      channels_.erase(session_id);
      changed = agent;
    }
    router_->OnAgentChange(changed).IgnoreError();
    return absl::OkStatus();
  }
  // Nothing leaks in the benchmark: every reservation is held by an offer.
  absl::StatusOr<routing::ReconcileReply> Reconcile(int64_t, const std::string&,
                                                    const std::string&,
                                                    const std::vector<routing::HeldCapacity>&,
                                                    absl::Time) override {
    return routing::ReconcileReply();
  }

 private:
  static pv1::ChannelCapacity* Capacity(pv1::Agent& agent, cv1::Channel channel) {
    for (auto& c : *agent.mutable_profile()->mutable_capacities()) {
      if (c.channel() == channel) return &c;
    }
    return nullptr;
  }

  absl::Mutex mu_;
  Router* router_ = nullptr;
  absl::flat_hash_map<std::string, pv1::Agent> agents_;
  absl::flat_hash_map<std::string, std::string> held_;  // session -> agent
  absl::flat_hash_map<std::string, cv1::Channel> channels_;
};

class FakeSessions : public routing::SessionsPort {
 public:
  absl::Status RecordOffer(const std::string&, const std::string&, const std::string&,
                           absl::Time, absl::Time) override {
    return absl::OkStatus();
  }
  absl::Status AssignAgent(const std::string&, const std::string&, const std::string&,
                           const std::string&, absl::Time) override {
    return absl::OkStatus();
  }
  absl::Status RequeueSession(const std::string&, const std::string&, absl::Time) override {
    return absl::OkStatus();
  }
  absl::StatusOr<routing::SessionView> GetSession(const std::string&, absl::Time) override {
    return routing::SessionView{routing::SessionView::State::kQueued, ""};
  }
};

// One router with its store, fakes, agents and the offer listener.
class Bench : public routing::OfferListener {
 public:
  Bench(const Config& config, const std::string& db_path)
      : config_(config), metrics_(registry_) {
    if (config.store == "sqlite") {
      auto db = storage::Database::Open({db_path});
      if (!db.ok()) Die("open database", db.status());
      db_ = std::move(*db);
      if (absl::Status s = db_->Migrate(routing::RoutingMigrations()); !s.ok()) Die("migrate", s);
      committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
      store_ = std::make_unique<routing::SqliteRoutingStore>(
          committer_.get(), "switchboard.routing.v1", std::function<void()>());
    } else {
      store_ = std::make_unique<MemoryStore>();
    }
    routing::RouterOptions options;
    options.concurrent_offers = config.concurrent_offers;
    router_ = std::make_unique<Router>(store_.get(), &presence_, &sessions_, RealClock(),
                                       &metrics_, options);
    presence_.set_router(router_.get());
    if (absl::Status s = router_->Load(); !s.ok()) Die("load", s);
    // Agents: each with two of the queues' categories, English, chat
    // capacity; idle since staggered so the ranking has work to do.
    std::vector<pv1::Agent> agents;
    const absl::Time now = absl::Now();
    for (int i = 0; i < config.agents; ++i) {
      pv1::Agent agent;
      agent.set_agent_id(absl::StrCat("agent-", i));
      agent.set_status(pv1::AGENT_STATUS_ONLINE);
      auto* profile = agent.mutable_profile();
      profile->set_display_name(agent.agent_id());
      profile->mutable_skills()->add_categories(kCategories[i % config.queues]);
      profile->mutable_skills()->add_categories(kCategories[(i + 1) % config.queues]);
      profile->mutable_skills()->add_languages("en-US");
      auto* chat = profile->add_capacities();
      chat->set_channel(cv1::CHANNEL_CHAT);
      chat->set_capacity(config.capacity);
      protoutil::ToTimestamp(now - absl::Seconds(i), agent.mutable_idle_since());
      presence_.Add(agent);
      agents.push_back(agent);
    }
    if (absl::Status s = router_->ResetPresence(agents); !s.ok()) Die("presence view", s);
    for (const pv1::Agent& agent : agents) {
      router_->SubscribeOffers(agent.agent_id(), /*supervisor=*/false, this);
    }
  }
  // The committer stops before the router goes: a commit in flight calls
  // the router back.
  ~Bench() override {
    StopWorkers();
    router_->UnsubscribeOffers(this);
    if (committer_ != nullptr) committer_->Stop();
  }

  [[noreturn]] static void Die(const char* what, const absl::Status& s) {
    std::fprintf(stderr, "routing_benchmark: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }

  // Enqueues one new session (blocking until committed); returns its id.
  std::string Enqueue() {
    const int64_t n = next_session_.fetch_add(1);
    Router::EnqueueSessionCommand c;
    c.session_id = absl::StrCat("s-", n);
    c.customer_id = absl::StrCat("c-", n);
    c.channel = cv1::CHANNEL_CHAT;
    c.category = kCategories[n % config_.queues];
    c.language = "en";
    c.reason = rv1::ENQUEUE_REASON_ESCALATED;
    {
      absl::MutexLock lock(&mu_);
      enqueued_at_[c.session_id] = NowNanos();
    }
    absl::StatusOr<Router::EnqueueResult> r = router_->EnqueueSession(c);
    if (!r.ok()) Die("EnqueueSession", r.status());
    return c.session_id;
  }

  // Enqueues `n` sessions from `threads` threads (group commit batches them).
  void Fill(int n, int threads) {
    std::atomic<int> left{n};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        while (left.fetch_sub(1) > 0) Enqueue();
      });
    }
    for (auto& t : pool) t.join();
  }

  // Worker threads: accept each offer, resolve the session, and (with
  // `refill`) enqueue a new one.
  void StartWorkers(int n, bool refill) {
    refill_ = refill;
    for (int i = 0; i < n; ++i) workers_.emplace_back([this] { Work(); });
  }
  void StopWorkers() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    dispatcher_.reset();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }
  void StartDispatcher() {
    dispatcher_ = std::make_unique<routing::Dispatcher>(router_.get(), absl::Milliseconds(100));
  }

  // Measured window: counts and latencies between Open and Close.
  void OpenWindow() {
    decisions_ = 0;
    cycles_ = 0;
    latency_.Reset();
    measuring_ = true;
  }
  void CloseWindow() { measuring_ = false; }

  // Waits until `n` offers were made in the window, or `timeout`; returns
  // how many were.
  int64_t AwaitDecisions(int64_t n, absl::Duration timeout) {
    struct Arg {
      Bench* bench;
      int64_t n;
    } arg{this, n};
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](Arg* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->bench->mu_) {
                               return a->bench->decisions_.load() >= a->n;
                             },
                             &arg),
                         timeout);
    return decisions_.load();
  }

  // Waits until session `id` has had its offer; for the latency callers.
  void AwaitOffer(const std::string& id) {
    struct Arg {
      Bench* bench;
      const std::string* id;
    } arg{this, &id};
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Arg* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->bench->mu_) {
          return a->bench->offered_.count(*a->id) > 0;
        },
        &arg));
    offered_.erase(id);
  }

  void OnOffer(const rv1::Offer& offer, bool closed) override {
    if (closed) return;
    const int64_t now = NowNanos();
    absl::MutexLock lock(&mu_);
    const std::string& session = offer.entry().session_id();
    auto it = enqueued_at_.find(session);
    if (it != enqueued_at_.end()) {
      if (measuring_) {
        latency_.Record(now - it->second);
        ++decisions_;
      }
      enqueued_at_.erase(it);
    }
    work_.push_back({offer.agent_id(), offer.offer_id(), session});
    if (!refill_) offered_.insert({session, true});
  }

  int64_t decisions() const { return decisions_.load(); }
  int64_t cycles() const { return cycles_.load(); }
  const Histogram& latency() const { return latency_; }
  Router* router() { return router_.get(); }

 private:
  struct Job {
    std::string agent_id, offer_id, session_id;
  };

  void Work() {
    for (;;) {
      Job job;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Bench* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) {
              return b->stopping_ || !b->work_.empty();
            },
            this));
        if (stopping_) return;
        job = std::move(work_.front());
        work_.pop_front();
      }
      absl::StatusOr<rv1::Assignment> a = router_->AcceptOffer(job.agent_id, job.offer_id);
      if (!a.ok()) Die("AcceptOffer", a.status());
      absl::StatusOr<bool> c =
          router_->Cancel(rv1::ENTRY_KIND_SESSION, job.session_id, rv1::CANCEL_REASON_RESOLVED);
      if (!c.ok()) Die("Cancel", c.status());
      if (measuring_) ++cycles_;
      if (refill_) Enqueue();
    }
  }

  const Config config_;
  prometheus::Registry registry_;
  routing::RoutingMetrics metrics_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<routing::RoutingStore> store_;
  FakePresence presence_;
  FakeSessions sessions_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<routing::Dispatcher> dispatcher_;
  std::vector<std::thread> workers_;
  std::atomic<int64_t> next_session_{0};
  std::atomic<bool> refill_{false};
  std::atomic<bool> measuring_{false};
  std::atomic<int64_t> decisions_{0};
  std::atomic<int64_t> cycles_{0};
  Histogram latency_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Job> work_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> enqueued_at_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, bool> offered_ ABSL_GUARDED_BY(mu_);
};

double Us(int64_t ns) { return ns / 1000.0; }

std::string Percentiles(const Histogram& h) {
  return absl::StrFormat(
      "{\"count\":%d,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
      "\"max_us\":%.1f}",
      h.count(), Us(h.Percentile(0.5)), Us(h.Percentile(0.9)), Us(h.Percentile(0.99)),
      Us(h.Percentile(0.999)), Us(h.max()));
}

int Main(int argc, char** argv) {
  Config config;
  config::FlagSet flags("routing_benchmark");
  flags.Add("agents", &config.agents, "ONLINE agents");
  flags.Add("queued", &config.queued, "sessions queued before the dispatcher starts (kept that deep)");
  flags.Add("queues", &config.queues, "chat queues (one category each, 1..8)");
  flags.Add("capacity", &config.capacity, "chat capacity per agent");
  flags.Add("workers", &config.workers, "threads accepting and resolving offers");
  flags.Add("concurrent_offers", &config.concurrent_offers,
            "the router's offers decided at once (routing_server --concurrent_offers)");
  flags.Add("latency_callers", &config.latency_callers,
            "latency phase: closed-loop callers (0 skips the phase)");
  flags.Add("store", &config.store, "sqlite (real store on a temp file) or memory");
  flags.Add("warmup", &config.warmup, "not measured, at the start of each phase");
  flags.Add("duration", &config.duration, "measured window of each phase");
  flags.Add("label", &config.label, "a name for this run in the JSON");
  flags.Add("json_out", &config.json_out, "also write the JSON result to this file");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "routing_benchmark: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (config.agents < 1 || config.queued < 1 || config.queues < 1 || config.queues > 8 ||
      config.capacity < 1 || config.workers < 1 || config.latency_callers < 0 ||
      (config.store != "sqlite" && config.store != "memory")) {
    std::fprintf(stderr,
                 "routing_benchmark: counts must be at least 1 (queues 1..8), "
                 "--store sqlite or memory\n");
    return 2;
  }
  // As the routing server runs (libs/server): Debian's Abseil has the
  // mutex deadlock detector on, a global graph update on every lock.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  char dir_template[] = "/tmp/routing-bench.XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) {
    std::perror("routing_benchmark: mkdtemp");
    return 1;
  }
  const double window_s = absl::ToDoubleSeconds(config.duration);

  // Phase 1: saturation with `queued` sessions waiting.
  int64_t decisions = 0, cycles = 0;
  std::string queue_wait;
  double fill_s = 0;
  {
    Bench bench(config, absl::StrCat(dir, "/saturation.db"));
    const absl::Time start = absl::Now();
    bench.Fill(config.queued, 32);
    fill_s = absl::ToDoubleSeconds(absl::Now() - start);
    std::fprintf(stderr, "routing_benchmark: %d sessions queued in %.2f s; saturating\n",
                 config.queued, fill_s);
    bench.StartWorkers(config.workers, /*refill=*/true);
    bench.StartDispatcher();
    absl::SleepFor(config.warmup);
    bench.OpenWindow();
    absl::SleepFor(config.duration);
    bench.CloseWindow();
    decisions = bench.decisions();
    cycles = bench.cycles();
    queue_wait = Percentiles(bench.latency());
    std::fprintf(stderr,
                 "saturation: %.0f decisions/s, %.0f offer->accept->resolve cycles/s; "
                 "enqueue->offer (queue wait at depth %d) p50 %.1f ms p99 %.1f ms\n",
                 decisions / window_s, cycles / window_s, config.queued,
                 Us(bench.latency().Percentile(0.5)) / 1000,
                 Us(bench.latency().Percentile(0.99)) / 1000);
  }

  // Phase 2: the dispatcher alone. `queued` sessions wait, agents have room
  // for all of them and nobody accepts: the time to offer every one is the
  // rate of decisions by themselves, without the accepts and resolves (and
  // re-enqueues) that share the cores in phase 1.
  int64_t drained = 0;
  double drain_s = 0;
  {
    Config drain = config;
    // Twice the room needed: each agent serves two of the queues, and a
    // greedy assignment can leave the last few entries without room.
    drain.capacity =
        std::max(config.capacity, 2 * ((config.queued + config.agents - 1) / config.agents));
    Bench bench(drain, absl::StrCat(dir, "/drain.db"));
    bench.Fill(config.queued, 32);
    bench.OpenWindow();
    const absl::Time start = absl::Now();
    bench.StartDispatcher();
    // Below the offer timeout: expired offers would be made again.
    drained = bench.AwaitDecisions(config.queued, absl::Seconds(25));
    drain_s = absl::ToDoubleSeconds(absl::Now() - start);
    bench.CloseWindow();
    std::fprintf(stderr, "drain: %d of %d queued offered in %.2f s: %.0f decisions/s\n",
                 static_cast<int>(drained), config.queued, drain_s, drained / drain_s);
  }

  // Phase 3: enqueue-to-offer latency with agents free.
  std::string latency = "null";
  if (config.latency_callers > 0) {
    Bench bench(config, absl::StrCat(dir, "/latency.db"));
    bench.StartWorkers(config.workers, /*refill=*/false);
    bench.StartDispatcher();
    std::atomic<bool> stop{false};
    std::vector<std::thread> callers;
    for (int i = 0; i < config.latency_callers; ++i) {
      callers.emplace_back([&] {
        while (!stop) bench.AwaitOffer(bench.Enqueue());
      });
    }
    absl::SleepFor(config.warmup);
    bench.OpenWindow();
    absl::SleepFor(config.duration);
    bench.CloseWindow();
    stop = true;
    for (auto& t : callers) t.join();
    latency = Percentiles(bench.latency());
    std::fprintf(stderr, "latency: enqueue->offer p50 %.1f us p99 %.1f us over %d offers\n",
                 Us(bench.latency().Percentile(0.5)), Us(bench.latency().Percentile(0.99)),
                 static_cast<int>(bench.latency().count()));
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);

  const std::string json = absl::StrFormat(
      "{\"label\":\"%s\",\"decision\":\"one offer: pick the next entry, rank eligible agents, "
      "reserve capacity at presence, record the offer at sessions, commit\","
      "\"store\":\"%s\",\"agents\":%d,\"queued\":%d,\"queues\":%d,\"capacity\":%d,"
      "\"workers\":%d,\"window_s\":%.3f,\"fill_s\":%.3f,\"decisions\":%d,"
      "\"decisions_per_s\":%.1f,\"cycles_per_s\":%.1f,\"queue_wait\":%s,"
      "\"drain\":{\"offered\":%d,\"seconds\":%.3f,\"decisions_per_s\":%.1f},"
      "\"latency_callers\":%d,\"enqueue_to_offer\":%s}",
      config.label, config.store, config.agents, config.queued, config.queues, config.capacity,
      config.workers, window_s, fill_s, decisions, decisions / window_s, cycles / window_s,
      queue_wait, drained, drain_s, drained / drain_s, config.latency_callers, latency);
  std::printf("%s\n", json.c_str());
  if (!config.json_out.empty()) {
    std::ofstream out(config.json_out);
    out << json << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace switchboard::loadgen

int main(int argc, char** argv) { return switchboard::loadgen::Main(argc, argv); }
