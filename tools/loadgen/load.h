#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/time/time.h"
#include "tools/loadgen/histogram.h"

namespace switchboard::loadgen {

// Nanoseconds on the monotonic clock (CLOCK_MONOTONIC: the same in every
// process of the machine).
int64_t NowNanos();

// How RunLoad offers calls.
struct LoadOptions {
  enum class Mode {
    // `concurrency` callers, each starting its next call when the previous
    // one ends: measures the saturation throughput. Latency runs from each
    // call's start.
    kClosed,
    // Calls start on a fixed schedule of `rate` per second whatever the
    // server does, and latency runs from each call's *scheduled* start, so a
    // stalled server shows up in the latencies of every call that should have
    // been sent meanwhile (no coordinated omission).
    kOpen,
  };
  Mode mode = Mode::kClosed;
  int concurrency = 16;
  double rate = 1000;
  // Calls started before warmup ends are not measured.
  absl::Duration warmup = absl::Seconds(1);
  // Length of the measured window; ignored when `requests` > 0.
  absl::Duration duration = absl::Seconds(10);
  // With a value above 0, the measured window ends after this many calls.
  int64_t requests = 0;
  // How long to wait for calls still running when the window ends.
  absl::Duration drain_timeout = absl::Seconds(30);
};

// Starts one call and returns without waiting for it. `caller` is in
// [0, concurrency) (open loop: the call's index modulo concurrency), which
// lets a scenario spread calls over channels or sessions; `scheduled_ns` is
// when the call was meant to start (NowNanos clock). `done` must be called
// exactly once, from any thread, with the gRPC status code (0..16).
using StartCall =
    std::function<void(int caller, int64_t scheduled_ns, std::function<void(int code)> done)>;

// What a run measured. Only calls started inside the measured window count.
struct LoadResult {
  Histogram latency;  // nanoseconds, OK calls only
  std::array<std::atomic<int64_t>, 17> codes{};  // every measured call, by status code
  int64_t ok = 0;
  int64_t failed = 0;
  // Seconds from the window's start to its end (closed loop with a count:
  // to the last measured call's end).
  double measured_seconds = 0;
  // Calls still running when drain_timeout passed (their latency is lost;
  // a figure to report, not to hide).
  int64_t not_drained = 0;
  double qps() const { return measured_seconds > 0 ? ok / measured_seconds : 0; }
};

// Runs the load and fills `result`. `on_window_start` runs when the measured
// window opens and `on_window_end` once its calls have ended (or the drain
// timed out): the place to sample server CPU time. Blocks until done. Calls
// still running after the drain timeout keep only the run's internal state
// alive; `result` must outlive them (in practice: the process exits).
void RunLoad(const LoadOptions& options, const StartCall& start,
             const std::function<void()>& on_window_start,
             const std::function<void()>& on_window_end, LoadResult* result);

}  // namespace switchboard::loadgen
