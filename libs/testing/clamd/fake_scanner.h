#pragma once

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "libs/scan/scanner.h"
#include "libs/testing/clamd/clamd.h"

namespace switchboard::testing {

// Finds Eicar() in anything, as ClamdServer's real clamd does, and fails
// with an error of its own (INTERNAL, as clamd's "ERROR" replies) on files
// that start with "unscannable"; or fails on everything (down, too large)
// when told. For tests of the logic around scans that need no daemon.
class FakeScanner : public scan::Scanner {
 public:
  absl::StatusOr<scan::ScanVerdict> Scan(absl::string_view bytes, absl::Time) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (!failure_.ok()) return failure_;
    if (absl::StartsWith(bytes, "unscannable")) return absl::InternalError("clamd: ERROR");
    if (absl::StrContains(bytes, Eicar())) return scan::ScanVerdict::Infected(kEicarSignature);
    return scan::ScanVerdict::Clean();
  }
  // Every later scan fails with `status` (OK: scans work again).
  void Fail(absl::Status status) {
    absl::MutexLock lock(&mu_);
    failure_ = std::move(status);
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace switchboard::testing
