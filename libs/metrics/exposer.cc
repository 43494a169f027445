#include "libs/metrics/exposer.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace switchboard::metrics {

absl::StatusOr<std::unique_ptr<MetricsExposer>> MetricsExposer::Start(
    const std::string& bind_address, int port,
    std::shared_ptr<prometheus::Registry> registry) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics port ", port, " is not in 0..65535"));
  }
  // CivetWeb's listening-port syntax brackets IPv6 addresses.
  const bool bare_ipv6 = absl::StrContains(bind_address, ":") &&
                         !absl::StartsWith(bind_address, "[");
  const std::string listen =
      bare_ipv6 ? absl::StrCat("[", bind_address, "]:", port)
                : absl::StrCat(bind_address, ":", port);
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen, /*num_threads=*/2);
  } catch (const std::exception& e) {
    // prometheus-cpp reports a failed bind by throwing.
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", listen, ": ", e.what()));
  }
  std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, ": not listening"));
  }
  exposer->RegisterCollectable(registry);
  return std::unique_ptr<MetricsExposer>(
      new MetricsExposer(std::move(registry), std::move(exposer), ports[0]));
}

}  // namespace switchboard::metrics
