// RunUnary and the server limits, through a real in-process gRPC server.
#include "libs/server/unary.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/limits/retry_after.h"
#include "libs/metrics/testdata/echo.grpc.pb.h"
#include "libs/server/blocking_pool.h"
#include "libs/server/server.h"

namespace switchboard::server {
namespace {

using ::switchboard::testing::v1::EchoRequest;
using ::switchboard::testing::v1::EchoResponse;
using ::switchboard::testing::v1::EchoService;
using ::switchboard::testing::v1::EchoStreamRequest;

// Writes one response, then holds the stream open until it is cancelled.
class HeldStream : public grpc::ServerWriteReactor<EchoResponse> {
 public:
  explicit HeldStream(const EchoStreamRequest& request) {
    response_.set_text(request.text());
    StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) FinishOnce(grpc::Status::CANCELLED);
  }
  void OnCancel() override { FinishOnce(grpc::Status::CANCELLED); }
  void OnDone() override { delete this; }

 private:
  void FinishOnce(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  EchoResponse response_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// Echo runs its work on the pool with RunUnary. The text picks the work:
// "block" waits for `release`, "busy" answers RESOURCE_EXHAUSTED with a
// retry-after of 7 s, "later" (RunUnaryAsync) returns from the pool and
// leaves its call to whoever calls FinishLater, anything else is echoed.
class EchoImpl final : public EchoService::CallbackService {
 public:
  explicit EchoImpl(BlockingPool* pool) : pool_(pool) {}

  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const EchoRequest* request,
                                 EchoResponse* response) override {
    if (request->text() == "too late") late_context.store(context);
    if (request->text() == "later") {
      return RunUnaryAsync(context, *pool_, [this, response](FinishUnary finish) {
        ran.fetch_add(1);
        absl::MutexLock lock(&later_mu_);
        later_ = [response, finish = std::move(finish)](absl::Status status) {
          if (status.ok()) response->set_text("later");
          finish(std::move(status));
        };
      });
    }
    return RunUnary(context, *pool_, response, [this, request]() -> absl::StatusOr<EchoResponse> {
      ran.fetch_add(1);
      if (request->text() == "block") {
        blocked.Notify();
        release.WaitForNotification();
      }
      if (request->text() == "busy") return limits::Exhausted("busy", absl::Seconds(7));
      EchoResponse echoed;
      echoed.set_text(request->text());
      return echoed;
    });
  }

  grpc::ServerWriteReactor<EchoResponse>* EchoStream(
      grpc::CallbackServerContext* context, const EchoStreamRequest* request) override {
    return new HeldStream(*request);
  }

  std::atomic<int> ran{0};
  // The server side of the last call asking "too late".
  std::atomic<grpc::CallbackServerContext*> late_context{nullptr};
  absl::Notification blocked;
  absl::Notification release;

  // Whether a "later" call waits for FinishLater.
  bool later_waiting() {
    absl::MutexLock lock(&later_mu_);
    return later_ != nullptr;
  }
  // Ends the waiting "later" call with `status`, on the calling thread.
  void FinishLater(absl::Status status) {
    std::function<void(absl::Status)> later;
    {
      absl::MutexLock lock(&later_mu_);
      later.swap(later_);
    }
    later(std::move(status));
  }

 private:
  BlockingPool* const pool_;
  absl::Mutex later_mu_;
  std::function<void(absl::Status)> later_ ABSL_GUARDED_BY(later_mu_);
};

class UnaryTest : public ::testing::Test {
 protected:
  // One worker, one call may wait for it.
  explicit UnaryTest(int max_concurrent_streams = 10'000)
      : pool_(1, /*max_queued=*/1), service_(&pool_) {
    ServerOptions options;
    options.service_name = "unary-test";
    options.bind_address = "127.0.0.1";
    options.max_concurrent_streams = max_concurrent_streams;
    options.drain_deadline = absl::Seconds(1);
    auto server = Server::Start(options, {&service_}, std::make_shared<prometheus::Registry>());
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = EchoService::NewStub(server_->InProcessChannel());
  }
  ~UnaryTest() override {
    if (!service_.release.HasBeenNotified()) service_.release.Notify();
    server_->Shutdown();
    pool_.Stop();
  }

  struct Answer {
    grpc::Status status;
    std::string text;
    std::multimap<std::string, std::string> trailers;
  };
  Answer Call(const std::string& text, absl::Duration deadline = absl::Seconds(30)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    EchoRequest request;
    request.set_text(text);
    EchoResponse response;
    Answer answer;
    answer.status = stub_->Echo(&context, request, &response);
    answer.text = response.text();
    for (const auto& [key, value] : context.GetServerTrailingMetadata()) {
      answer.trailers.emplace(std::string(key.data(), key.size()),
                              std::string(value.data(), value.size()));
    }
    return answer;
  }
  static std::vector<std::string> RetryAfter(const Answer& answer) {
    std::vector<std::string> values;
    auto [begin, end] = answer.trailers.equal_range("retry-after");
    for (auto it = begin; it != end; ++it) values.push_back(it->second);
    return values;
  }

  BlockingPool pool_;
  EchoImpl service_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<EchoService::Stub> stub_;
};

TEST_F(UnaryTest, AFullBacklogIsRefusedAtOnceWithResourceExhaustedAndRetryAfter) {
  std::thread blocker([&] { EXPECT_EQ(Call("block").text, "block"); });
  ASSERT_TRUE(service_.blocked.WaitForNotificationWithTimeout(absl::Seconds(30)));
  std::thread queued([&] { EXPECT_EQ(Call("queued").text, "queued"); });
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (pool_.queued() < 1 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(pool_.queued(), 1);

  const Answer refused = Call("one too many");
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.status.error_message();
  EXPECT_EQ(RetryAfter(refused), std::vector<std::string>{"1"});

  service_.release.Notify();
  blocker.join();
  queued.join();
  EXPECT_EQ(service_.ran.load(), 2) << "the refused call must not run";
  EXPECT_TRUE(Call("after").status.ok());
}

TEST_F(UnaryTest, AStoppingPoolAnswersUnavailable) {
  pool_.Stop();
  const Answer answer = Call("late");
  EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << answer.status.error_message();
  EXPECT_TRUE(RetryAfter(answer).empty());
  EXPECT_EQ(service_.ran.load(), 0);
}

TEST_F(UnaryTest, TheLogicsRetryAfterBecomesExactlyOneTrailer) {
  const Answer answer = Call("busy");
  EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(RetryAfter(answer), std::vector<std::string>{"7"});
}

TEST_F(UnaryTest, ACallWhoseClientGaveUpWhileQueuedIsNotRun) {
  std::thread blocker([&] { Call("block"); });
  ASSERT_TRUE(service_.blocked.WaitForNotificationWithTimeout(absl::Seconds(30)));
  const Answer late = Call("too late", absl::Milliseconds(200));
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server learns of the deadline by its own timer, a moment after the
  // client: release the worker once it has.
  grpc::CallbackServerContext* server_side = service_.late_context.load();
  ASSERT_NE(server_side, nullptr);
  const absl::Time limit = absl::Now() + absl::Seconds(30);
  while (!server_side->IsCancelled() && absl::Now() < limit) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(server_side->IsCancelled());
  service_.release.Notify();
  blocker.join();
  // The expired call leaves the queue without running its work.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (pool_.queued() > 0 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_TRUE(Call("next").status.ok());
  EXPECT_EQ(service_.ran.load(), 2);
}

TEST_F(UnaryTest, AnAsyncCallFreesItsWorkerAndEndsWhenFinishedFromAnotherThread) {
  Answer later;
  std::thread caller([&] { later = Call("later"); });
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!service_.later_waiting() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(service_.later_waiting());
  // The one worker is free while the call waits: the next call is answered.
  EXPECT_EQ(Call("meanwhile").text, "meanwhile");
  service_.FinishLater(absl::OkStatus());
  caller.join();
  EXPECT_TRUE(later.status.ok()) << later.status.error_message();
  EXPECT_EQ(later.text, "later");

  // An error given from the other thread keeps its retry-after.
  std::thread refused([&] { later = Call("later"); });
  while (!service_.later_waiting() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(service_.later_waiting());
  service_.FinishLater(limits::Exhausted("busy", absl::Seconds(7)));
  refused.join();
  EXPECT_EQ(later.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(RetryAfter(later), std::vector<std::string>{"7"});
}

class StreamCapTest : public UnaryTest {
 protected:
  StreamCapTest() : UnaryTest(/*max_concurrent_streams=*/2) {}
};

// A client reading one held stream on its own thread (a synchronous stream
// call blocks until its stream may start); `first` is notified when its
// first response (or its end) arrives.
struct HeldCall {
  HeldCall(EchoService::Stub& stub, const std::string& text) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    thread = std::thread([this, &stub, text] {
      EchoStreamRequest request;
      request.set_text(text);
      std::unique_ptr<grpc::ClientReader<EchoResponse>> reader =
          stub.EchoStream(&context, request);
      EchoResponse response;
      got_response = reader->Read(&response);
      first.Notify();
      while (reader->Read(&response)) {
      }
      status = reader->Finish();
    });
  }
  ~HeldCall() {
    context.TryCancel();
    thread.join();
  }
  grpc::ClientContext context;
  std::thread thread;
  absl::Notification first;
  bool got_response = false;
  grpc::Status status;
};

TEST_F(StreamCapTest, StreamsBeyondTheConnectionsCapWaitForAFreeSlotInsteadOfFailing) {
  auto one = std::make_unique<HeldCall>(*stub_, "one");
  auto two = std::make_unique<HeldCall>(*stub_, "two");
  ASSERT_TRUE(one->first.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(two->first.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(one->got_response && two->got_response);

  // The same connection's third stream is held back by the client...
  HeldCall three(*stub_, "three");
  EXPECT_FALSE(three.first.WaitForNotificationWithTimeout(absl::Seconds(1)));
  // ...and starts as soon as one of the first two ends: it never failed.
  one.reset();
  ASSERT_TRUE(three.first.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(three.got_response) << three.status.error_message();
}

// Calls of 3 MiB each from 8 connections at once: how each ended, by code.
std::map<grpc::StatusCode, int> BigCallsFromManyConnections(int port) {
  absl::Mutex mu;
  std::map<grpc::StatusCode, int> codes;
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&] {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // A connection each.
      auto stub = EchoService::NewStub(grpc::CreateCustomChannel(
          absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args));
      for (int i = 0; i < 3; ++i) {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
        EchoRequest request;
        request.set_text(std::string(3 << 20, 'x'));
        EchoResponse response;
        const grpc::StatusCode code = stub->Echo(&context, request, &response).error_code();
        absl::MutexLock lock(&mu);
        ++codes[code];
      }
    });
  }
  for (std::thread& client : clients) client.join();
  return codes;
}

TEST(ResourceQuotaTest, GrpcsMemoryIsCappedByTheQuotaInsteadOfGrowingWithTheLoad) {
  for (const int64_t quota : {int64_t{1} << 20, ServerOptions().grpc_memory_quota_bytes}) {
    BlockingPool pool(4, 1000);
    EchoImpl service(&pool);
    ServerOptions options;
    options.service_name = "quota-test";
    options.bind_address = "127.0.0.1";
    options.grpc_memory_quota_bytes = quota;
    auto server = Server::Start(options, {&service}, std::make_shared<prometheus::Registry>());
    ASSERT_TRUE(server.ok()) << server.status();
    std::map<grpc::StatusCode, int> codes = BigCallsFromManyConnections((*server)->port());
    const int refused =
        codes[grpc::StatusCode::RESOURCE_EXHAUSTED] + codes[grpc::StatusCode::UNAVAILABLE];
    if (quota == ServerOptions().grpc_memory_quota_bytes) {
      EXPECT_EQ(codes[grpc::StatusCode::OK], 24) << "the default quota carries this load";
    } else {
      // 24 MiB of requests against 1 MiB: gRPC refuses streams (RST_STREAM
      // ENHANCE_YOUR_CALM, GOAWAY) rather than taking the memory.
      EXPECT_GT(refused, 0) << "calls OK: " << codes[grpc::StatusCode::OK];
      EXPECT_EQ(codes[grpc::StatusCode::OK] + refused, 24);
    }
    // The server itself is unharmed.
    auto stub = EchoService::NewStub((*server)->InProcessChannel());
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    EchoRequest small;
    small.set_text("still here");
    EchoResponse response;
    EXPECT_TRUE(stub->Echo(&context, small, &response).ok());
    (*server)->Shutdown();
    pool.Stop();
  }
}

}  // namespace
}  // namespace switchboard::server
