#include "libs/host/host.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "libs/events/envelope.h"
#include "libs/events/postgres_outbox.h"
#include "libs/host/leader_lease.h"
#include "libs/log/log.h"
#include "libs/tls/certificates.h"
#include "libs/storage/postgres.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace switchboard::host {

namespace {

// The thread that makes the Host and later waits for SIGTERM/SIGINT in
// Serve (main's).
pthread_t waiting_thread;

// Runs on a thread that does not block the signal (gRPC starts its global
// threads before main can block anything): hands the signal to the waiting
// thread, which blocks it until Serve takes it, instead of letting the
// default action end the process mid-start or before the ordered stop.
// pthread_kill is async-signal-safe.
void ForwardToWaitingThread(int signal) { pthread_kill(waiting_thread, signal); }

// Prometheus figures of the SQLite group commit: how long a commit takes
// (the disk's health, and the floor under every write's latency) and how
// many writes share one (how much batching the load allows).
std::function<void(const storage::GroupCommitter::BatchReport&)> CommitMetrics(
    prometheus::Registry& registry) {
  prometheus::Histogram& seconds =
      prometheus::BuildHistogram()
          .Name("switchboard_storage_commit_seconds")
          .Help("Time of one group commit of the SQLite store: from taking the queued writes to "
                "the COMMIT returning, fsync included")
          .Register(registry)
          .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01,
                                                           0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  prometheus::Histogram& syncs =
      prometheus::BuildHistogram()
          .Name("switchboard_storage_sync_seconds")
          .Help("Time of the COMMIT statement alone of an fsynced group commit: writing its "
                "pages to the WAL and syncing it (the disk's share of "
                "switchboard_storage_commit_seconds; the rest is the writes' own work)")
          .Register(registry)
          .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01,
                                                           0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  prometheus::Family<prometheus::Counter>& commits =
      prometheus::BuildCounter()
          .Name("switchboard_storage_commits_total")
          .Help("Transactions the SQLite store committed; fsync=\"false\": batches made only of "
                "writes whose loss repeats harmless work (the relay's outbox deletes), left in "
                "the WAL for the next fsync")
          .Register(registry);
  prometheus::Counter& fsynced = commits.Add({{"fsync", "true"}});
  prometheus::Counter& deferred = commits.Add({{"fsync", "false"}});
  prometheus::Counter& writes =
      prometheus::BuildCounter()
          .Name("switchboard_storage_writes_total")
          .Help("Writes the SQLite store's group commit ran; divided by commits, the batch size")
          .Register(registry)
          .Add({});
  return [&seconds, &syncs, &fsynced, &deferred, &writes](
             const storage::GroupCommitter::BatchReport& batch) {
    seconds.Observe(absl::ToDoubleSeconds(batch.took));
    if (batch.commits > 0 && batch.fsynced) {
      syncs.Observe(absl::ToDoubleSeconds(batch.commit_took));
    }
    (batch.fsynced ? fsynced : deferred).Increment(batch.commits);
    writes.Increment(batch.writes);
  };
}

// Prometheus figures of the WAL checkpoints: how often the writer ran one
// so that the WAL starts over (the queued writes waited for it), how often
// checkpoints fail, and how long they take.
std::function<void(const storage::GroupCommitter::CheckpointReport&)> CheckpointMetrics(
    prometheus::Registry& registry) {
  prometheus::Family<prometheus::Counter>& checkpoints =
      prometheus::BuildCounter()
          .Name("switchboard_storage_checkpoints_total")
          .Help("WAL checkpoints of the SQLite store: by=\"background\" on their own thread, "
                "by=\"writer\" by the writer between two batches so that the WAL starts over; "
                "result=\"busy\": the other connection was checkpointing")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& seconds =
      prometheus::BuildHistogram()
          .Name("switchboard_storage_checkpoint_seconds")
          .Help("Time of one successful WAL checkpoint of the SQLite store (copying frames into "
                "the database file and syncing it); by=\"writer\": writes waited meanwhile")
          .Register(registry);
  struct By {
    prometheus::Counter* ok;
    prometheus::Counter* busy;
    prometheus::Counter* failed;
    prometheus::Histogram* seconds;
  };
  auto by = [&checkpoints, &seconds](const std::string& who) {
    return By{&checkpoints.Add({{"by", who}, {"result", "ok"}}),
              &checkpoints.Add({{"by", who}, {"result", "busy"}}),
              &checkpoints.Add({{"by", who}, {"result", "failed"}}),
              &seconds.Add({{"by", who}},
                           prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025, 0.05,
                                                                   0.1, 0.25, 0.5, 1, 2.5})};
  };
  const By background = by("background");
  const By writer = by("writer");
  return [background, writer](const storage::GroupCommitter::CheckpointReport& report) {
    const By& counters = report.by_writer ? writer : background;
    if (report.status.ok()) {
      counters.ok->Increment();
      counters.seconds->Observe(absl::ToDoubleSeconds(report.took));
    } else if (absl::IsUnavailable(report.status)) {
      counters.busy->Increment();
    } else {
      counters.failed->Increment();
    }
  };
}

}  // namespace

