#pragma once

// The service host: what every Switchboard server's main() did the same way,
// once. It registers the shared flags, opens the data folder, the keys, the
// store (the SQLite file and its group committer, or a PostgreSQL database
// with --database), the event sink and the outbox relay, serves the gRPC
// services (TLS, metrics, health and reflection come with
// libs/server), runs the service's periodic work, and on SIGTERM or SIGINT
// stops everything in order: drain the server, stop the service's own work,
// the RPC workers, flush the relay, stop the committer, close the database.
// A main() is then a short list of its own parts:
//
//   int main(int argc, char** argv) {
//     host::Host host({"presence", v1::PresenceService::service_full_name(), 7104,
//                      9104, "folder of presence.db, ..."});   // first: blocks signals
//     Config config;
//     AddFlags(host.flags(), &config);
//     if (auto exit = host.ParseFlags(argc, argv, [&] { return Check(config); })) return *exit;
//     if (auto exit = host.OpenKeys()) return *exit;
//     if (auto exit = host.OpenStore({host::Migrated(PresenceMigrations())})) return *exit;
//     auto& store = host.Make<SqlitePresenceStore>(&host.committer(), host.topic(),
//                                                  host.relay_notifier());
//     ... the domain logic and its gRPC service, built with host.Make ...
//     host.Every(config.sweep_interval, [&] { presence.ExpireDue(); });
//     return host.Serve({&service});
//   }
//
// Exit codes: 0 after --help or a clean stop; 2 for bad flags (printed to
// stderr as "NAME: message"); 1 when a start step fails (logged as
// startup_failed with the service, the step and the error).
//
// Threading: one thread (main's) calls the Host; periodic tasks run on
// threads of their own. Not for use from several threads.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/service_keys.h"
#include "libs/client/tls.h"
#include "libs/config/flags.h"
#include "libs/events/event_sink.h"
#include "libs/events/relay.h"
#include "libs/events/sink.h"
#include "libs/host/leader_forwarder.h"
#include "libs/metrics/exposer.h"
#include "libs/server/blocking_pool.h"
#include "libs/server/server.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/postgres_group_commit.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace switchboard::host {

// Who the service is.
struct ServiceInfo {
  // Short name ("presence"): logs, the FlagSet (and so the environment
  // variables' prefix), DATA_DIR/NAME.db, the topic, the keys' audience.
  std::string name;
  // Full name of the gRPC service ("switchboard.presence.v1.PresenceService").
  std::string grpc_service_name;
  // Default gRPC and /metrics ports.
  int port = 0;
  int metrics_port = 0;
  // Help of --data_dir: what the folder holds.
  std::string data_dir_help;
  // The service calls others: it signs service tokens
  // (--service_signing_key) and has the --peer_tls_* flags.
  bool calls_peers = false;
};

// Opens the store's writing connection, migrated.
using OpenDatabase = std::function<absl::StatusOr<std::unique_ptr<storage::Database>>(
    const storage::Database::Options&)>;
// Database::OpenMigrated with `migrations` (which must outlive the call).
OpenDatabase Migrated(const std::vector<std::string>& migrations);

// Every service's GroupCommitter::Options::min_commit_interval: under load
// at most 400 commits a second, each fsync shared by the writes of 2.5 ms.
inline constexpr absl::Duration kMinCommitInterval = absl::Microseconds(2500);

