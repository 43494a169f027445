#include "libs/storage/commit_gate.h"

namespace switchboard::storage {

CommitGate::CommitGate(Database* db) : db_(db) {
  db_->SetCommitHook([this] { return OnCommit(); });
}

CommitGate::~CommitGate() {
  Open();
  db_->SetCommitHook(nullptr);
}

void CommitGate::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

void CommitGate::Open() {
  absl::MutexLock lock(&mu_);
  closed_ = false;
}

void CommitGate::FailHeld() {
  absl::MutexLock lock(&mu_);
  to_fail_ = waiting_;
}

bool CommitGate::AwaitHeld(int count, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return waiting_ - to_fail_ >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

int CommitGate::committed() const {
  absl::MutexLock lock(&mu_);
  return committed_;
}

int CommitGate::failed() const {
  absl::MutexLock lock(&mu_);
  return failed_;
}

bool CommitGate::OnCommit() {
  absl::MutexLock lock(&mu_);
  ++waiting_;
  const auto may_go = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !closed_ || to_fail_ > 0;
  };
  mu_.Await(absl::Condition(&may_go));
  --waiting_;
  if (to_fail_ > 0) {
    --to_fail_;
    ++failed_;
    return false;
  }
  ++committed_;
  return true;
}

}  // namespace switchboard::storage
