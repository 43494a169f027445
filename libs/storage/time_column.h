#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace switchboard::storage {

// Times are stored as INTEGER microseconds since the Unix epoch. The
// infinite times round-trip as INT64_MIN and INT64_MAX, so "never" and
// "unset" survive a reload (plain ToUnixMicros would turn them into far but
// finite times).
inline int64_t ToMicros(absl::Time t) {
  if (t == absl::InfinitePast()) return INT64_MIN;
  if (t == absl::InfiniteFuture()) return INT64_MAX;
  return absl::ToUnixMicros(t);
}

inline absl::Time FromMicros(int64_t micros) {
  if (micros == INT64_MIN) return absl::InfinitePast();
  if (micros == INT64_MAX) return absl::InfiniteFuture();
  return absl::FromUnixMicros(micros);
}

}  // namespace switchboard::storage
