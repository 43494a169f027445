#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/principal.h"
#include "switchboard/feedback/v1/feedback_service.grpc.pb.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"
#include "tools/loadgen/platform.h"

namespace switchboard::loadgen {

// How a client retries a call that failed with UNAVAILABLE or
// DEADLINE_EXCEEDED (a process died, a standby is taking over): the same
// request again, idempotency keys included, after a backoff that doubles
// from `first_backoff` up to `max_backoff`, until `give_up_after` has passed
// since the first attempt. The default makes one attempt.
struct RetryPolicy {
  absl::Duration give_up_after = absl::ZeroDuration();
  absl::Duration first_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(1);
  // Each attempt's deadline.
  absl::Duration attempt_deadline = absl::Seconds(15);
};

// Clients of the platform's services: one channel per service, spread with
// round_robin over its replicas (a standby, which does not listen, is
// skipped until it leads), reconnecting at least every 500 ms so that a
// standby taking over is found soon.
class PlatformClients {
 public:
  PlatformClients(const Platform& platform, RetryPolicy retry);

  std::string Token(auth::Role role, const std::string& subject) const {
    return platform_.Token(role, subject);
  }
  // A context carrying `token`, with one attempt's deadline.
  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) const;

  // Runs `call` (which makes one attempt with a fresh Context) as the
  // policy says; adds the retries made to `*retries`.
  grpc::Status Retrying(const std::function<grpc::Status()>& call, int* retries) const;

  const RetryPolicy& retry() const { return retry_; }

  sessions::v1::SessionsService::Stub& sessions() const { return *sessions_; }
  routing::v1::RoutingService::Stub& routing() const { return *routing_; }
  presence::v1::PresenceService::Stub& presence() const { return *presence_; }
  feedback::v1::FeedbackService::Stub& feedback() const { return *feedback_; }

 private:
  const Platform& platform_;
  const RetryPolicy retry_;
  std::unique_ptr<sessions::v1::SessionsService::Stub> sessions_;
  std::unique_ptr<routing::v1::RoutingService::Stub> routing_;
  std::unique_ptr<presence::v1::PresenceService::Stub> presence_;
  std::unique_ptr<feedback::v1::FeedbackService::Stub> feedback_;
};

// Agents "PREFIX-0".."PREFIX-(count-1)" who handle deposit chats in English,
// `capacity` at once, online with auto-accept (routing accepts their offers
// for them), kept online by a heartbeat every `heartbeat_every` (retried as
// the clients' policy says) while the object lives.
class OnlineAgents {
 public:
  OnlineAgents(const PlatformClients& clients, const std::string& prefix, int count,
               int capacity, absl::Duration heartbeat_every);
  ~OnlineAgents();

  // OK once every agent is set up; else the first error.
  const absl::Status& status() const { return status_; }
  const std::vector<std::string>& ids() const { return ids_; }
  // Heartbeats that failed after their retries.
  int lost_heartbeats() const { return lost_heartbeats_; }

 private:
  const PlatformClients& clients_;
  std::vector<std::string> ids_;
  absl::Status status_;
  std::atomic<bool> done_{false};
  std::atomic<int> lost_heartbeats_{0};
  std::thread heartbeats_;
};

struct JourneyOptions {
  // Messages after the assignment, alternating customer and agent.
  int messages = 10;
  // Also watch the session as the customer's app does: StreamSessionEvents
  // from the start, resumed after the last sequence seen whenever the stream
  // breaks (ends with an error), until it has seen the session's last
  // event or the server ends it (OK: the session closed).
  bool watch = false;
};

// What one journey did and saw.
struct Journey {
  std::string customer;
  std::string session_id;
  std::string agent;
  // The messages each party sent, in order: (client message id, sequence).
  std::vector<std::pair<std::string, int64_t>> customer_sent, agent_sent;
  // With `watch`: every event sequence the stream delivered, in arrival
  // order across resumes, and how many times it was opened again after
  // breaking (attempts that failed included).
  std::vector<int64_t> streamed;
  int stream_resumes = 0;
  // The session's last sequence at the end.
  int64_t last_sequence = 0;
  // Calls retried (the stream's resumes not included).
  int retries = 0;
  // When the client first saw the agent assigned, and when it first asked
  // to resolve: within the time the agent held the session. (Not the
  // resolve's answer: a retried resolve whose first attempt committed and
  // freed the agent is answered later, e.g. after another process took
  // over.)
  absl::Time assigned_seen, resolve_called;
  // Empty if the journey completed; else the stage that failed and how.
  std::string failed_stage;
  grpc::Status failure;
};

// Plays journey `index` as customer `customer`: create a chat asking for a
// human (the bot escalates) → wait for an agent (GetSession) → the messages
// → the agent resolves → the customer rates. Idempotency keys (request ids,
// client message ids) are derived from `index`, so a retried call cannot
// act twice.
Journey PlayJourney(const PlatformClients& clients, const JourneyOptions& options,
                    const std::string& customer, int index);

}  // namespace switchboard::loadgen
