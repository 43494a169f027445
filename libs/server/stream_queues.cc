#include "libs/server/stream_queues.h"

namespace switchboard::server {
namespace {

// Call slots posted per method and queue: calls arriving at once wait for
// none while the queue's thread re-posts.
constexpr int kSlotsPerQueue = 16;

}  // namespace

StreamQueues::StreamQueues(int count) : count_(count < 1 ? 1 : count) {}

StreamQueues::~StreamQueues() { Stop(); }

void StreamQueues::AddTo(grpc::ServerBuilder& builder) {
  for (int i = 0; i < count_; ++i) queues_.push_back(builder.AddCompletionQueue());
}

void StreamQueues::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (started_ || stopping_) return;
    started_ = true;
  }
  for (size_t queue = 0; queue < queues_.size(); ++queue) {
    for (size_t method = 0; method < methods_.size(); ++method) {
      for (int slot = 0; slot < kSlotsPerQueue; ++slot) Post(method, queue);
    }
    threads_.emplace_back([this, queue] { Drain(queues_[queue].get()); });
  }
}

void StreamQueues::Post(size_t method, size_t queue) {
  // Under the lock, so that no slot is posted on a queue Stop shut down.
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  methods_[method](queue, method);
}

void StreamQueues::CallArrived() {
  absl::MutexLock lock(&mu_);
  ++open_calls_;
}

void StreamQueues::CallDone() {
  absl::MutexLock lock(&mu_);
  --open_calls_;
}

int StreamQueues::open_calls() const {
  absl::MutexLock lock(&mu_);
  return open_calls_;
}

void StreamQueues::Drain(grpc::ServerCompletionQueue* queue) {
  void* tag = nullptr;
  bool ok = false;
  while (queue->Next(&tag, &ok)) static_cast<QueueTag*>(tag)->Handle(ok);
}

void StreamQueues::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    // Each call ended with the server's shutdown; its last operations are
    // still to come back through the queues (their threads run on).
    if (started_) mu_.Await(absl::Condition(
        +[](int* open) { return *open == 0; }, &open_calls_));
  }
  for (auto& queue : queues_) queue->Shutdown();
  if (threads_.empty()) {
    // Never started: the slots' tags, if any, come back here.
    for (auto& queue : queues_) Drain(queue.get());
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace switchboard::server
