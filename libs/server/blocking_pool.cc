#include "libs/server/blocking_pool.h"

namespace switchboard::server {

BlockingPool::BlockingPool(int threads, int max_queued) : max_queued_(max_queued) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

BlockingPool::~BlockingPool() { Stop(); }

bool BlockingPool::Run(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  tasks_.push_back(std::move(task));
  return true;
}

bool BlockingPool::TryRun(std::function<void()> task, bool* stopping) {
  absl::MutexLock lock(&mu_);
  if (stopping != nullptr) *stopping = stopping_;
  if (stopping_ || static_cast<int>(tasks_.size()) >= max_queued_) return false;
  tasks_.push_back(std::move(task));
  return true;
}

int BlockingPool::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(tasks_.size());
}

void BlockingPool::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void BlockingPool::Work() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](BlockingPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->stopping_ || !p->tasks_.empty();
          },
          this));
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace switchboard::server
