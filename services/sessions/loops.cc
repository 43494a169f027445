#include "services/sessions/loops.h"

#include "libs/log/log.h"

namespace switchboard::sessions {

void ScheduleLoops(host::Host& host, const ServerConfig& config, Sessions& sessions) {
  host.Every(config.sweep_interval, [&sessions] {
    if (absl::StatusOr<int> changed = sessions.Sweep(); !changed.ok()) {
      log::Error("sweep_failed", {{"error", changed.status().ToString()}});
    }
  });
  host.Every(config.routing_retry_interval, [&sessions] { sessions.RetryRouting(); },
             /*run_first=*/true);
}

}  // namespace switchboard::sessions