int64_t OneProcessLockKey(absl::string_view service) {
  std::string tag = absl::StrCat("sb_", service);
  tag.resize(8, '\0');
  uint64_t key = 0;
  for (char c : tag) key = key << 8 | static_cast<unsigned char>(c);
  return static_cast<int64_t>(key);
}

OpenDatabase Migrated(const std::vector<std::string>& migrations) {
  return [&migrations](const storage::Database::Options& options) {
    return storage::Database::OpenMigrated(options, migrations);
  };
}

Periodic::Periodic(absl::Duration interval, std::function<void()> task, bool run_first)
    : interval_(interval), task_(std::move(task)), run_first_(run_first) {}

void Periodic::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

void Periodic::Start() { thread_ = std::thread([this] { Loop(); }); }

void Periodic::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Periodic::Loop() {
  if (run_first_) task_();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](Periodic* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
                                 return p->woken_ || p->stopped_;
                               },
                               this),
                           interval_);
      woken_ = false;
      if (stopped_) return;
    }
    task_();
  }
}

Host::Host(ServiceInfo info)
    : info_(std::move(info)),
      flags_(info_.name),
      registry_(std::make_shared<prometheus::Registry>()) {
  server::BlockTerminationSignals();
  waiting_thread = pthread_self();
  struct sigaction forward = {};
  forward.sa_handler = ForwardToWaitingThread;
  sigemptyset(&forward.sa_mask);
  sigaction(SIGTERM, &forward, nullptr);
  sigaction(SIGINT, &forward, nullptr);
  server_.service_name = info_.name;
  server_.port = info_.port;
  server_.metrics_port = info_.metrics_port;
  server_.grpc_service_names = {info_.grpc_service_name};
  server::AddServerFlags(flags_, &server_);
  flags_.Add("data_dir", &data_dir_, info_.data_dir_help);
  flags_.Add("database", &database_flag_,
             "where the state is kept: empty for the SQLite file DATA_DIR/NAME.db, or a "
             "postgresql:// URI of a database that several replicas share (services with a "
             "PostgreSQL store only)");
  auth::AddKeyFlags(flags_, &key_options_, info_.calls_peers);
  events::AddEventSinkFlags(flags_, &events_);
  if (info_.calls_peers) client::AddClientTlsFlags(flags_, &peer_tls_, "peer_");
  flags_.Add("advertise_address", &advertise_address_,
             "host:port where this process's standbys reach it to forward calls while it "
             "leads on PostgreSQL (presence, sessions, routing); empty: --bind_address, or if "
             "that is any address, the IP PostgreSQL sees this process connect from, with the "
             "gRPC port");
}

Host::~Host() {
  StopAll();
  while (!parts_.empty()) parts_.pop_back();
}

