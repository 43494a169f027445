#include "libs/server/stream_queues.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/metrics/testdata/echo.grpc.pb.h"
#include "libs/server/server.h"
#include "prometheus/registry.h"

namespace switchboard::server {
namespace {

using ::switchboard::testing::v1::EchoRequest;
using ::switchboard::testing::v1::EchoResponse;
using ::switchboard::testing::v1::EchoService;
using ::switchboard::testing::v1::EchoStreamRequest;

// Echo on the callback API, EchoStream on the server's StreamQueues, as the
// proto says; counts what its writers were told.
class QueuedEchoService final
    : public EchoService::WithCallbackMethod_Echo<
          EchoService::WithAsyncMethod_EchoStream<EchoService::Service>>,
      public QueuedStreamsService {
 public:
  ~QueuedEchoService() override {
    for (std::thread& finisher : finishers_) finisher.join();
  }

  // Cancelled writers finish from a thread of their own after `delay`, as
  // a writer whose last work runs on a pool does.
  void FinishCancelledAfter(absl::Duration delay) {
    absl::MutexLock lock(&mu_);
    cancel_finish_delay_ = delay;
  }

  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const EchoRequest* request, EchoResponse* response) override {
    response->set_text(request->text());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  void ServeStreams(StreamQueues& queues) override {
    queues.Serve<EchoStreamRequest, EchoResponse>(
        [this](grpc::ServerContext* context, EchoStreamRequest* request,
               grpc::ServerAsyncWriter<EchoResponse>* stream, grpc::ServerCompletionQueue* queue,
               void* tag) { RequestEchoStream(context, request, stream, queue, queue, tag); },
        [this](StreamCall<EchoResponse>* call, grpc::ServerContext*,
               const EchoStreamRequest& request) {
          {
            absl::MutexLock lock(&mu_);
            start_threads_.insert(std::this_thread::get_id());
          }
          return new Writer(call, this, request);
        });
  }

  int cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  int done() {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  size_t start_threads() {
    absl::MutexLock lock(&mu_);
    return start_threads_.size();
  }
  // Waits until `count` writers are done.
  bool AwaitDone(int count, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    struct Arg {
      QueuedEchoService* self;
      int count;
    } arg{this, count};
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                      return a->self->done_ >= a->count;
                                    },
                                    &arg),
                                timeout);
  }

 private:
  // Writes request.count responses one at a time, then ends (or holds).
  class Writer final : public StreamWriter<EchoResponse> {
   public:
    Writer(StreamCall<EchoResponse>* call, QueuedEchoService* service,
           const EchoStreamRequest& request)
        : StreamWriter(call), service_(service), request_(request) {
      response_.set_text(request.text());
      Next();
    }

    void OnWriteDone(bool ok) override {
      if (!ok) return;  // OnCancel follows
      Next();
    }
    void OnCancel() override {
      absl::MutexLock lock(&service_->mu_);
      ++service_->cancelled_;
      const absl::Duration delay = service_->cancel_finish_delay_;
      if (delay == absl::ZeroDuration()) {
        Finish(grpc::Status::CANCELLED);
        return;
      }
      service_->finishers_.emplace_back([this, delay] {
        absl::SleepFor(delay);
        Finish(grpc::Status::CANCELLED);
      });
    }
    void OnDone() override {
      {
        absl::MutexLock lock(&service_->mu_);
        ++service_->done_;
      }
      delete this;
    }

   private:
    void Next() {
      if (sent_ < request_.count()) {
        ++sent_;
        StartWrite(&response_);
        return;
      }
      if (request_.hold()) return;
      Finish(request_.fail() ? grpc::Status(grpc::StatusCode::ABORTED, "asked to fail")
                             : grpc::Status::OK);
    }

    QueuedEchoService* const service_;
    const EchoStreamRequest request_;
    EchoResponse response_;
    int sent_ = 0;
  };

  absl::Mutex mu_;
  int cancelled_ ABSL_GUARDED_BY(mu_) = 0;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::thread::id> start_threads_ ABSL_GUARDED_BY(mu_);
  absl::Duration cancel_finish_delay_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> finishers_ ABSL_GUARDED_BY(mu_);
};

class StreamQueuesTest : public ::testing::Test {
 protected:
  StreamQueuesTest() {
    ServerOptions options;
    options.service_name = "echo";
    options.bind_address = "127.0.0.1";
    options.stream_queues = 4;
    options.drain_deadline = absl::Milliseconds(200);
    server_ = *Server::Start(options, {&service_}, std::make_shared<prometheus::Registry>());
  }

  // A channel of its own (a connection of its own), as separate clients.
  std::unique_ptr<EchoService::Stub> NewStub(int channel) {
    grpc::ChannelArguments args;
    args.SetInt("switchboard_test_channel", channel);
    return EchoService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials(), args));
  }

  QueuedEchoService service_;
  std::unique_ptr<Server> server_;
};

