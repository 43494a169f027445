#include "libs/fault/fault_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/log/log.h"

namespace switchboard::fault {
namespace {

std::atomic<bool> armed{false};
// Written once by Arm before any thread reaches a point.
std::string* armed_name = new std::string();
std::atomic<int64_t> remaining{0};

}  // namespace

absl::Status Arm(absl::string_view spec) {
  if (spec.empty()) {
    armed.store(false);
    return absl::OkStatus();
  }
  std::pair<std::string, std::string> parts = absl::StrSplit(spec, absl::MaxSplits(':', 1));
  int64_t nth = 1;
  if (parts.first.empty() ||
      (!parts.second.empty() && (!absl::SimpleAtoi(parts.second, &nth) || nth < 1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--fault_point: \"", spec, "\" is not NAME or NAME:N with N >= 1"));
  }
  *armed_name = parts.first;
  remaining.store(nth);
  armed.store(true);
  log::Warning("fault_point_armed", {{"point", *armed_name}, {"nth", nth}});
  return absl::OkStatus();
}

void Point(absl::string_view name) {
  if (!armed.load(std::memory_order_relaxed) || name != *armed_name) return;
  if (remaining.fetch_sub(1) != 1) return;
  log::Error("fault_point_hit", {{"point", std::string(name)}});
  raise(SIGKILL);
  _exit(137);  // not reached
}

}  // namespace switchboard::fault
