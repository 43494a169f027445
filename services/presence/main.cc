// The presence server: its flags and parts; libs/host opens, serves and stops.
#include "libs/host/host.h"
#include "libs/log/log.h"
#include "services/presence/presence.h"
#include "services/presence/presence_service.h"
#include "services/presence/open_store.h"

namespace switchboard::presence {
namespace {

int Run(int argc, char** argv) {
  host::Host host({"presence", v1::PresenceService::service_full_name(), 7104, 9104,
                   "folder of presence.db, the events file and the development keys"});
  PresenceOptions options;
  PresenceService::Options service_options;
  absl::Duration sweep_interval = absl::Seconds(1);
  int max_watch_backlog = static_cast<int>(service_options.max_watch_backlog);
  config::FlagSet& flags = host.flags();
  flags.Add("lease", &options.lease,
            "an agent goes OFFLINE when no device renews presence this long");
  flags.Add("reservation_hold", &options.default_hold,
            "hold time of a capacity reservation whose request gives none");
  flags.Add("sweep_interval", &sweep_interval,
            "how often lapsed leases and reservations are expired");
  flags.Add("max_watch_streams_per_principal", &service_options.max_watch_streams_per_principal,
            "WatchPresence streams one caller may hold at once; more get "
            "RESOURCE_EXHAUSTED with a retry-after");
  flags.Add("max_watch_backlog", &max_watch_backlog,
            "changes a WatchPresence stream may lag behind before it is ended with "
            "RESOURCE_EXHAUSTED (the watcher subscribes again)");
  if (auto exit = host.ParseFlags(argc, argv, [&]() -> absl::Status {
        if (options.lease < absl::Seconds(1) || sweep_interval <= absl::ZeroDuration()) {
          return absl::InvalidArgumentError(
              "--lease must be at least 1s and --sweep_interval above 0");
        }
        if (service_options.max_watch_streams_per_principal < 1 || max_watch_backlog < 1) {
          return absl::InvalidArgumentError(
              "--max_watch_streams_per_principal and --max_watch_backlog must be at least 1");
        }
        service_options.max_watch_backlog = static_cast<size_t>(max_watch_backlog);
        return absl::OkStatus();
      })) {
    return *exit;
  }
  if (auto exit = host.OpenKeys()) return *exit;
  PresenceStore* store = nullptr;
  if (auto exit = OpenPresenceStore(host, &store)) return *exit;
  auto& metrics = host.Make<PresenceMetrics>(host.registry());
  auto& presence = host.Make<Presence>(store, RealClock(), &metrics, options);
  if (absl::Status s = presence.Load(); !s.ok()) return host.Fail("load", s);
  auto& service = host.Make<PresenceService>(&presence, host.keys().verifier.get(), RealClock(),
                                             &host.pool(), service_options);
  host.OnDrain([&service] { service.EndStreams(); });
  host.Every(sweep_interval, [&presence] {
    if (absl::StatusOr<int> lapsed = presence.ExpireDue(); !lapsed.ok()) {
      log::Error("expire_failed", {{"error", lapsed.status().ToString()}});
    }
  });
  return host.Serve({&service});
}

}  // namespace
}  // namespace switchboard::presence

int main(int argc, char** argv) { return switchboard::presence::Run(argc, argv); }
