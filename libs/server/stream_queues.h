#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace switchboard::server {

// Long-lived server streams served on completion queues of their own.
//
// Why: the libgrpc we link (Debian 12's 1.51) is built without NDEBUG, so
// every completion on a queue first searches the list of operations
// outstanding on that queue, from the oldest (completion_queue.cc,
// cq_check_tag). Every open stream keeps one operation outstanding until it
// ends, and calls of the callback API all share the server's one callback
// queue: with 100,000 streams open, each unary call's completions searched
// 100,000 entries, half of sessions' CPU. Streams served here spread over
// `count` queues of their own, so unary calls search none of them and a
// stream's own completions a 1/count share.
//
// A method served here is marked async in its service (the generated
// WithAsyncMethod_X, under the callback methods), and its handler returns a
// StreamWriter, which has the shape of grpc::ServerWriteReactor: StartWrite
// one message at a time, Finish once, and OnWriteDone, OnCancel and OnDone
// called back (on the queue's thread). Finish is owed even after OnCancel.
// OnDone comes once the call is over, Finish was called and no operation
// of the call is pending; the call never touches the writer after it, so
// the writer may delete itself there.
//
//   queues.Serve<Request, Response>(
//       [service](grpc::ServerContext* c, Request* r, grpc::ServerAsyncWriter<Response>* w,
//                 grpc::ServerCompletionQueue* q, void* tag) {
//         service->RequestWatch(c, r, w, q, q, tag);
//       },
//       [service](StreamCall<Response>* call, grpc::ServerContext* c, const Request& r) {
//         return service->Watch(call, c, r);  // new MyWriter(call, ...)
//       });
//
// Order: AddTo(builder) and Serve before BuildAndStart, Start after it;
// grpc::Server::Shutdown, then Stop (the destructor stops too). Thread-safe.

template <typename Response>
class StreamWriter;
template <typename Response>
class StreamCall;

// Takes a call that arrived and returns its writer (made with `call`).
template <typename Request, typename Response>
using StreamStart = std::function<StreamWriter<Response>*(
    StreamCall<Response>* call, grpc::ServerContext* context, const Request& request)>;

// One completion queue event's handler.
class QueueTag {
 public:
  explicit QueueTag(std::function<void(bool ok)> on_event) : on_event_(std::move(on_event)) {}
  void Handle(bool ok) { on_event_(ok); }

 private:
  std::function<void(bool ok)> on_event_;
};

class StreamQueues {
 public:
  explicit StreamQueues(int count);
  ~StreamQueues();
  StreamQueues(const StreamQueues&) = delete;
  StreamQueues& operator=(const StreamQueues&) = delete;

  // Adds the queues to `builder`.
  void AddTo(grpc::ServerBuilder& builder);

  // Serves one server-streaming method: `request` posts a call slot (the
  // generated RequestX, with the given queue as both the call's and the
  // notification queue), `start` takes a call that arrived and returns its
  // writer. Before Start.
  template <typename Request, typename Response>
  void Serve(
      std::function<void(grpc::ServerContext*, Request*, grpc::ServerAsyncWriter<Response>*,
                         grpc::ServerCompletionQueue*, void*)>
          request,
      StreamStart<Request, Response> start);

  // Posts each method's call slots and starts a thread per queue. Once.
  void Start();

  // After grpc::Server::Shutdown (which ends every call): waits until each
  // call that arrived is done, then shuts the queues down and joins their
  // threads. Idempotent.
  void Stop();

  // Calls that arrived and are not done yet.
  int open_calls() const;

 private:
  template <typename Request, typename Response>
  class Call;

  // Posts one call slot of method `method` on queue `queue`, unless
  // stopping.
  void Post(size_t method, size_t queue);
  void CallArrived();
  void CallDone();
  void Drain(grpc::ServerCompletionQueue* queue);

  const int count_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  // Per method: posts one slot on queue `queue` for method `method`.
  std::vector<std::function<void(size_t queue, size_t method)>> methods_;
  std::vector<std::thread> threads_;
  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int open_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// A grpc::Service with methods served by StreamQueues: Server::Start gives
// it the server's queues before the server starts.
class QueuedStreamsService {
 public:
  virtual ~QueuedStreamsService() = default;
  // Calls queues.Serve for each such method.
  virtual void ServeStreams(StreamQueues& queues) = 0;
};

// What a StreamWriter uses of its call. Internal to StreamQueues.
template <typename Response>
class StreamCall {
 public:
  virtual ~StreamCall() = default;
  virtual void Write(const Response* response) = 0;
  virtual void Finish(const grpc::Status& status) = 0;
};

// The writer side of one stream; see StreamQueues. Subclasses override the
// On* callbacks; StartWrite and Finish may be called from any thread, one
// write at a time (the next after OnWriteDone) and Finish once, as on a
// grpc::ServerWriteReactor.
template <typename Response>
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;