struct StoreOptions {
  // Opens the SQLite file (the default backend).
  OpenDatabase open;
  storage::GroupCommitter::Options commits;
  // The sink the relay publishes to, given the configured one; unset: the
  // configured one. (Identity routes code-delivery requests elsewhere.)
  std::function<absl::StatusOr<events::Sink*>(events::Sink* configured)> relay_sink;
  // The migrations of the service's PostgreSQL store (which must outlive
  // the call); null when the service has none yet: then a postgresql://
  // --database is refused at start rather than silently ignored.
  const std::vector<std::string>* postgres_migrations = nullptr;
  // On PostgreSQL, one serving process of the service per database, the
  // leader, and any number of hot standbys: for services that decide in
  // memory loaded at start, where a second serving process would act on its
  // own stale copy. OpenStore then takes a session advisory lock (its key
  // from the service's name, OneProcessLockKey) on a connection of its own.
  // While another process holds it, OpenStore waits as a standby: it logs
  // `standby` once, serves /metrics (switchboard_leader 0), passes every
  // gRPC call on its port to the leader (LeaderForwarder, at the address
  // the leader published, --advertise_address), tries the lock again every
  // 200 ms, and returns 0 on SIGTERM or SIGINT.
  // Once it has the lock, it bumps the epoch of the schema's leader_lease
  // row (logs `leader_elected`; leader_lease.h), fences every batch of
  // postgres_committer() with that epoch, and from then on a keeper checks
  // every leader_check_interval that the lock and the epoch are still
  // its own, and ends the process (exit 1, `leadership_lost`) when another
  // process has taken over. Its connections carry VanishedLeaderSettings,
  // so the server drops a vanished node's lock within seconds.
  // docs/scaling.md.
  bool one_process = false;
  // How often the leader's keeper looks (one_process): about the longest a
  // deposed leader that reaches the database runs on, its writes failing.
  absl::Duration leader_check_interval = absl::Seconds(1);
};

// The advisory lock key of StoreOptions::one_process: "sb_" and the
// service's name, cut or padded with NULs to 8 bytes, read as one big-endian
// number ("sb_sessi" for sessions, "sb_routi" for routing).
int64_t OneProcessLockKey(absl::string_view service);

// Work repeated on a thread of its own while the server serves.
class Periodic {
 public:
  // Runs the task at once (e.g. after a commit that owes a peer a call),
  // instead of at the end of the current interval.
  void Wake();

 private:
  friend class Host;
  Periodic(absl::Duration interval, std::function<void()> task, bool run_first);
  void Start();
  void Stop();
  void Loop();

  const absl::Duration interval_;
  const std::function<void()> task_;
  const bool run_first_;
  absl::Mutex mu_;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

class Host {
 public:
  // Blocks SIGTERM and SIGINT (server::BlockTerminationSignals) in this
  // thread and the ones it starts, and forwards them to this thread from
  // threads started earlier (gRPC's global ones), so that a signal at any
  // time, even mid-start, leads to Serve's ordered stop (or, before Serve,
  // waits for it). Make the Host first in main(), on the thread that calls
  // Serve.
  explicit Host(ServiceInfo info);
  // Stops what still runs, in the order Serve does, then destroys the parts
  // made with Make, newest first, and then the store.
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // For the service's own flags, registered before ParseFlags. The shared
  // ones are already in: the server's, --data_dir, --database, the keys',
  // the event sink's and, for a service that calls peers, --peer_tls_*.
  config::FlagSet& flags() { return flags_; }
  server::ServerOptions& server_options() { return server_; }
  const events::EventSinkOptions& event_options() const { return events_; }
  const auth::KeyOptions& key_options() const { return key_options_; }

  // Parses the flags, checks the server's options (arming --fault_point)
  // and the peer TLS files, then runs `check` for the service's own (its
  // error's message is printed). nullopt: carry on; else the exit code.
  std::optional<int> ParseFlags(int argc, char** argv,
                                const std::function<absl::Status()>& check = nullptr);

  // Makes the data folder and loads the keys (libs/auth LoadServiceKeys).
  std::optional<int> OpenKeys();

  // Opens the store, the event sink and the outbox relay. By default
  // (--database empty): the database file DATA_DIR/NAME.db with
  // `options.open`, a reading connection for the relay and the
  // GroupCommitter (whose WAL checkpoints run on a connection and thread of
  // their own, off the writer's commits). With --database=postgresql://...: migrates that
  // database with `options.postgres_migrations` (exit 2 if the service has
  // none), gives the relay a PostgreSQL connection of its own, so replicas
  // on one database share its outbox, and keeps the migrating connection
  // for postgres_committer() (max_batch and max_queue from
  // `options.commits`). With `options.one_process` it first waits as a
  // standby while another process of the service leads, and returns 0 if
  // SIGTERM or SIGINT comes meanwhile.
  std::optional<int> OpenStore(StoreOptions options);

