#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace switchboard::metrics {

// Fetches http://<host>:<port>/metrics the way Prometheus scrapes it, and
// returns the body: for tests of anything that exposes metrics. `host` is an
// address ("127.0.0.1", "::1"). Errors: UNAVAILABLE when it cannot connect or
// the exchange fails or takes longer than 5 seconds, INTERNAL when the answer
// is not HTTP 200. Thread-safe.
absl::StatusOr<std::string> ScrapeMetrics(absl::string_view host, int port);

}  // namespace switchboard::metrics