  virtual void OnWriteDone(bool /*ok*/) {}
  // The client cancelled or the connection broke (also on shutdown). The
  // writer must still call Finish, now or later, as on a
  // grpc::ServerWriteReactor: OnDone waits for it.
  virtual void OnCancel() {}
  // The last call back; see StreamQueues. StartWrite and Finish must not
  // be called from then on.
  virtual void OnDone() = 0;

 protected:
  explicit StreamWriter(StreamCall<Response>* call) : call_(call) {}
  // `response` must stay valid until OnWriteDone.
  void StartWrite(const Response* response) { call_->Write(response); }
  void Finish(const grpc::Status& status) { call_->Finish(status); }

 private:
  StreamCall<Response>* const call_;
};

// One call: its slot (context, request, writer) from when it is posted,
// then its writer's operations until it is done. Deletes itself. Its tags
// are handled in order on its queue's one thread; Write and Finish come
// from any thread.
template <typename Request, typename Response>
class StreamQueues::Call final : public StreamCall<Response> {
 public:
  Call(StreamQueues* queues, size_t method, size_t queue,
       const StreamStart<Request, Response>* start)
      : queues_(queues),
        method_(method),
        queue_(queue),
        start_(start),
        arrived_([this](bool ok) { Arrived(ok); }),
        done_([this](bool) { CallOver(); }),
        written_([this](bool ok) { Written(ok); }),
        finished_([this](bool) { Finished(); }) {
    // Must precede the request: the tag comes once the call is over.
    context_.AsyncNotifyWhenDone(&done_);
  }

  grpc::ServerContext* context() { return &context_; }
  Request* request() { return &request_; }
  grpc::ServerAsyncWriter<Response>* stream() { return &stream_; }
  QueueTag* arrived_tag() { return &arrived_; }

  void Write(const Response* response) override {
    absl::MutexLock lock(&mu_);
    writing_ = true;
    stream_.Write(*response, &written_);
  }

  void Finish(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (finish_sent_) return;
    finishing_ = true;
    finish_sent_ = true;
    stream_.Finish(status, &finished_);
  }

 private:
  void Arrived(bool ok) {
    if (!ok) {
      // The server is shutting down: this slot was never used. Its done
      // tag does not come for a call that never started.
      delete this;
      return;
    }
    queues_->Post(method_, queue_);
    queues_->CallArrived();
    StreamWriter<Response>* writer = (*start_)(this, &context_, request_);
    {
      absl::MutexLock lock(&mu_);
      writer_ = writer;
      started_ = true;
    }
    MaybeDone();
  }

  void CallOver() {
    StreamWriter<Response>* writer;
    bool finish_sent;
    {
      absl::MutexLock lock(&mu_);
      over_ = true;
      writer = writer_;
      finish_sent = finish_sent_;
    }
    // A call that ended before its writer finished it was cancelled (by
    // the client, a broken connection or the server's shutdown). The done
    // tag follows the arrival on the same queue, so the writer exists.
    if (context_.IsCancelled() || !finish_sent) writer->OnCancel();
    MaybeDone();
  }

  void Written(bool ok) {
    StreamWriter<Response>* writer;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      writer = writer_;
    }
    writer->OnWriteDone(ok);
    MaybeDone();
  }

  void Finished() {
    {
      absl::MutexLock lock(&mu_);
      finishing_ = false;
    }
    MaybeDone();
  }

  void MaybeDone() {
    StreamWriter<Response>* writer;
    {
      absl::MutexLock lock(&mu_);
      if (!started_ || !over_ || !finish_sent_ || writing_ || finishing_ || done_called_) {
        return;
      }
      done_called_ = true;
      writer = writer_;
    }
    writer->OnDone();
    StreamQueues* queues = queues_;
    delete this;
    queues->CallDone();
  }

  StreamQueues* const queues_;
  const size_t method_;
  const size_t queue_;
  const StreamStart<Request, Response>* const start_;
  grpc::ServerContext context_;
  Request request_;
  grpc::ServerAsyncWriter<Response> stream_{&context_};
  QueueTag arrived_;
  QueueTag done_;
  QueueTag written_;
  QueueTag finished_;
  absl::Mutex mu_;
  StreamWriter<Response>* writer_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The writer was made (the call arrived).
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // The done tag came: the call is over.
  bool over_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool done_called_ ABSL_GUARDED_BY(mu_) = false;
};

template <typename Request, typename Response>
void StreamQueues::Serve(
    std::function<void(grpc::ServerContext*, Request*, grpc::ServerAsyncWriter<Response>*,
                       grpc::ServerCompletionQueue*, void*)>
        request,
    StreamStart<Request, Response> start) {
  // Held for the queues' lifetime: every call of the method points to it.
  auto shared_start = std::make_shared<StreamStart<Request, Response>>(std::move(start));
  methods_.push_back([this, request = std::move(request), shared_start](size_t queue,
                                                                      size_t method) {
    auto* call = new Call<Request, Response>(this, method, queue, shared_start.get());
    request(call->context(), call->request(), call->stream(), queues_[queue].get(),
            call->arrived_tag());
  });
}

}  // namespace switchboard::server