  // After OpenKeys.
  const std::string& data_dir() const { return data_dir_; }
  const auth::ServiceKeys& keys() const { return keys_; }
  // After ParseFlags; plaintext unless the --peer_tls_* flags are set.
  const client::ChannelSecurity& peer_security() const { return peer_security_; }
  // After ParseFlags: --database names a PostgreSQL database (the store is
  // then the service's PostgreSQL one, on database_uri()).
  bool on_postgres() const;
  // After OpenStore on PostgreSQL: --database with the service's own schema
  // (named after the service) as the search path, so that services sharing
  // one database each have their own tables, migrations and outbox. Open
  // every connection of the store with it.
  const std::string& database_uri() const { return database_uri_; }
  // After OpenStore; on SQLite only (database_path, OpenReader, committer).
  const std::string& database_path() const { return database_path_; }
  // Another connection to the store's file, e.g. for reads.
  absl::StatusOr<std::unique_ptr<storage::Database>> OpenReader() const;
  storage::GroupCommitter& committer() { return *committer_; }
  // After OpenStore, on PostgreSQL only: the ordered writer (GroupCommitter's
  // contract on one connection) for stores that commit in call order;
  // stopped where committer() is.
  storage::PostgresGroupCommitter& postgres_committer() { return *postgres_committer_; }
  events::Relay& relay() { return *relay_; }
  // Tells the relay that the outbox has new rows (a store's after_commit).
  std::function<void()> relay_notifier();
  // TOPIC_PREFIX + NAME + ".v1".
  std::string topic() const;
  // Every metric of the process, served on /metrics.
  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }
  // The RPC workers (--worker_threads, --max_queued_calls), made on first use.
  server::BlockingPool& pool();

  // Makes a part of the service that lives until the host stops: parts are
  // destroyed after the server, the workers, the relay and the committer
  // have stopped, newest first.
  template <typename T, typename... Args>
  T& Make(Args&&... args) {
    auto part = std::make_shared<T>(std::forward<Args>(args)...);
    T& ref = *part;
    parts_.push_back(std::move(part));
    return ref;
  }

  // Logs startup_failed for the service's own step and returns the exit
  // code (1).
  int Fail(absl::string_view step, const absl::Status& status);

  // Runs `task` on a thread of its own every `interval` while serving: the
  // first run after one interval, or at once with `run_first`.
  Periodic& Every(absl::Duration interval, std::function<void()> task, bool run_first = false);
  // Runs `hook` once the server is up (e.g. start watching a peer).
  void OnServing(std::function<void()> hook) { serving_hooks_.push_back(std::move(hook)); }
  // Runs `hook` when draining starts, before gRPC's own shutdown (e.g. end
  // open streams with a clear status).
  void OnDrain(std::function<void()> hook) { drain_hooks_.push_back(std::move(hook)); }
  // Runs `hook` once the server has drained and the periodic tasks have
  // stopped, before the workers stop (e.g. stop the service's threads), in
  // the order given.
  void OnStop(std::function<void()> hook) { stop_hooks_.push_back(std::move(hook)); }

  // Starts the server for `services` (owned by the parts), runs the serving
  // hooks and the periodic tasks, waits for SIGTERM or SIGINT, then stops,
  // in order: the server drains (drain hooks, then in-flight calls get
  // --drain_deadline), periodic tasks, stop hooks, the workers, the relay
  // (flushing the outbox for up to relay_flush_deadline), the committer,
  // then a leader's lock (StoreOptions::one_process), so that a standby
  // takes over while this process still ends. Returns the exit code: 0,
  // or 1 when the server could not start.
  int Serve(const std::vector<grpc::Service*>& services);

