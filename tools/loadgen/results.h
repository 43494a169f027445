#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/loadgen/histogram.h"

namespace switchboard::loadgen {

// What the benchmarks read of a server process from /proc.
struct ProcSample {
  double cpu_seconds = -1;  // user + system, from /proc/PID/stat
  int64_t rss_kib = -1;     // VmRSS, from /proc/PID/status
};

// -1 figures when `pid` is not positive or /proc cannot be read.
ProcSample SampleProcess(int pid);

// The processes' figures summed: CPU -1 when any one's is unknown, RSS
// likewise; -1 figures for no process.
ProcSample SampleProcesses(const std::vector<int>& pids);

// The 1-minute load average of the machine (/proc/loadavg), -1 if unknown:
// the benchmarks state it because the machine may be shared.
double LoadAverage();

// A latency histogram of nanoseconds as JSON: count, p50/p90/p99/p99.9, max
// and mean in microseconds, and `buckets_us`, every non-empty bucket as
// [highest value in µs, count], so that the report can draw the whole
// distribution (tools/loadgen/plot.sh).
std::string LatencyJson(const Histogram& h);

// One human line: p50 p90 p99 p99.9 max in milliseconds.
std::string LatencyLine(const Histogram& h);

// Counts by gRPC status code as a JSON object named by code ("UNAVAILABLE"),
// zero counts left out; with `skip_ok`, OK too.
std::string CodesJson(const std::array<std::atomic<int64_t>, 17>& codes, bool skip_ok);

// The canonical name of a gRPC status code (0..16), "UNKNOWN" otherwise.
const char* CodeName(int code);

}  // namespace switchboard::loadgen