int Host::BadFlags(absl::string_view message) {
  std::fprintf(stderr, "%s: %s\n", info_.name.c_str(), std::string(message).c_str());
  return 2;
}

int Host::FailStep(absl::string_view step, const absl::Status& status) {
  log::Error("startup_failed",
             {{"service", info_.name}, {"step", step}, {"error", status.ToString()}});
  return 1;
}

int Host::Fail(absl::string_view step, const absl::Status& status) {
  return FailStep(step, status);
}

std::optional<int> Host::ParseFlags(int argc, char** argv,
                                    const std::function<absl::Status()>& check) {
  if (absl::Status s = flags_.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    return BadFlags(s.message());
  }
  if (absl::Status s = server::ApplyServerOptions(server_); !s.ok()) return BadFlags(s.message());
  if (info_.calls_peers) {
    absl::StatusOr<client::ChannelSecurity> security =
        client::ChannelSecurity::Create(peer_tls_, "peer_");
    if (!security.ok()) return BadFlags(security.status().message());
    peer_security_ = *std::move(security);
  }
  if (!database_flag_.empty() && !on_postgres()) {
    return BadFlags("--database: leave it empty (the SQLite file in --data_dir) or give a "
                    "postgresql:// URI");
  }
  if (check) {
    if (absl::Status s = check(); !s.ok()) return BadFlags(s.message());
  }
  return std::nullopt;
}

std::optional<int> Host::OpenKeys() {
  std::error_code error;
  std::filesystem::create_directories(data_dir_, error);
  if (error) return FailStep("data_dir", absl::UnavailableError(error.message()));
  absl::StatusOr<auth::ServiceKeys> keys =
      auth::LoadServiceKeys(key_options_, info_.name, data_dir_, info_.calls_peers);
  if (!keys.ok()) return FailStep("keys", keys.status());
  keys_ = *std::move(keys);
  return std::nullopt;
}

bool Host::on_postgres() const {
  return absl::StartsWith(database_flag_, "postgresql://") ||
         absl::StartsWith(database_flag_, "postgres://");
}

std::optional<int> Host::OpenSink() {
  absl::StatusOr<std::unique_ptr<events::Sink>> sink =
      events::OpenEventSink(events_, info_.name, data_dir_);
  if (!sink.ok()) return FailStep("event_sink", sink.status());
  sink_ = *std::move(sink);
  return std::nullopt;
}

absl::StatusOr<events::Sink*> Host::RelaySink(const StoreOptions& options) {
  if (options.relay_sink) return options.relay_sink(sink_.get());
  return sink_.get();
}

namespace {

// Who this process is, in the lease and the logs: hostname:pid (a pod's
// hostname is its name).
std::string HolderName() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, ":", getpid());
}

}  // namespace

