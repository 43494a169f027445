#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace switchboard::metrics {

// Serves a registry's metrics in the Prometheus text format at
// http://<bind_address>:<port>/metrics, from two threads of its own, until
// destroyed.
//
//   auto registry = std::make_shared<prometheus::Registry>();
//   absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
//       MetricsExposer::Start("0.0.0.0", 9104, registry);
//   if (!exposer.ok()) return exposer.status();
//
// Thread-safe: scrapes run concurrently with updates of the registry.
class MetricsExposer {
 public:
  // Starts serving. `bind_address` is an IPv4 or IPv6 address ("0.0.0.0",
  // "127.0.0.1", "::1"); `port` 0 picks a free port, see port(). Errors:
  // INVALID_ARGUMENT for a port outside 0..65535, UNAVAILABLE when the
  // address cannot be bound (port in use, address not local).
  static absl::StatusOr<std::unique_ptr<MetricsExposer>> Start(
      const std::string& bind_address, int port,
      std::shared_ptr<prometheus::Registry> registry);

  MetricsExposer(const MetricsExposer&) = delete;
  MetricsExposer& operator=(const MetricsExposer&) = delete;

  // The port it listens on.
  int port() const { return port_; }

 private:
  MetricsExposer(std::shared_ptr<prometheus::Registry> registry,
                 std::unique_ptr<prometheus::Exposer> exposer, int port)
      : registry_(std::move(registry)),
        exposer_(std::move(exposer)),
        port_(port) {}

  // The exposer holds the registry weakly; this keeps it alive.
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::unique_ptr<prometheus::Exposer> exposer_;
  const int port_;
};

}  // namespace switchboard::metrics
