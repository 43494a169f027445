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

// Fetches http://<host>:<port><target> (`target` is a path with an optional
// query string, already URL-encoded) and returns the body; errors as for
// ScrapeMetrics. For tests that talk to an HTTP API such as Prometheus's.
absl::StatusOr<std::string> HttpGet(absl::string_view host, int port,
                                    absl::string_view target);

}  // namespace switchboard::metrics