std::optional<int> Host::BecomeLeader() {
  absl::StatusOr<std::unique_ptr<storage::PostgresConnection>> db =
      storage::PostgresConnection::Open(database_uri_);
  if (!db.ok()) return FailStep("open_database", db.status());
  absl::StatusOr<std::unique_ptr<metrics::MetricsExposer>> exposer =
      metrics::MetricsExposer::Start(server_.bind_address, server_.metrics_port, registry_);
  if (!exposer.ok()) return FailStep("listen", exposer.status());
  metrics_exposer_ = *std::move(exposer);
  leader_gauge_ =
      &prometheus::BuildGauge()
          .Name("switchboard_leader")
          .Help("1 while this process is its service's leader on the PostgreSQL database and "
                "serves, 0 while it waits as a standby, and again once a stopping leader has "
                "released its lock")
          .Register(*registry_)
          .Add({{"service", info_.name}});
  const int64_t key = OneProcessLockKey(info_.name);
  bool waiting = false;
  while (true) {
    absl::StatusOr<storage::PostgresRows> locked =
        (*db)->Query("SELECT pg_try_advisory_lock($1)", {key});
    if (locked.ok() && locked->Text(0, 0) == "t") break;
    // A first failure is most likely the configuration; later ones (the
    // database restarting) are waited out like the leader.
    if (!locked.ok() && !waiting) return FailStep("open_database", locked.status());
    const bool first_wait = !waiting;
    const int forwarding_port = first_wait ? StartForwarding() : 0;
    if (forwarder_ != nullptr) forwarder_->Follow(LeaderAddress(**db).value_or(""));
    if (first_wait) {
      waiting = true;
      absl::StatusOr<std::string> holder = LeaseHolder(**db);
      log::Info("standby", {{"service", info_.name},
                            {"holder", holder.ok() ? *holder : "unknown"},
                            {"metrics_port", metrics_exposer_->port()},
                            {"forwarding_port", forwarding_port}});
    }
    if (std::optional<std::string> signal =
            server::WaitForTerminationSignal(absl::Milliseconds(200))) {
      log::Info("shutdown_requested", {{"service", info_.name}, {"signal", *signal}});
      StopForwarding();
      return 0;
    }
  }
  StopForwarding();
  seen_by_database_ = AddressSeenByDatabase(**db).value_or("");
  // Only the lock's holder creates and bumps the lease: no race.
  if (absl::Status s = CreateLeaderLease(**db); !s.ok()) return FailStep("open_database", s);
  const std::string holder = HolderName();
  absl::StatusOr<int64_t> epoch = TakeLeaderLease(**db, holder);
  if (!epoch.ok()) return FailStep("open_database", epoch.status());
  epoch_ = *epoch;
  leader_lock_ = *std::move(db);
  leader_gauge_->Set(1);
  log::Info("leader_elected", {{"service", info_.name}, {"epoch", epoch_}, {"holder", holder}});
  return std::nullopt;
}

namespace {

// Drops the builder's plugins (reflection's, linked in, registers itself in
// every builder), so that a standby forwards those calls too.
class WithoutPlugins : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

// How a standby with a TLS port dials its leader: as one more client of
// the service, presenting the service's own certificate (which serves as a
// client certificate too) and checking the leader's against
// --tls_client_ca_file (the CA that signs the service's certificates). The
// leader serves the same certificate but is dialled at its pod's address,
// which the certificate does not name, so the name checked is the first DNS
// name of this process's own certificate.
absl::StatusOr<client::ChannelSecurity> TlsToLeader(const server::ServerTlsOptions& tls) {
  if (tls.client_ca_file.empty()) {
    return absl::FailedPreconditionError(
        "the gRPC port serves TLS without --tls_client_ca_file, so this standby cannot check "
        "the leader's certificate; it does not listen until it leads");
  }
  absl::StatusOr<tls::CertificateInfo> own =
      tls::CheckKeyPair(tls.cert_file, "--tls_cert_file", tls.key_file, "--tls_key_file",
                        absl::Now());
  if (!own.ok()) return own.status();
  if (own->dns_names.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--tls_cert_file (", tls.cert_file, ") names no DNS name to check the leader's "
        "certificate against; this standby does not listen until it leads"));
  }
  client::ClientTlsOptions options;
  options.ca_file = tls.client_ca_file;
  options.cert_file = tls.cert_file;
  options.key_file = tls.key_file;
  options.server_name = own->dns_names.front();
  options.reload_interval = tls.reload_interval;
  return client::ChannelSecurity::Create(options, "tls_");
}

}  // namespace

