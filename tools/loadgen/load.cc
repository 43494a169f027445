#include "tools/loadgen/load.h"

#include <time.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace switchboard::loadgen {

int64_t NowNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace {

void SleepUntil(int64_t deadline_ns) {
  for (;;) {
    const int64_t left = deadline_ns - NowNanos();
    if (left <= 0) return;
    // The kernel's timer slack makes short sleeps overshoot; yield instead.
    if (left < 100'000) {
      std::this_thread::yield();
    } else {
      absl::SleepFor(absl::Nanoseconds(left - 50'000));
    }
  }
}

// Shared by the callers and the completion callbacks of one run.
struct RunState : std::enable_shared_from_this<RunState> {
  RunState(const LoadOptions& o, const StartCall& s, LoadResult* r)
      : options(o), start(s), result(r) {}
  const LoadOptions options;
  const StartCall start;
  LoadResult* const result;
  int64_t window_start = 0;
  int64_t window_end = std::numeric_limits<int64_t>::max();
  std::atomic<bool> stop{false};
  std::atomic<int64_t> measured_started{0};
  std::atomic<int64_t> last_measured_end{0};
  absl::Mutex mu;
  int64_t outstanding ABSL_GUARDED_BY(mu) = 0;

  // Whether another measured call may start (count mode).
  bool TakeMeasuredSlot() {
    if (options.requests <= 0) return true;
    return measured_started.fetch_add(1) < options.requests;
  }

  void Complete(bool measured, int64_t from_ns, int code) {
    const int64_t end = NowNanos();
    if (measured) {
      if (code < 0 || code > 16) code = 2;  // UNKNOWN
      result->codes[code].fetch_add(1, std::memory_order_relaxed);
      if (code == 0) result->latency.Record(end - from_ns);
      int64_t seen = last_measured_end.load();
      while (end > seen && !last_measured_end.compare_exchange_weak(seen, end)) {
      }
    }
    absl::MutexLock lock(&mu);
    --outstanding;
  }

  void Launch(int caller, int64_t scheduled, bool measured,
              std::function<void(int)> after) {
    {
      absl::MutexLock lock(&mu);
      ++outstanding;
    }
    start(caller, scheduled,
          [self = shared_from_this(), measured, scheduled, after = std::move(after)](int code) {
            self->Complete(measured, scheduled, code);
            if (after) after(code);
          });
  }

  // Closed loop: one caller's next call, started when its previous one ends.
  void Next(int caller) {
    if (stop.load()) return;
    const int64_t now = NowNanos();
    if (now >= window_end) {
      stop = true;
      return;
    }
    const bool measured = now >= window_start;
    if (measured && !TakeMeasuredSlot()) {
      stop = true;
      return;
    }
    Launch(caller, now, measured, [this, caller](int) { Next(caller); });
  }

  // Waits until no call runs, or the drain timeout passes.
  void Drain() {
    absl::MutexLock lock(&mu);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return outstanding == 0; };
    mu.AwaitWithTimeout(absl::Condition(&idle), options.drain_timeout);
    result->not_drained = outstanding;
  }
};

}  // namespace

void RunLoad(const LoadOptions& options, const StartCall& start,
             const std::function<void()>& on_window_start,
             const std::function<void()>& on_window_end, LoadResult* result) {
  // Shared with completions that may outlive a timed-out drain.
  auto state = std::make_shared<RunState>(options, start, result);
  const int64_t t0 = NowNanos();
  state->window_start = t0 + absl::ToInt64Nanoseconds(options.warmup);
  if (options.requests <= 0) {
    state->window_end = state->window_start + absl::ToInt64Nanoseconds(options.duration);
  }
  const int concurrency = std::max(1, options.concurrency);

  if (options.mode == LoadOptions::Mode::kClosed) {
    for (int c = 0; c < concurrency; ++c) state->Next(c);
    SleepUntil(state->window_start);
    if (on_window_start) on_window_start();
    while (!state->stop.load() && NowNanos() < state->window_end) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    state->stop = true;
  } else {
    const double interval = 1e9 / std::max(options.rate, 1e-3);
    bool window_open = false;
    for (int64_t i = 0;; ++i) {
      const int64_t scheduled = t0 + static_cast<int64_t>(i * interval);
      if (scheduled >= state->window_end) break;
      const bool measured = scheduled >= state->window_start;
      if (measured && !state->TakeMeasuredSlot()) break;
      SleepUntil(scheduled);
      if (measured && !window_open) {
        window_open = true;
        if (on_window_start) on_window_start();
      }
      state->Launch(static_cast<int>(i % concurrency), scheduled, measured, nullptr);
    }
    state->stop = true;
  }
  state->Drain();
  if (on_window_end) on_window_end();

  for (int c = 0; c < 17; ++c) {
    const int64_t n = result->codes[c].load();
    (c == 0 ? result->ok : result->failed) += n;
  }
  if (options.requests > 0 && options.mode == LoadOptions::Mode::kClosed) {
    result->measured_seconds =
        std::max<int64_t>(state->last_measured_end.load() - state->window_start, 1) / 1e9;
  } else if (options.requests > 0) {
    result->measured_seconds = options.requests / std::max(options.rate, 1e-3);
  } else {
    result->measured_seconds = absl::ToDoubleSeconds(options.duration);
  }
}

}  // namespace switchboard::loadgen
