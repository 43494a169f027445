#include "libs/storage/ordered_commits.h"

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "libs/log/log.h"

namespace switchboard::storage {

OrderedCommits::OrderedCommits(std::string service, FailedWrite failed_write)
    : service_(std::move(service)), failed_write_(failed_write) {}

absl::Status OrderedCommits::CheckWritable() const {
  if (failed_) {
    return absl::UnavailableError(
        absl::StrCat(service_, " storage failed; the service must be restarted"));
  }
  return absl::OkStatus();
}

std::shared_ptr<PendingWrite> OrderedCommits::NewWrite() {
  return std::make_shared<PendingWrite>();
}

std::shared_ptr<PendingWrite> OrderedCommits::Nothing() {
  auto pending = std::make_shared<PendingWrite>();
  pending->done_.Notify();
  return pending;
}

std::shared_ptr<PendingWrite> OrderedCommits::Submit(
    const std::function<void(std::function<void(absl::Status)>)>& apply, Hooks hooks,
    std::shared_ptr<PendingWrite> pending) {
  if (pending == nullptr) pending = NewWrite();
  {
    absl::MutexLock lock(&mu_);
    newest_ = pending;
  }
  apply([this, pending, hooks = std::move(hooks)](absl::Status status) {
    if (status.ok()) {
      if (hooks.on_durable) hooks.on_durable();
    } else {
      log::Error(absl::StrCat(service_, "_commit_failed"), {{"detail", status.message()}});
      failed_ = true;
    }
    if (hooks.on_settled) hooks.on_settled();
    pending->Settle(std::move(status));
  });
  return pending;
}

void PendingWrite::Settle(absl::Status status) {
  std::vector<std::function<void(const absl::Status&)>> then;
  {
    absl::MutexLock lock(&mu_);
    status_ = std::move(status);
    done_.Notify();
    then.swap(then_);
  }
  for (const auto& done : then) done(status_);
}

std::shared_ptr<PendingWrite> OrderedCommits::Newest() const {
  absl::MutexLock lock(&mu_);
  return newest_;
}

absl::Status OrderedCommits::Await(const std::shared_ptr<PendingWrite>& write) const {
  if (write == nullptr) return absl::OkStatus();
  write->done_.WaitForNotification();
  return Answer(write->status_);
}

absl::Status OrderedCommits::Answer(const absl::Status& status) const {
  if (status.ok()) return absl::OkStatus();
  if (failed_write_ == FailedWrite::kStoreError) return status;
  return absl::UnavailableError(absl::StrCat(service_, " storage failed; retry later"));
}

void OrderedCommits::Then(const std::shared_ptr<PendingWrite>& write,
                          std::function<void(absl::Status)> done) const {
  if (write == nullptr) return done(absl::OkStatus());
  {
    absl::MutexLock lock(&write->mu_);
    if (!write->done_.HasBeenNotified()) {
      write->then_.push_back(
          [this, done = std::move(done)](const absl::Status& status) { done(Answer(status)); });
      return;
    }
  }
  done(Answer(write->status_));
}

absl::Status OrderedCommits::AwaitInOrder(const std::shared_ptr<PendingWrite>& write) const {
  if (absl::Status s = Await(write); !s.ok()) return s;
  return CheckWritable();
}

size_t SettleStamps::Bucket(absl::string_view key) {
  return absl::Hash<absl::string_view>{}(key) % kBuckets;
}

uint64_t SettleStamps::Stamp(absl::string_view key) const { return stamps_[Bucket(key)]; }

void SettleStamps::Settle(absl::string_view key) { ++stamps_[Bucket(key)]; }

}  // namespace switchboard::storage
