// The feedback server: its flags and parts; libs/host opens, serves and stops.
#include "libs/client/peer.h"
#include "libs/host/host.h"
#include "libs/log/log.h"
#include "services/feedback/feedback.h"
#include "services/feedback/feedback_service.h"
#include "services/feedback/grpc_peers.h"
#include "services/feedback/open_store.h"

namespace switchboard::feedback {
namespace {

int Run(int argc, char** argv) {
  host::Host host({"feedback", v1::FeedbackService::service_full_name(), 7106, 9106,
                   "folder of feedback.db, the events file and the development keys",
                   /*calls_peers=*/true});
  std::string sessions_address = "localhost:7101";
  std::string routing_address = "localhost:7102";
  absl::Duration peer_timeout = absl::Seconds(3);
  absl::Duration routing_sync_interval = absl::Seconds(5);
  FeedbackOptions options;
  config::FlagSet& flags = host.flags();
  flags.Add("sessions_address", &sessions_address,
            "host:port of the sessions service (checks sessions before a rating or complaint)");
  flags.Add("routing_address", &routing_address,
            "host:port of the routing service (queues complaints for supervisors)");
  flags.Add("peer_timeout", &peer_timeout,
            "deadline of each call to sessions or routing (the caller's, if sooner)");
  flags.Add("routing_sync_interval", &routing_sync_interval,
            "how often complaints not yet acknowledged by routing are retried");
  flags.Add("max_unresolved_complaints", &options.max_unresolved_complaints,
            "complaints a customer may have open (not RESOLVED) at once");
  if (auto exit = host.ParseFlags(argc, argv, [&]() -> absl::Status {
        if (peer_timeout <= absl::ZeroDuration() ||
            routing_sync_interval <= absl::ZeroDuration() ||
            options.max_unresolved_complaints < 1) {
          return absl::InvalidArgumentError(
              "--peer_timeout and --routing_sync_interval must be above 0, "
              "--max_unresolved_complaints at least 1");
        }
        return absl::OkStatus();
      })) {
    return *exit;
  }
  if (auto exit = host.OpenKeys()) return *exit;
  FeedbackStore* store = nullptr;
  if (auto exit = OpenFeedbackStore(host, &store)) return *exit;
  auto& metrics = host.Make<FeedbackMetrics>(host.registry());
  auto* signer = host.keys().signer.get();
  auto& sessions = host.Make<GrpcSessions>(
      client::PeerChannel(sessions_address, host.peer_security()),
      &host.Make<client::ServiceToken>(signer, "feedback", "sessions"), peer_timeout);
  auto& routing = host.Make<GrpcRouting>(
      client::PeerChannel(routing_address, host.peer_security()),
      &host.Make<client::ServiceToken>(signer, "feedback", "routing"), peer_timeout);
  // Kicked after a commit that owes routing a call; else every interval
  // (retries while routing is down).
  Feedback* synced = nullptr;
  host::Periodic& sync = host.Every(routing_sync_interval, [&synced] {
    if (absl::StatusOr<int> done = synced->SyncRouting(); !done.ok()) {
      log::Error("routing_sync_failed", {{"error", done.status().ToString()}});
    }
  });
  auto& feedback = host.Make<Feedback>(store, &sessions, &routing, RealClock(), &metrics,
                                       options, [&sync] { sync.Wake(); });
  synced = &feedback;
  if (absl::Status s = feedback.Load(); !s.ok()) return host.Fail("load", s);
  auto& service = host.Make<FeedbackService>(&feedback, host.keys().verifier.get(), RealClock(),
                                             &host.pool());
  return host.Serve({&service});
}

}  // namespace
}  // namespace switchboard::feedback

int main(int argc, char** argv) { return switchboard::feedback::Run(argc, argv); }