  // How long the relay may take to publish what is left in the outbox at
  // stop.
  static constexpr absl::Duration kRelayFlushDeadline = absl::Seconds(5);

 private:
  int FailStep(absl::string_view step, const absl::Status& status);
  int BadFlags(absl::string_view message);
  // Opens the configured event sink.
  std::optional<int> OpenSink();
  // The sink the relay publishes to (options.relay_sink's choice).
  absl::StatusOr<events::Sink*> RelaySink(const StoreOptions& options);
  // OpenStore on PostgreSQL: the schema, the sink, the relay's connection.
  std::optional<int> OpenPostgres(const StoreOptions& options);
  // StoreOptions::one_process: waits as a standby until it takes the lock,
  // then takes the lease (epoch_). nullopt: leading; else the exit code (0
  // on SIGTERM/SIGINT while waiting).
  std::optional<int> BecomeLeader();
  // The keeper's look at the lease (ends the process when deposed).
  void KeepLeadership();
  // A standby's gRPC port: every call passed on to the leader
  // (LeaderForwarder). Returns the port, 0 if it does not forward (logged).
  int StartForwarding();
  // Ends the forwarding (in-flight calls end UNAVAILABLE) and frees the port.
  void StopForwarding();
  // Tells the standbys where this leader serves (leader_lease's address).
  void PublishAddress(int port);
  // Everything Serve stops after the server, in order. Idempotent.
  void StopAll();

  const ServiceInfo info_;
  config::FlagSet flags_;
  server::ServerOptions server_;
  std::string data_dir_ = "data";
  // --database: "" for SQLite, or a postgresql:// URI.
  std::string database_flag_;
  // database_flag_ in the service's schema (database_uri()).
  std::string database_uri_;
  auth::KeyOptions key_options_;
  events::EventSinkOptions events_;
  client::ClientTlsOptions peer_tls_;
  client::ChannelSecurity peer_security_;

  auth::ServiceKeys keys_;
  std::string database_path_;
  // StoreOptions::one_process's lock, released with this connection at the
  // end of the ordered stop (StopAll), once nothing writes; the keeper's
  // connection while leading.
  std::unique_ptr<storage::PostgresConnection> leader_lock_;
  // The leader's epoch (StoreOptions::one_process).
  int64_t epoch_ = 0;
  // switchboard_leader: 1 from the election until the lock is released.
  prometheus::Gauge* leader_gauge_ = nullptr;
  // --advertise_address, and the address PostgreSQL saw the lock's
  // connection come from (the default's host when bound to any address).
  std::string advertise_address_;
  std::string seen_by_database_;
  // While a standby: what it forwards calls with.
  std::unique_ptr<LeaderForwarder> forwarder_;
  std::unique_ptr<grpc::Server> forward_server_;
  std::unique_ptr<Periodic> keeper_;
  // The keeper could not look at the lease last time (logged once).
  bool lease_unknown_ = false;
  std::shared_ptr<prometheus::Registry> registry_;
  // /metrics, started before the server when the process waits as a
  // standby first; the server serves it on.
  std::unique_ptr<metrics::MetricsExposer> metrics_exposer_;
  std::unique_ptr<storage::Database> database_;
  // The committer's checkpoint connection (GroupCommitter::Options).
  std::unique_ptr<storage::Database> checkpoints_;
  std::unique_ptr<events::Sink> sink_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<storage::PostgresGroupCommitter> postgres_committer_;
  std::unique_ptr<events::Relay> relay_;
  std::unique_ptr<server::BlockingPool> pool_;
  // The service's parts; destroyed first (newest first).
  std::vector<std::shared_ptr<void>> parts_;

  std::vector<std::unique_ptr<Periodic>> periodic_;
  std::vector<std::function<void()>> serving_hooks_;
  std::vector<std::function<void()>> drain_hooks_;
  std::vector<std::function<void()>> stop_hooks_;
  // Serve got the server up (stop hooks run, the relay flushes).
  bool serving_ = false;
  bool stopped_ = false;
};

}  // namespace switchboard::host
