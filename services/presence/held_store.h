#pragma once

#include <deque>
#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/presence/store.h"

namespace switchboard::presence {

// A PresenceStore for tests that wraps a real one and can hold commits: while
// holding, each write waits (in order) until Release() passes the held writes
// on to the wrapped store, or Fail() fails them without writing anything, as
// a failed disk would. Also counts the writes the wrapped store committed,
// and can refuse admission. Thread-safe.
class HeldPresenceStore : public PresenceStore {
 public:
  explicit HeldPresenceStore(PresenceStore* inner) : inner_(inner) {}

  absl::StatusOr<Contents> Load() override { return inner_->Load(); }

  absl::Status Admit() const override {
    absl::MutexLock lock(&mu_);
    if (!admit_.ok()) return admit_;
    return inner_->Admit();
  }

  void Apply(PresenceWrite write, std::function<void(absl::Status)> done) override {
    {
      absl::MutexLock lock(&mu_);
      if (holding_) {
        held_.emplace_back(std::move(write), std::move(done));
        return;
      }
    }
    Forward(std::move(write), std::move(done));
  }

  // Writes from now on wait for Release or Fail.
  void Hold() {
    absl::MutexLock lock(&mu_);
    holding_ = true;
  }

  // Writes waiting now.
  int held() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(held_.size());
  }

  // Waits (up to 10 s of real time) until `count` writes are held.
  bool AwaitHeld(int count) const {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return static_cast<int>(held_.size()) >= count;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  }

  // Stops holding and passes the held writes on, in order.
  void Release() {
    std::deque<std::pair<PresenceWrite, std::function<void(absl::Status)>>> held;
    {
      absl::MutexLock lock(&mu_);
      holding_ = false;
      held.swap(held_);
    }
    for (auto& [write, done] : held) Forward(std::move(write), std::move(done));
  }

  // Stops holding and fails the held writes with `status`, writing nothing.
  void Fail(absl::Status status) {
    std::deque<std::pair<PresenceWrite, std::function<void(absl::Status)>>> held;
    {
      absl::MutexLock lock(&mu_);
      holding_ = false;
      held.swap(held_);
    }
    for (auto& [write, done] : held) done(status);
  }

  // Writes the wrapped store reported committed.
  int committed() const {
    absl::MutexLock lock(&mu_);
    return committed_;
  }

  // Admit answers `status` (OK: ask the wrapped store).
  void set_admit(absl::Status status) {
    absl::MutexLock lock(&mu_);
    admit_ = std::move(status);
  }

 private:
  void Forward(PresenceWrite write, std::function<void(absl::Status)> done) {
    inner_->Apply(std::move(write), [this, done = std::move(done)](absl::Status status) {
      if (status.ok()) {
        absl::MutexLock lock(&mu_);
        ++committed_;
      }
      done(status);
    });
  }

  PresenceStore* const inner_;
  mutable absl::Mutex mu_;
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::pair<PresenceWrite, std::function<void(absl::Status)>>> held_
      ABSL_GUARDED_BY(mu_);
  int committed_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status admit_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::presence
