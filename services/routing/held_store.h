#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/routing/store.h"

namespace switchboard::routing {

// A RoutingStore for tests that wraps a real one and can hold commits: while
// holding, each write waits (in order) until Release() passes the held writes
// on to the wrapped store, or Fail() fails them without writing anything, as
// a failed disk would; or it can be broken so that every write fails. Also
// counts the writes the wrapped store committed, and can refuse admission.
// Thread-safe.
class HeldRoutingStore : public RoutingStore {
 public:
  explicit HeldRoutingStore(RoutingStore* inner) : inner_(inner) {}

  absl::StatusOr<Contents> Load() override { return inner_->Load(); }

  absl::StatusOr<ScheduleContents> LoadSchedules() override { return inner_->LoadSchedules(); }

  absl::StatusOr<std::optional<ClosedOfferRecord>> FindClosedOffer(
      const std::string& offer_id) override {
    return inner_->FindClosedOffer(offer_id);
  }

  absl::Status Admit() const override {
    absl::MutexLock lock(&mu_);
    if (!admit_.ok()) return admit_;
    return inner_->Admit();
  }

  void Apply(RoutingWrite write, std::function<void(absl::Status)> done) override {
    absl::Status broken;
    {
      absl::MutexLock lock(&mu_);
      if (pass_before_holding_ >= 0 && pass_before_holding_-- == 0) holding_ = true;
      if (holding_) {
        held_.emplace_back(std::move(write), std::move(done));
        return;
      }
      broken = broken_;
    }
    if (!broken.ok()) {
      done(broken);
      return;
    }
    Forward(std::move(write), std::move(done));
  }

  // Writes from now on wait for Release or Fail.
  void Hold() {
    absl::MutexLock lock(&mu_);
    holding_ = true;
  }
  // The next `writes` writes go through; the ones after them are held.
  void HoldAfter(int writes) {
    absl::MutexLock lock(&mu_);
    pass_before_holding_ = writes;
  }

  // Writes waiting now.
  int held() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(held_.size());
  }

  // Fails every write from now on with `status` (a broken disk), writing
  // nothing, until Repair().
  void Break(absl::Status status) {
    absl::MutexLock lock(&mu_);
    broken_ = std::move(status);
  }
  void Repair() {
    absl::MutexLock lock(&mu_);
    broken_ = absl::OkStatus();
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
    std::deque<std::pair<RoutingWrite, std::function<void(absl::Status)>>> held;
    {
      absl::MutexLock lock(&mu_);
      holding_ = false;
      held.swap(held_);
    }
    for (auto& [write, done] : held) Forward(std::move(write), std::move(done));
  }

  // Stops holding and fails the held writes with `status`, writing nothing.
  void Fail(absl::Status status) {
    std::deque<std::pair<RoutingWrite, std::function<void(absl::Status)>>> held;
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
  void Forward(RoutingWrite write, std::function<void(absl::Status)> done) {
    inner_->Apply(std::move(write), [this, done = std::move(done)](absl::Status status) {
      if (status.ok()) {
        absl::MutexLock lock(&mu_);
        ++committed_;
      }
      done(status);
    });
  }

  RoutingStore* const inner_;
  mutable absl::Mutex mu_;
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
  int pass_before_holding_ ABSL_GUARDED_BY(mu_) = -1;
  std::deque<std::pair<RoutingWrite, std::function<void(absl::Status)>>> held_
      ABSL_GUARDED_BY(mu_);
  int committed_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status admit_ ABSL_GUARDED_BY(mu_);
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::routing
