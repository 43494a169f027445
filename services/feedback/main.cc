// The feedback server: flags -> wiring -> serve until SIGTERM/SIGINT -> drain.
#include <filesystem>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "libs/auth/service_keys.h"
#include "libs/client/peer.h"
#include "libs/config/flags.h"
#include "libs/events/envelope.h"
#include "libs/events/event_sink.h"
#include "libs/events/relay.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "services/feedback/feedback.h"
#include "services/feedback/feedback_service.h"
#include "services/feedback/grpc_peers.h"
#include "services/feedback/sqlite_store.h"

namespace switchboard::feedback {
namespace {

struct Config {
  server::ServerOptions server;
  std::string data_dir = "data";
  auth::KeyOptions keys;
  events::EventSinkOptions events;
  std::string sessions_address = "localhost:7101";
  std::string routing_address = "localhost:7102";
  client::ClientTlsOptions peer_tls;
  absl::Duration peer_timeout = absl::Seconds(3);
  absl::Duration routing_sync_interval = absl::Seconds(5);
  FeedbackOptions feedback;
  absl::Duration relay_flush_deadline = absl::Seconds(5);
};

// Wakes the routing sweeper at once (after a commit that owes routing a
// call) or every interval (retries while routing is down).
class Waker {
 public:
  void Kick() {
    absl::MutexLock lock(&mu_);
    kicked_ = true;
  }
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  // Waits for a kick, Stop or `timeout`; false once stopped.
  bool Wait(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(
        absl::Condition(
            +[](Waker* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
              return w->kicked_ || w->stopped_;
            },
            this),
        timeout);
    kicked_ = false;
    return !stopped_;
  }

 private:
  absl::Mutex mu_;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

int Fail(absl::string_view what, const absl::Status& status) {
  log::Error("startup_failed",
             {{"service", "feedback"}, {"step", what}, {"error", status.ToString()}});
  return 1;
}

int Run(int argc, char** argv) {
  server::BlockTerminationSignals();
  Config config;
  config.server.service_name = "feedback";
  config.server.port = 7106;
  config.server.metrics_port = 9106;
  config.server.grpc_service_names = {v1::FeedbackService::service_full_name()};
  config::FlagSet flags("feedback");
  server::AddServerFlags(flags, &config.server);
  flags.Add("data_dir", &config.data_dir,
            "folder of feedback.db, the events file and the development keys");
  auth::AddKeyFlags(flags, &config.keys, /*signs_service_tokens=*/true);
  events::AddEventSinkFlags(flags, &config.events);
  flags.Add("sessions_address", &config.sessions_address,
            "host:port of the sessions service (checks sessions before a rating or complaint)");
  flags.Add("routing_address", &config.routing_address,
            "host:port of the routing service (queues complaints for supervisors)");
  client::AddClientTlsFlags(flags, &config.peer_tls, "peer_");
  flags.Add("peer_timeout", &config.peer_timeout,
            "deadline of each call to sessions or routing (the caller's, if sooner)");
  flags.Add("routing_sync_interval", &config.routing_sync_interval,
            "how often complaints not yet acknowledged by routing are retried");
  flags.Add("max_unresolved_complaints", &config.feedback.max_unresolved_complaints,
            "complaints a customer may have open (not RESOLVED) at once");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "feedback: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (absl::Status s = server::ApplyServerOptions(config.server); !s.ok()) {
    std::fprintf(stderr, "feedback: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::StatusOr<client::ChannelSecurity> peer_security =
      client::ChannelSecurity::Create(config.peer_tls, "peer_");
  if (!peer_security.ok()) {
    std::fprintf(stderr, "feedback: %s\n",
                 std::string(peer_security.status().message()).c_str());
    return 2;
  }
  if (config.peer_timeout <= absl::ZeroDuration() ||
      config.routing_sync_interval <= absl::ZeroDuration() ||
      config.feedback.max_unresolved_complaints < 1) {
    std::fprintf(stderr,
                 "feedback: --peer_timeout and --routing_sync_interval must be above 0, "
                 "--max_unresolved_complaints at least 1\n");
    return 2;
  }

  std::error_code error;
  std::filesystem::create_directories(config.data_dir + "/events", error);
  if (error) return Fail("data_dir", absl::UnavailableError(error.message()));
  absl::StatusOr<auth::ServiceKeys> keys = auth::LoadServiceKeys(
      config.keys, "feedback", config.data_dir, /*signs_service_tokens=*/true);
  if (!keys.ok()) return Fail("keys", keys.status());

  const std::string db_path = config.data_dir + "/feedback.db";
  auto db = storage::Database::OpenMigrated({db_path}, FeedbackMigrations());
  if (!db.ok()) return Fail("open_database", db.status());
  auto relay_db = storage::Database::Open({db_path});
  if (!relay_db.ok()) return Fail("open_database", relay_db.status());
  auto sink = events::OpenEventSink(config.events, "feedback", config.data_dir);
  if (!sink.ok()) return Fail("event_sink", sink.status());

  auto registry = std::make_shared<prometheus::Registry>();
  storage::GroupCommitter committer(db->get());
  events::Relay relay(std::move(*relay_db), &committer, sink->get(), *registry, {});
  SqliteFeedbackStore store(&committer, db_path, events::TopicFor(config.events.topic_prefix, "feedback"),
                            [&relay] { relay.Notify(); });
  FeedbackMetrics metrics(*registry);
  client::ServiceToken sessions_token(keys->signer.get(), "feedback", "sessions");
  client::ServiceToken routing_token(keys->signer.get(), "feedback", "routing");
  GrpcSessions sessions(client::PeerChannel(config.sessions_address, *peer_security),
                        &sessions_token, config.peer_timeout);
  GrpcRouting routing(client::PeerChannel(config.routing_address, *peer_security),
                      &routing_token, config.peer_timeout);
  Waker waker;
  Feedback feedback(&store, &sessions, &routing, RealClock(), &metrics, config.feedback,
                    [&waker] { waker.Kick(); });
  if (absl::Status s = feedback.Load(); !s.ok()) return Fail("load", s);

  server::BlockingPool pool(config.server.worker_threads, config.server.max_queued_calls);
  FeedbackService service(&feedback, keys->verifier.get(), RealClock(), &pool);
  auto server = server::Server::Start(config.server, {&service}, registry);
  if (!server.ok()) return Fail("listen", server.status());

  std::thread routing_sync([&] {
    while (waker.Wait(config.routing_sync_interval)) {
      if (absl::StatusOr<int> synced = feedback.SyncRouting(); !synced.ok()) {
        log::Error("routing_sync_failed", {{"error", synced.status().ToString()}});
      }
    }
  });

  const std::string signal = server::WaitForTerminationSignal();
  log::Info("shutdown_requested", {{"service", "feedback"}, {"signal", signal}});
  (*server)->Shutdown();
  waker.Stop();
  routing_sync.join();
  pool.Stop();
  relay.Stop(config.relay_flush_deadline);
  committer.Stop();
  log::Info("shutdown_complete", {{"service", "feedback"}});
  return 0;
}

}  // namespace
}  // namespace switchboard::feedback

int main(int argc, char** argv) { return switchboard::feedback::Run(argc, argv); }
