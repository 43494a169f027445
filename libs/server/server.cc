#include "libs/server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.pb.h"
#include "libs/fault/fault_point.h"
#include "libs/log/log.h"
#include "libs/metrics/grpc_metrics.h"
#include "libs/server/parse_failure_interceptor.h"

namespace switchboard::server {

void AddServerFlags(config::FlagSet& flags, ServerOptions* options) {
  flags.Add("port", &options->port, "gRPC port");
  flags.Add("metrics_port", &options->metrics_port,
            "Prometheus /metrics port");
  flags.Add("bind_address", &options->bind_address,
            "address the gRPC and metrics listeners bind to");
  flags.Add("reflection", &options->reflection,
            "serve gRPC server reflection (for grpcurl)");
  flags.Add("max_receive_bytes", &options->max_receive_bytes,
            "largest request message accepted, in bytes");
  flags.Add("keepalive_time", &options->keepalive_time,
            "ping idle client connections this often");
  flags.Add("keepalive_timeout", &options->keepalive_timeout,
            "drop a connection whose ping is unanswered this long");
  flags.Add("drain_deadline", &options->drain_deadline,
            "on shutdown, in-flight calls get this long to finish");
  flags.Add("worker_threads", &options->worker_threads,
            "threads running handlers' blocking work");
  flags.Add("max_queued_calls", &options->max_queued_calls,
            "calls waiting for a worker beyond which new ones get RESOURCE_EXHAUSTED");
  flags.Add("max_concurrent_streams", &options->max_concurrent_streams,
            "HTTP/2 streams one client connection may hold open at once");
  flags.Add("stream_queues", &options->stream_queues,
            "completion queues (a thread each) for the streams a service serves on "
            "queues (sessions' StreamSessionEvents); other services ignore it");
  flags.Add("grpc_memory_quota_bytes", &options->grpc_memory_quota_bytes,
            "memory gRPC's transports may use before refusing new streams");
  flags.Add("fault_point", &options->fault_point,
            "crash tests only: die by SIGKILL at this named point (NAME or NAME:N)");
  AddServerTlsFlags(flags, &options->tls);
}

namespace {

// How long a draining server must see no call before it stops.
constexpr absl::Duration kDrainQuiet = absl::Milliseconds(100);

absl::Status Validate(const ServerOptions& options) {
  if (options.port < 0 || options.port > 65535 || options.metrics_port < 0 ||
      options.metrics_port > 65535) {
    return absl::InvalidArgumentError("--port and --metrics_port must be within 0..65535");
  }
  if (options.worker_threads < 1) {
    return absl::InvalidArgumentError("--worker_threads must be at least 1");
  }
  if (options.max_receive_bytes < 1024) {
    return absl::InvalidArgumentError("--max_receive_bytes must be at least 1024");
  }
  if (options.max_queued_calls < 1 || options.max_concurrent_streams < 1) {
    return absl::InvalidArgumentError(
        "--max_queued_calls and --max_concurrent_streams must be at least 1");
  }
  if (options.stream_queues < 1 || options.stream_queues > 64) {
    return absl::InvalidArgumentError("--stream_queues must be within 1..64");
  }
  if (options.grpc_memory_quota_bytes < (int64_t{1} << 20)) {
    return absl::InvalidArgumentError("--grpc_memory_quota_bytes must be at least 1 MiB");
  }
  return ValidateServerTls(options.tls);
}

}  // namespace

absl::Status ApplyServerOptions(const ServerOptions& options) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  if (absl::Status s = CheckServerTlsFiles(options.tls, absl::Now()); !s.ok()) return s;
  return fault::Arm(options.fault_point);
}