TEST_F(StreamQueuesTest, AStreamSendsItsResponsesInOrderThenItsStatus) {
  auto stub = NewStub(0);
  for (bool fail : {false, true}) {
    grpc::ClientContext context;
    EchoStreamRequest request;
    request.set_text("hi");
    request.set_count(5);
    request.set_fail(fail);
    auto reader = stub->EchoStream(&context, request);
    EchoResponse response;
    int read = 0;
    while (reader->Read(&response)) {
      EXPECT_EQ(response.text(), "hi");
      ++read;
    }
    EXPECT_EQ(read, 5);
    EXPECT_EQ(reader->Finish().error_code(),
              fail ? grpc::StatusCode::ABORTED : grpc::StatusCode::OK);
  }
  EXPECT_TRUE(service_.AwaitDone(2, absl::Seconds(10)));
  EXPECT_EQ(service_.cancelled(), 0);
}

TEST_F(StreamQueuesTest, ACancelledStreamIsToldAndThenDone) {
  auto stub = NewStub(0);
  grpc::ClientContext context;
  EchoStreamRequest request;
  request.set_text("hold");
  request.set_count(1);
  request.set_hold(true);
  auto reader = stub->EchoStream(&context, request);
  EchoResponse response;
  ASSERT_TRUE(reader->Read(&response));
  context.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(service_.AwaitDone(1, absl::Seconds(10)));
  EXPECT_EQ(service_.cancelled(), 1);
}

TEST_F(StreamQueuesTest, UnaryCallsAndHeldStreamsOnManyConnectionsShareTheServer) {
  constexpr int kChannels = 8;
  constexpr int kStreamsPerChannel = 25;
  std::vector<std::unique_ptr<EchoService::Stub>> stubs;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<EchoResponse>>> readers;
  for (int c = 0; c < kChannels; ++c) {
    stubs.push_back(NewStub(c));
    for (int s = 0; s < kStreamsPerChannel; ++s) {
      contexts.push_back(std::make_unique<grpc::ClientContext>());
      EchoStreamRequest request;
      request.set_text("held");
      request.set_count(1);
      request.set_hold(true);
      readers.push_back(stubs.back()->EchoStream(contexts.back().get(), request));
    }
  }
  for (auto& reader : readers) {
    EchoResponse response;
    ASSERT_TRUE(reader->Read(&response));
  }
  for (auto& stub : stubs) {
    grpc::ClientContext context;
    EchoRequest request;
    request.set_text("beside the streams");
    EchoResponse response;
    ASSERT_TRUE(stub->Echo(&context, request, &response).ok());
    EXPECT_EQ(response.text(), "beside the streams");
  }
  // Connections are spread over the queues, so their streams are too.
  EXPECT_GT(service_.start_threads(), 1u);
  for (auto& context : contexts) context->TryCancel();
  for (auto& reader : readers) EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(service_.AwaitDone(kChannels * kStreamsPerChannel, absl::Seconds(20)));
}

TEST_F(StreamQueuesTest, ShutdownEndsHeldStreamsAndReturnsOnceEachWriterIsDone) {
  constexpr int kStreams = 20;
  auto stub = NewStub(0);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<EchoResponse>>> readers;
  for (int s = 0; s < kStreams; ++s) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    EchoStreamRequest request;
    request.set_count(1);
    request.set_hold(true);
    readers.push_back(stub->EchoStream(contexts.back().get(), request));
    EchoResponse response;
    ASSERT_TRUE(readers.back()->Read(&response));
  }
  server_->Shutdown();
  // Shutdown returned after every writer was done: no call is left over.
  EXPECT_EQ(service_.done(), kStreams);
  EXPECT_EQ(service_.cancelled(), kStreams);
  for (auto& reader : readers) EXPECT_FALSE(reader->Finish().ok());
}

TEST_F(StreamQueuesTest, ShutdownWaitsForWritersThatFinishLate) {
  constexpr int kStreams = 5;
  service_.FinishCancelledAfter(absl::Milliseconds(300));
  auto stub = NewStub(0);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<EchoResponse>>> readers;
  for (int s = 0; s < kStreams; ++s) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    EchoStreamRequest request;
    request.set_count(1);
    request.set_hold(true);
    readers.push_back(stub->EchoStream(contexts.back().get(), request));
    EchoResponse response;
    ASSERT_TRUE(readers.back()->Read(&response));
  }
  server_->Shutdown();
  // The queues stayed up until each late Finish came back through them.
  EXPECT_EQ(service_.done(), kStreams);
  for (auto& reader : readers) EXPECT_FALSE(reader->Finish().ok());
}

TEST(StreamQueuesUnstartedTest, StopsWithoutEverStarting) {
  grpc::ServerBuilder builder;
  StreamQueues queues(2);
  queues.AddTo(builder);
  queues.Stop();
  EXPECT_EQ(queues.open_calls(), 0);
}

}  // namespace
}  // namespace switchboard::server
