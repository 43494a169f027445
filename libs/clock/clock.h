#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace switchboard {

// The time source of domain logic, so that tests can control time instead of
// sleeping. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The system's wall clock. Never null; lives forever.
Clock* RealClock();

// A clock that moves only when told. Starts at a fixed, arbitrary instant.
class FakeClock : public Clock {
 public:
  FakeClock() : now_(absl::FromUnixSeconds(1'800'000'000)) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_;
};

}  // namespace switchboard
