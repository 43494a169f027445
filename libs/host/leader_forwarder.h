#pragma once

// What a standby does with the calls that reach it: it passes each one,
// whatever its method, to the process that leads (StoreOptions::
// one_process), and the leader's answer back. So every replica of a
// service with a leader takes calls: clients balancing over all of them
// (round_robin over a headless Service) and a client that knows one
// address get the leader's answers, with one more hop through a standby.
// The leader alone still decides; a standby forwards, it does not serve.
//
// A forwarded call keeps its method, messages in both directions (unary
// and streaming alike), the caller's metadata (its token included), its
// deadline, and the leader's status, message, error details and trailing
// metadata (retry-after). Initial metadata from the leader is not passed on
// (the services send none). While no leader has published its address, or
// once Stop was called, calls fail UNAVAILABLE naming the reason; a call
// the leader's death breaks fails as the leader's channel says
// (UNAVAILABLE), and the client retries. A method the binary's protobuf
// descriptors know as unary is forwarded as one unary call (cheaper); any
// other as a stream.

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/client/tls.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace switchboard::host {

class LeaderForwarder : public grpc::CallbackGenericService {
 public:
  // `service` names the service in errors. Connections to the leader use
  // `to_leader` (plaintext, or TLS checking the leader's certificate).
  // Each call's end counts in `registry`'s
  // switchboard_forwarded_calls_total{grpc_code} (kept apart from
  // grpc_server_handled_total, which the leader counts the call in).
  LeaderForwarder(std::string service, prometheus::Registry& registry,
                  client::ChannelSecurity to_leader = client::ChannelSecurity());
  ~LeaderForwarder() override;

  // Forwards new calls to `address` ("host:port"; empty: nobody to forward
  // to). Calls in flight stay with the leader they started on.
  void Follow(const std::string& address);
  // From now on new calls fail, and the calls in flight are cancelled
  // towards the leader and end UNAVAILABLE: this process takes over.
  void Stop();

  // Waits up to `limit` for the calls in flight to end; true if none is
  // left (after Stop, so that they end UNAVAILABLE rather than cancelled).
  bool WaitUntilIdle(absl::Duration limit);

  // Calls forwarded since start (ended or not).
  int64_t forwarded() const;
  // Calls that ended with `code`, forwarded or refused here.
  double ended(grpc::StatusCode code) const;

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override;

 private:
  class Call;
  class UnaryCall;
  class Refusal;
  bool stopping() const;
  // How a forwarded call ends: the leader's status, but UNAVAILABLE for
  // one cancelled because this process takes over.
  grpc::Status Outcome(const grpc::Status& status) const;
  // Counts a call's end.
  void Ended(grpc::StatusCode code);
  // The next connection to the leader for a new call; UNAVAILABLE naming
  // why there is none.
  absl::StatusOr<std::shared_ptr<grpc::GenericStub>> NextStub();
  // The calls in flight, by their context towards the leader, for Stop.
  void Remember(std::shared_ptr<grpc::ClientContext> context);
  void Forget(grpc::ClientContext* context);

  const std::string service_;
  const client::ChannelSecurity to_leader_;
  prometheus::Family<prometheus::Counter>& ended_;
  mutable absl::Mutex mu_;
  std::string address_ ABSL_GUARDED_BY(mu_);
  // A few connections to the leader, taken in turn: a connection carries at
  // most the leader's --max_concurrent_streams calls at once.
  std::vector<std::shared_ptr<grpc::GenericStub>> stubs_ ABSL_GUARDED_BY(mu_);
  size_t next_stub_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<grpc::ClientContext*, std::shared_ptr<grpc::ClientContext>> calls_
      ABSL_GUARDED_BY(mu_);
  int64_t forwarded_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace switchboard::host
