#include "libs/limits/retry_after.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace switchboard::limits {

absl::Status WithRetryAfter(absl::Status status, absl::Duration after) {
  const int64_t seconds =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(after))));
  status.SetPayload(kRetryAfter, absl::Cord(absl::StrCat(seconds)));
  return status;
}

absl::Status Exhausted(absl::string_view message, absl::Duration retry_after) {
  return WithRetryAfter(absl::ResourceExhaustedError(message), retry_after);
}

std::optional<int64_t> RetryAfterSeconds(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryAfter);
  int64_t seconds = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &seconds)) {
    return std::nullopt;
  }
  return seconds;
}

}  // namespace switchboard::limits
