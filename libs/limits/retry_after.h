#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace switchboard::limits {

// The payload key (and gRPC trailer name) telling a refused caller how many
// whole seconds to wait before trying again. Domain code attaches it to a
// RESOURCE_EXHAUSTED (or UNAVAILABLE) status; the gRPC layer copies it to
// the `retry-after` trailer (libs/server/unary.h).
inline constexpr char kRetryAfter[] = "retry-after";

// `status` with a retry-after of `after`, rounded up to whole seconds and at
// least 1 (a client told "0" would retry in a tight loop).
absl::Status WithRetryAfter(absl::Status status, absl::Duration after);

// RESOURCE_EXHAUSTED naming what is exhausted, with a retry-after.
absl::Status Exhausted(absl::string_view message, absl::Duration retry_after);

// The retry-after a status carries, in seconds.
std::optional<int64_t> RetryAfterSeconds(const absl::Status& status);

}  // namespace switchboard::limits
