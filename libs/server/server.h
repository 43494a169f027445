#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/config/flags.h"
#include "libs/metrics/exposer.h"
#include "libs/server/in_flight_calls.h"
#include "libs/server/stream_queues.h"
#include "libs/server/tls.h"
#include "prometheus/registry.h"

namespace switchboard::server {

// What every Switchboard server shares: ports, limits, keepalive, draining.
struct ServerOptions {
  // Short service name ("presence"): used in logs and env variable names.
  std::string service_name;
  // Full names of the gRPC services served ("switchboard.presence.v1.
  // PresenceService"): health reports each by name, and their per-RPC
  // metrics start at zero.
  std::vector<std::string> grpc_service_names;
  // Address the gRPC and metrics listeners bind to. A plaintext gRPC port
  // on any address but loopback logs a warning at start: bearer tokens
  // would cross the network in clear.
  std::string bind_address = "0.0.0.0";
  // TLS or mTLS on the gRPC port (off by default). /metrics stays plain
  // HTTP for Prometheus on the private network: it carries no token and no
  // customer data, only counts with low-cardinality labels.
  ServerTlsOptions tls;
  // gRPC port; 0 picks a free port (tests).
  int port = 0;
  // Prometheus /metrics port; 0 picks a free port (tests).
  int metrics_port = 0;
  // gRPC server reflection, for grpcurl and other tools.
  bool reflection = true;
  // Largest request message accepted; larger ones get RESOURCE_EXHAUSTED.
  int max_receive_bytes = 4 * 1024 * 1024;
  // Server pings an idle connection this often, and drops it when a ping is
  // not answered within keepalive_timeout (dead clients, broken NATs).
  absl::Duration keepalive_time = absl::Seconds(60);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Clients may ping this often at most (grpc-go's default is 5 min; mobile
  // clients holding streams ping more often).
  absl::Duration min_client_ping_interval = absl::Seconds(10);
  // On shutdown, in-flight calls get this long to finish before they are
  // cancelled.
  absl::Duration drain_deadline = absl::Seconds(10);
  // Threads of the BlockingPool that runs handlers' blocking work.
  int worker_threads = 32;
  // Calls waiting for a worker beyond which new ones are refused with
  // RESOURCE_EXHAUSTED and a retry-after (the BlockingPool's max_queued).
  int max_queued_calls = 1024;
  // HTTP/2 streams one client connection may have open at once; further
  // ones wait in the client until one ends.
  int max_concurrent_streams = 10'000;
  // Completion queues (a thread each) for the streams of services that
  // serve them on queues of their own (see StreamQueues). One by default:
  // on 2 cores, 4 queues cost 4 % more CPU per fanned-out message and
  // doubled its median delivery time (more thread switches per write);
  // more queues pay off only where many cores write to many streams.
  int stream_queues = 1;
  // Memory gRPC's transports may use for this server (buffers of every
  // connection and call); under pressure gRPC shrinks buffers and then
  // refuses new streams instead of growing without bound.
  int64_t grpc_memory_quota_bytes = int64_t{4} << 30;
  // Crash tests only: a libs/fault point at which the process kills itself
  // ("name" or "name:N"). Empty in production.
  std::string fault_point;
};

// Registers the shared flags (port, metrics_port, bind_address, reflection,
// max_receive_bytes, keepalive_time, keepalive_timeout, drain_deadline,
// worker_threads, max_queued_calls, max_concurrent_streams, stream_queues,
// grpc_memory_quota_bytes, fault_point, and the tls_* flags of
// AddServerTlsFlags) with `options`' current values as defaults.
void AddServerFlags(config::FlagSet& flags, ServerOptions* options);

// Checks the options a main parsed, including the TLS files they name
// (CheckServerTlsFiles), and arms their fault point: call right after
// parsing flags, before opening storage (crash tests may aim at start up
// too). INVALID_ARGUMENT names the flag at fault.
absl::Status ApplyServerOptions(const ServerOptions& options);

// What every Switchboard gRPC server shares on the wire, applied to
// `builder`: it listens on options.bind_address:port with `credentials`
// (the port it got in `*port` once built), the receive-size limit, streams
// per connection, a memory quota named `quota_name`, keepalive and the
// client ping limits. Server::Start uses it; so does a standby's forwarding
// server (libs/host).
void ConfigureBuilder(const ServerOptions& options,
                      std::shared_ptr<grpc::ServerCredentials> credentials,
                      const std::string& quota_name, grpc::ServerBuilder& builder, int* port);

// A running gRPC server with the shared behaviour of every service:
// grpc.health.v1 (Check and Watch; every registered service SERVING),
// reflection (unless disabled), per-RPC Prometheus metrics under the standard
// names on /metrics, receive-size limits, keepalive, TLS or mTLS when
// configured (health and reflection included), and graceful shutdown.
//
// Thread-safe.
class Server {
 public:
  // Builds and starts a server for `services` (not owned; they must outlive
  // the server), recording metrics in `registry`. Fails if a port is taken.
  // /metrics is served by `exposer` when given (one started earlier on
  // `registry`, e.g. while the process waited as a standby), else by one
  // started here on options.metrics_port.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options, const std::vector<grpc::Service*>& services,
      std::shared_ptr<prometheus::Registry> registry,
      std::unique_ptr<metrics::MetricsExposer> exposer = nullptr);

  ~Server();

  int port() const { return port_; }
  int metrics_port() const { return exposer_->port(); }
  // An insecure channel to this server, for tests and local tools; a
  // server with TLS refuses it.
  std::shared_ptr<grpc::Channel> InProcessChannel() const;

  // Runs `hook` when draining starts, before gRPC's own shutdown: services
  // end their open streams there with a clear status.
  void OnDrain(std::function<void()> hook);

  // Drains and stops: health turns NOT_SERVING, drain hooks run, then the
  // server serves on (calls from clients that have not seen NOT_SERVING yet)
  // until it has had no call, health watches aside (InFlightCalls), for
  // 100 ms, or `drain_deadline` has passed; then it stops, ending the
  // health watches and cancelling what is left. Idempotent; returns once the server has
  // stopped.
  void Shutdown();

 private:
  Server(ServerOptions options, std::unique_ptr<InFlightCalls> in_flight,
         std::unique_ptr<StreamQueues> stream_queues, std::unique_ptr<grpc::Server> server,
         int port, std::unique_ptr<metrics::MetricsExposer> exposer);

  const ServerOptions options_;
  // Before server_, which its interceptors point to.
  std::unique_ptr<InFlightCalls> in_flight_;
  // Before server_: gRPC wants the queues to outlive the server.
  std::unique_ptr<StreamQueues> stream_queues_;
  std::unique_ptr<grpc::Server> server_;
  const int port_;
  std::unique_ptr<metrics::MetricsExposer> exposer_;
  absl::Mutex mu_;
  std::vector<std::function<void()>> drain_hooks_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts
// later. Call it first in main(), before any thread exists.
void BlockTerminationSignals();

// Waits until SIGTERM or SIGINT arrives (see BlockTerminationSignals) and
// returns the signal's name.
std::string WaitForTerminationSignal();
// The same for at most `timeout`: the signal's name, or nullopt if none
// came (e.g. to poll for something else meanwhile).
std::optional<std::string> WaitForTerminationSignal(absl::Duration timeout);

}  // namespace switchboard::server