int Host::StartForwarding() {
  auto not_forwarding = [this](absl::string_view why) {
    log::Warning("standby_not_forwarding", {{"service", info_.name}, {"reason", why}});
    forwarder_.reset();
    forward_server_.reset();
    return 0;
  };
  client::ChannelSecurity to_leader;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (server_.tls.enabled()) {
    absl::StatusOr<client::ChannelSecurity> tls = TlsToLeader(server_.tls);
    if (!tls.ok()) return not_forwarding(tls.status().message());
    to_leader = *std::move(tls);
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> serving =
        server::MakeServerCredentials(server_.tls, info_.name);
    if (!serving.ok()) return not_forwarding(serving.status().message());
    credentials = *std::move(serving);
  }
  forwarder_ = std::make_unique<LeaderForwarder>(info_.name, *registry_, std::move(to_leader));
  // Health and reflection are the leader's, forwarded like any call.
  grpc::EnableDefaultHealthCheckService(false);
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<WithoutPlugins>());
  int port = 0;
  server::ConfigureBuilder(server_, credentials,
                           absl::StrCat("switchboard-", info_.name, "-standby"), builder, &port);
  builder.RegisterCallbackGenericService(forwarder_.get());
  forward_server_ = builder.BuildAndStart();
  if (forward_server_ == nullptr || port == 0) {
    return not_forwarding(absl::StrCat("cannot listen on ", server_.bind_address, ":",
                                       server_.port));
  }
  return port;
}

void Host::StopForwarding() {
  if (forward_server_ == nullptr) return;
  forwarder_->Stop();
  // gRPC's Shutdown waits for its clients to drop their connections, up to
  // its deadline, however long that is: so wait for the forwarded calls
  // here (they end UNAVAILABLE), then give Shutdown a moment only. A call
  // that arrives while it shuts down ends CANCELLED, which is why clients
  // balance by health (client::kBalancedServiceConfig) and send a standby
  // nothing once its leader is gone.
  const bool idle = forwarder_->WaitUntilIdle(absl::Seconds(2));
  forward_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  forward_server_.reset();
  log::Info("forwarding_stopped", {{"service", info_.name},
                                   {"calls_forwarded", forwarder_->forwarded()},
                                   {"calls_left", !idle}});
  forwarder_.reset();
}

void Host::PublishAddress(int port) {
  std::string address = advertise_address_;
  if (address.empty()) {
    const std::string& bound = server_.bind_address;
    const bool any = bound.empty() || bound == "0.0.0.0" || bound == "::" || bound == "[::]";
    std::string host = !any                        ? bound
                       : !seen_by_database_.empty() ? seen_by_database_
                                                    : std::string("127.0.0.1");
    if (absl::StrContains(host, ':') && !absl::StartsWith(host, "[")) {
      host = absl::StrCat("[", host, "]");
    }
    address = absl::StrCat(host, ":", port);
  }
  absl::StatusOr<std::unique_ptr<storage::PostgresConnection>> db =
      storage::PostgresConnection::Open(database_uri_);
  absl::Status published =
      db.ok() ? PublishLeaderAddress(**db, epoch_, address) : db.status();
  if (!published.ok()) {
    log::Warning("leader_address_not_published",
                 {{"service", info_.name},
                  {"error", published.ToString()},
                  {"note", "standbys answer UNAVAILABLE instead of forwarding"}});
    return;
  }
  log::Info("leader_address_published", {{"service", info_.name}, {"address", address}});
}

void Host::KeepLeadership() {
  absl::StatusOr<LeaseLook> look = LookAtLease(*leader_lock_, OneProcessLockKey(info_.name));
  switch (Judge(look, epoch_)) {
    case Leadership::kKept:
      break;
    case Leadership::kRetaken:
      log::Warning("leader_lock_retaken", {{"service", info_.name}, {"epoch", epoch_}});
      break;
    case Leadership::kUnknown:
      if (!lease_unknown_) {
        log::Warning("leadership_unknown", {{"service", info_.name},
                                            {"epoch", epoch_},
                                            {"error", look.status().ToString()}});
      }
      lease_unknown_ = true;
      return;
    case Leadership::kLost:
      log::Error("leadership_lost", {{"service", info_.name},
                                     {"epoch", epoch_},
                                     {"lease_epoch", look->epoch},
                                     {"note", "another process took over; exiting"}});
      // At once, without the ordered stop: this process must not act any
      // more. Nothing acknowledged is lost (a write is answered only once
      // committed, and every batch is fenced by the epoch, so none of ours
      // commits after the takeover); the log line went out in one write(2).
      std::_Exit(1);
  }
  lease_unknown_ = false;
}

