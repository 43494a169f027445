#pragma once

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace switchboard::scan {

// What a malware scan found.
struct ScanVerdict {
  static ScanVerdict Clean() { return {}; }
  static ScanVerdict Infected(std::string signature) { return {true, std::move(signature)}; }

  bool infected = false;
  // The scanner's name for what it found (e.g. "Win.Test.EICAR_HDB-1"), when
  // infected.
  std::string signature;
};

// Scans bytes for malware. Implementations are thread-safe.
class Scanner {
 public:
  virtual ~Scanner() = default;

  // The verdict on `bytes`, or:
  // - UNAVAILABLE if the scanner cannot be reached or gives no verdict by
  //   `deadline` (retry later; never treat it as clean);
  // - RESOURCE_EXHAUSTED if `bytes` is larger than the scanner accepts;
  // - INTERNAL if the scanner reports an error of its own.
  virtual absl::StatusOr<ScanVerdict> Scan(absl::string_view bytes, absl::Time deadline) = 0;
};

}  // namespace switchboard::scan
