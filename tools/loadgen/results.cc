#include "tools/loadgen/results.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace switchboard::loadgen {

ProcSample SampleProcess(int pid) {
  ProcSample sample;
  if (pid <= 0) return sample;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    const size_t paren = line.rfind(')');
    if (paren != std::string::npos) {
      std::vector<std::string> fields =
          absl::StrSplit(line.substr(paren + 2), ' ', absl::SkipEmpty());
      int64_t utime = 0, stime = 0;
      if (fields.size() > 12 && absl::SimpleAtoi(fields[11], &utime) &&
          absl::SimpleAtoi(fields[12], &stime)) {
        sample.cpu_seconds = static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
      }
    }
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      // A failed parse leaves the figure unknown (-1), not 0.
      int64_t kib = 0;
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) sample.rss_kib = kib;
    }
  }
  return sample;
}

ProcSample SampleProcesses(const std::vector<int>& pids) {
  if (pids.empty()) return ProcSample();
  ProcSample total{0, 0};
  for (int pid : pids) {
    const ProcSample one = SampleProcess(pid);
    total.cpu_seconds = one.cpu_seconds < 0 || total.cpu_seconds < 0
                            ? -1
                            : total.cpu_seconds + one.cpu_seconds;
    total.rss_kib = one.rss_kib < 0 || total.rss_kib < 0 ? -1 : total.rss_kib + one.rss_kib;
  }
  return total;
}

double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double one_minute = -1;
  if (!(in >> one_minute)) return -1;
  return one_minute;
}

std::string LatencyJson(const Histogram& h) {
  auto us = [](int64_t ns) { return ns / 1000.0; };
  std::string buckets;
  for (const auto& [high, count] : h.NonEmptyBuckets()) {
    absl::StrAppendFormat(&buckets, "%s[%.3f,%d]", buckets.empty() ? "" : ",", us(high), count);
  }
  return absl::StrFormat(
      "{\"count\":%d,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
      "\"max_us\":%.1f,\"mean_us\":%.1f,\"buckets_us\":[%s]}",
      h.count(), us(h.Percentile(0.5)), us(h.Percentile(0.9)), us(h.Percentile(0.99)),
      us(h.Percentile(0.999)), us(h.max()), h.mean() / 1000.0, buckets);
}

std::string LatencyLine(const Histogram& h) {
  auto ms = [](int64_t ns) { return ns / 1e6; };
  return absl::StrFormat("p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms",
                         ms(h.Percentile(0.5)), ms(h.Percentile(0.9)), ms(h.Percentile(0.99)),
                         ms(h.Percentile(0.999)), ms(h.max()));
}

const char* CodeName(int code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  return code >= 0 && code < 17 ? kNames[code] : "UNKNOWN";
}

std::string CodesJson(const std::array<std::atomic<int64_t>, 17>& codes, bool skip_ok) {
  std::string out = "{";
  for (int c = skip_ok ? 1 : 0; c < 17; ++c) {
    const int64_t n = codes[c].load();
    if (n == 0) continue;
    if (out.size() > 1) out += ",";
    absl::StrAppend(&out, "\"", CodeName(c), "\":", n);
  }
  return out + "}";
}

}  // namespace switchboard::loadgen