std::optional<int> Host::OpenStore(StoreOptions options) {
  if (on_postgres()) return OpenPostgres(options);
  database_path_ = absl::StrCat(data_dir_, "/", info_.name, ".db");
  absl::StatusOr<std::unique_ptr<storage::Database>> db = options.open({database_path_});
  if (!db.ok()) return FailStep("open_database", db.status());
  database_ = *std::move(db);
  absl::StatusOr<std::unique_ptr<storage::Database>> relay_reader = OpenReader();
  if (!relay_reader.ok()) return FailStep("open_database", relay_reader.status());
  if (auto exit = OpenSink()) return exit;
  absl::StatusOr<std::unique_ptr<storage::Database>> checkpoints = OpenReader();
  if (!checkpoints.ok()) return FailStep("open_database", checkpoints.status());
  checkpoints_ = *std::move(checkpoints);
  storage::GroupCommitter::Options commits = options.commits;
  commits.on_batch = CommitMetrics(*registry_);
  commits.checkpoints = checkpoints_.get();
  commits.on_checkpoint = CheckpointMetrics(*registry_);
  commits.min_commit_interval = kMinCommitInterval;
  committer_ = std::make_unique<storage::GroupCommitter>(database_.get(), commits);
  absl::StatusOr<events::Sink*> relay_sink = RelaySink(options);
  if (!relay_sink.ok()) return FailStep("event_sink", relay_sink.status());
  relay_ = std::make_unique<events::Relay>(*std::move(relay_reader), committer_.get(),
                                           *relay_sink, *registry_, events::Relay::Options());
  return std::nullopt;
}