void ConfigureBuilder(const ServerOptions& options,
                      std::shared_ptr<grpc::ServerCredentials> credentials,
                      const std::string& quota_name, grpc::ServerBuilder& builder, int* port) {
  builder.AddListeningPort(absl::StrCat(options.bind_address, ":", options.port),
                           std::move(credentials), port);
  builder.SetMaxReceiveMessageSize(options.max_receive_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options.max_concurrent_streams);
  grpc::ResourceQuota quota(quota_name);
  quota.Resize(static_cast<size_t>(options.grpc_memory_quota_bytes));
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             absl::ToInt64Milliseconds(options.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             absl::ToInt64Milliseconds(options.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      absl::ToInt64Milliseconds(options.min_client_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options, const std::vector<grpc::Service*>& services,
    std::shared_ptr<prometheus::Registry> registry,
    std::unique_ptr<metrics::MetricsExposer> started_exposer) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.tls, options.service_name);
  if (!credentials.ok()) return credentials.status();
  absl::StatusOr<std::unique_ptr<metrics::MetricsExposer>> exposer = std::move(started_exposer);
  if (*exposer == nullptr) {
    exposer = metrics::MetricsExposer::Start(options.bind_address, options.metrics_port, registry);
  }
  if (!exposer.ok()) return exposer.status();

  // Debian builds Abseil with the mutex deadlock detector on; its cost grows
  // with the number of live mutexes (one per open stream) and showed as 15%
  // of a server's CPU with 100,000 streams held. Lock order is reviewed in
  // code and exercised by tests instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's built-in health service does not register its proto with the
  // descriptor pool, so reflection could name it but not describe it and
  // grpcurl could not call it. Touching the compiled health.proto links it in.
  grpc::health::v1::HealthCheckRequest::descriptor();
  if (options.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  int port = 0;
  ConfigureBuilder(options, *credentials, absl::StrCat("switchboard-", options.service_name),
                   builder, &port);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  auto in_flight = std::make_unique<InFlightCalls>();
  interceptors.push_back(in_flight->InterceptorFactory());
  interceptors.push_back(MakeParseFailureInterceptorFactory());
  interceptors.push_back(metrics::MakeGrpcServerMetricsInterceptorFactory(*registry));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<StreamQueues> stream_queues;
  for (grpc::Service* service : services) {
    builder.RegisterService(service);
    auto* streaming = dynamic_cast<QueuedStreamsService*>(service);
    if (streaming == nullptr) continue;
    if (stream_queues == nullptr) {
      stream_queues = std::make_unique<StreamQueues>(options.stream_queues);
      stream_queues->AddTo(builder);
    }
    streaming->ServeStreams(*stream_queues);
  }

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (stream_queues != nullptr && server != nullptr) stream_queues->Start();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.bind_address, ":", options.port,
        " (port in use or address not available)"));
  }
  for (const std::string& name : options.grpc_service_names) {
    if (absl::Status s = metrics::InitializeGrpcServerMetrics(*registry, name); !s.ok()) {
      return s;
    }
    server->GetHealthCheckService()->SetServingStatus(name, true);
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  log::Info("server_started", {{"service", options.service_name},
                               {"grpc_port", port},
                               {"metrics_port", (*exposer)->port()},
                               {"reflection", options.reflection},
                               {"transport", TransportName(options.tls)}});
  if (!options.tls.enabled() && !IsLoopbackAddress(options.bind_address)) {
    log::Warning("plaintext_grpc_on_network",
                 {{"service", options.service_name},
                  {"address", absl::StrCat(options.bind_address, ":", port)},
                  {"note",
                   "WARNING: this gRPC port is reachable beyond this machine without TLS; "
                   "bearer tokens and customer data cross the network in clear. Serve TLS "
                   "(--tls_cert_file, --tls_key_file, and --tls_client_ca_file for mTLS) or "
                   "bind to loopback (--bind_address=127.0.0.1)"}});
  }
  return std::unique_ptr<Server>(
      new Server(options, std::move(in_flight), std::move(stream_queues), std::move(server),
                 port, std::move(*exposer)));
}

Server::Server(ServerOptions options, std::unique_ptr<InFlightCalls> in_flight,
               std::unique_ptr<StreamQueues> stream_queues, std::unique_ptr<grpc::Server> server,
               int port, std::unique_ptr<metrics::MetricsExposer> exposer)
    : options_(std::move(options)),
      in_flight_(std::move(in_flight)),
      stream_queues_(std::move(stream_queues)),
      server_(std::move(server)),
      port_(port),
      exposer_(std::move(exposer)) {}

Server::~Server() { Shutdown(); }

std::shared_ptr<grpc::Channel> Server::InProcessChannel() const {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                             grpc::InsecureChannelCredentials());
}

void Server::OnDrain(std::function<void()> hook) {
  absl::MutexLock lock(&mu_);
  drain_hooks_.push_back(std::move(hook));
}

void Server::Shutdown() {
  std::vector<std::function<void()>> hooks;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    hooks.swap(drain_hooks_);
  }
  log::Info("server_draining",
            {{"service", options_.service_name},
             {"drain_deadline_seconds",
              absl::ToDoubleSeconds(options_.drain_deadline)}});
  // Health turns NOT_SERVING (and Watch subscribers are told) before anything
  // is refused, so load balancers move traffic away first.
  server_->GetHealthCheckService()->Shutdown();
  for (auto& hook : hooks) hook();
  const absl::Time start = absl::Now();
  // gRPC's Shutdown would wait out its deadline for the health watches,
  // which end only when cancelled: wait for the other calls here instead,
  // then let it cancel at once what is left. Quiet for a moment first: a
  // call reaching a server as it stops ends CANCELLED, which clients do
  // not retry, and clients stop calling a moment after NOT_SERVING.
  const bool idle = in_flight_->AwaitQuiet(kDrainQuiet, start + options_.drain_deadline);
  const int cancelled = idle ? 0 : in_flight_->count();
  server_->Shutdown(absl::ToChronoTime(absl::Now()));
  server_->Wait();
  // Streams served on queues of their own return their last operations
  // there after the server ended them.
  if (stream_queues_ != nullptr) stream_queues_->Stop();
  log::Info("server_stopped",
            {{"service", options_.service_name},
             {"drain_seconds", absl::ToDoubleSeconds(absl::Now() - start)},
             {"calls_cancelled", cancelled}});
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::string WaitForTerminationSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int signal = 0;
  while (sigwait(&set, &signal) != 0) {
  }
  return signal == SIGTERM ? "SIGTERM" : "SIGINT";
}

std::optional<std::string> WaitForTerminationSignal(absl::Duration timeout) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  const timespec wait = absl::ToTimespec(timeout);
  const int signal = sigtimedwait(&set, nullptr, &wait);
  if (signal < 0) return std::nullopt;  // EAGAIN (timed out) or EINTR.
  return signal == SIGTERM ? "SIGTERM" : "SIGINT";
}

}  // namespace switchboard::server
