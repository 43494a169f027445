#include "tools/loadgen/load.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace switchboard::loadgen {
namespace {

// A server with one worker that answers calls in arrival order, instantly,
// except that it stalls once for `stall` when the first call arrives after
// `stall_at` (ns since construction).
class FakeServer {
 public:
  FakeServer(absl::Duration stall_at, absl::Duration stall)
      : born_(NowNanos()),
        stall_at_(absl::ToInt64Nanoseconds(stall_at)),
        stall_(stall),
        worker_([this] { Work(); }) {}
  ~FakeServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    worker_.join();
  }
  StartCall Caller(int code = 0) {
    return [this, code](int, int64_t, std::function<void(int)> done) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.push_back([done, code] { done(code); });
      }
      cv_.notify_one();
    };
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> call;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        call = std::move(queue_.front());
        queue_.pop_front();
      }
      if (!stalled_ && NowNanos() - born_ >= stall_at_) {
        stalled_ = true;
        absl::SleepFor(stall_);
      }
      call();
    }
  }

  const int64_t born_;
  const int64_t stall_at_;
  const absl::Duration stall_;
  bool stalled_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

TEST(LoadTest, OpenLoopChargesAStallToEveryCallScheduledDuringIt) {
  // 1,000 calls/s for 1 s; the server stalls 200 ms in the middle. About 200
  // calls were due during the stall, so ~20% of latencies are >= 50 ms.
  FakeServer server(absl::Milliseconds(500), absl::Milliseconds(200));
  LoadOptions options;
  options.mode = LoadOptions::Mode::kOpen;
  options.rate = 1000;
  options.warmup = absl::ZeroDuration();
  options.duration = absl::Seconds(1);
  LoadResult result;
  RunLoad(options, server.Caller(), nullptr, nullptr, &result);
  EXPECT_NEAR(result.ok, 1000, 5);
  EXPECT_EQ(result.failed, 0);
  EXPECT_GE(result.latency.Percentile(0.9), 50'000'000);
  EXPECT_GE(result.latency.max(), 190'000'000);
}

TEST(LoadTest, ClosedLoopWithOneCallerSeesTheStallOnce) {
  // The same stall seen by one closed-loop caller: a single slow call (the
  // coordinated omission the open loop avoids).
  FakeServer server(absl::Milliseconds(300), absl::Milliseconds(200));
  LoadOptions options;
  options.mode = LoadOptions::Mode::kClosed;
  options.concurrency = 1;
  options.warmup = absl::ZeroDuration();
  options.duration = absl::Milliseconds(600);
  LoadResult result;
  RunLoad(options, server.Caller(), nullptr, nullptr, &result);
  EXPECT_GT(result.ok, 1000);
  EXPECT_GE(result.latency.max(), 190'000'000);
  EXPECT_LT(result.latency.Percentile(0.99), 10'000'000);
}

TEST(LoadTest, CountModeMeasuresExactlyThatManyCallsAndCountsCodes) {
  FakeServer server(absl::Hours(1), absl::ZeroDuration());
  LoadOptions options;
  options.mode = LoadOptions::Mode::kClosed;
  options.concurrency = 8;
  options.warmup = absl::Milliseconds(20);
  options.requests = 500;
  bool started = false, ended = false;
  LoadResult result;
  RunLoad(
      options, server.Caller(/*code=*/14), [&] { started = true; }, [&] { ended = true; },
      &result);
  EXPECT_TRUE(started);
  EXPECT_TRUE(ended);
  EXPECT_EQ(result.ok, 0);
  EXPECT_EQ(result.failed, 500);
  EXPECT_EQ(result.codes[14].load(), 500);
  EXPECT_EQ(result.latency.count(), 0);
  EXPECT_GT(result.measured_seconds, 0);
  EXPECT_EQ(result.not_drained, 0);
}

TEST(LoadTest, OpenLoopCountModeStopsAfterTheCount) {
  FakeServer server(absl::Hours(1), absl::ZeroDuration());
  LoadOptions options;
  options.mode = LoadOptions::Mode::kOpen;
  options.rate = 5000;
  options.warmup = absl::ZeroDuration();
  options.requests = 300;
  LoadResult result;
  RunLoad(options, server.Caller(), nullptr, nullptr, &result);
  EXPECT_EQ(result.ok, 300);
  EXPECT_NEAR(result.measured_seconds, 0.06, 1e-9);
}

}  // namespace
}  // namespace switchboard::loadgen