std::optional<int> Host::OpenPostgres(const StoreOptions& options) {
  if (options.postgres_migrations == nullptr) {
    // The URI is not repeated: it may hold a password.
    return BadFlags(absl::StrCat("--database=postgresql://...: the ", info_.name,
                                 " service has no PostgreSQL store yet; it keeps its state in "
                                 "SQLite only (leave --database empty)"));
  }
  // Each service in a schema of its own: the services may share a database.
  absl::StatusOr<std::string> in_schema = storage::WithSchema(
      database_flag_, info_.name,
      options.one_process ? VanishedLeaderSettings()
                          : std::vector<std::pair<std::string, std::string>>());
  if (!in_schema.ok()) return FailStep("open_database", in_schema.status());
  database_uri_ = *std::move(in_schema);
  {
    absl::StatusOr<std::unique_ptr<storage::PostgresConnection>> db =
        storage::PostgresConnection::Open(database_flag_);
    if (!db.ok()) return FailStep("open_database", db.status());
    if (absl::Status s = storage::CreateSchema(**db, info_.name); !s.ok()) {
      return FailStep("open_database", s);
    }
  }
  // A standby waits here, before it migrates, loads or listens.
  if (options.one_process) {
    if (auto exit = BecomeLeader()) return exit;
  }
  // Every replica migrates at start; PostgresConnection::Migrate serializes
  // them with an advisory lock. The migrating connection then becomes the
  // ordered writer's; a store may open connections of its own besides.
  absl::StatusOr<std::unique_ptr<storage::PostgresConnection>> migrated =
      storage::PostgresConnection::OpenMigrated(database_uri_, *options.postgres_migrations);
  if (!migrated.ok()) return FailStep("open_database", migrated.status());
  absl::StatusOr<std::unique_ptr<storage::PostgresConnection>> relay_connection =
      storage::PostgresConnection::Open(database_uri_);
  if (!relay_connection.ok()) return FailStep("open_database", relay_connection.status());
  if (auto exit = OpenSink()) return exit;
  absl::StatusOr<events::Sink*> relay_sink = RelaySink(options);
  if (!relay_sink.ok()) return FailStep("event_sink", relay_sink.status());
  relay_ = std::make_unique<events::Relay>(
      std::make_unique<events::PostgresOutboxStore>(*std::move(relay_connection)), *relay_sink,
      *registry_, events::Relay::Options());
  storage::PostgresGroupCommitter::Options commits;
  commits.max_batch = options.commits.max_batch;
  commits.max_queue = options.commits.max_queue;
  if (options.one_process) commits.fence = LeaseFence(info_.name, epoch_);
  postgres_committer_ =
      std::make_unique<storage::PostgresGroupCommitter>(*std::move(migrated), commits);
  if (options.one_process) {
    keeper_.reset(new Periodic(options.leader_check_interval, [this] { KeepLeadership(); },
                               /*run_first=*/false));
    keeper_->Start();
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<storage::Database>> Host::OpenReader() const {
  return storage::Database::Open({database_path_});
}

std::function<void()> Host::relay_notifier() {
  events::Relay* relay = relay_.get();
  return [relay] { relay->Notify(); };
}

std::string Host::topic() const { return events::TopicFor(events_.topic_prefix, info_.name); }

server::BlockingPool& Host::pool() {
  if (pool_ == nullptr) {
    pool_ = std::make_unique<server::BlockingPool>(server_.worker_threads,
                                                   server_.max_queued_calls);
  }
  return *pool_;
}

Periodic& Host::Every(absl::Duration interval, std::function<void()> task, bool run_first) {
  periodic_.push_back(
      std::unique_ptr<Periodic>(new Periodic(interval, std::move(task), run_first)));
  return *periodic_.back();
}

int Host::Serve(const std::vector<grpc::Service*>& services) {
  absl::StatusOr<std::unique_ptr<server::Server>> server =
      server::Server::Start(server_, services, registry_, std::move(metrics_exposer_));
  if (!server.ok()) return FailStep("listen", server.status());
  if (epoch_ > 0) PublishAddress((*server)->port());
  for (std::function<void()>& hook : drain_hooks_) (*server)->OnDrain(std::move(hook));
  for (const std::function<void()>& hook : serving_hooks_) hook();
  for (const std::unique_ptr<Periodic>& task : periodic_) task->Start();
  serving_ = true;

  const std::string signal = server::WaitForTerminationSignal();
  log::Info("shutdown_requested", {{"service", info_.name}, {"signal", signal}});
  (*server)->Shutdown();
  StopAll();
  log::Info("shutdown_complete", {{"service", info_.name}});
  return 0;
}

void Host::StopAll() {
  if (stopped_) return;
  stopped_ = true;
  for (const std::unique_ptr<Periodic>& task : periodic_) task->Stop();
  // Hooks of parts that never started (the server did not come up) are
  // not run.
  if (serving_) {
    for (const std::function<void()>& hook : stop_hooks_) hook();
  }
  if (pool_ != nullptr) pool_->Stop();
  // At a clean stop the relay publishes what is left; after a failed start
  // it leaves the rows for the next run rather than hold the exit up.
  if (relay_ != nullptr) relay_->Stop(serving_ ? kRelayFlushDeadline : absl::ZeroDuration());
  if (committer_ != nullptr) committer_->Stop();
  if (postgres_committer_ != nullptr) postgres_committer_->Stop();
  // Until the end the leader checks it still leads (its lock goes last).
  if (keeper_ != nullptr) keeper_->Stop();
  // Nothing writes any more: a standby may take over now rather than when
  // the process ends, which the server's metrics endpoint (civetweb stops
  // its listener within 1 to 2 s) and the parts' destructors would delay.
  if (leader_lock_ != nullptr) {
    leader_lock_.reset();
    leader_gauge_->Set(0);
    log::Info("leadership_released", {{"service", info_.name}, {"epoch", epoch_}});
  }
}

}  // namespace switchboard::host
