#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/client/tls.h"
#include "libs/clock/clock.h"

namespace switchboard::client {

// The service token a service presents to one peer: sub `caller` (this
// service), aud `callee`, signed with the caller's own key, valid for
// kLifetime and minted again kRenewBefore its expiry, so that it never
// expires mid-call and a stolen one is soon worthless. Thread-safe.
class ServiceToken {
 public:
  static constexpr absl::Duration kLifetime = absl::Minutes(10);
  static constexpr absl::Duration kRenewBefore = absl::Minutes(3);

  // `signer` (the caller's service key) must outlive the token.
  ServiceToken(const auth::TokenSigner* signer, std::string caller, std::string callee,
               Clock* clock = RealClock());
  std::string Get();

 private:
  const auth::TokenSigner* const signer_;
  const std::string caller_;
  const std::string callee_;
  Clock* const clock_;
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  absl::Time expires_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// How clients spread calls over a service's processes: round_robin over
// every address the target resolves to (each replica takes calls), only to
// those whose gRPC health (the server as a whole) watches SERVING. A
// standby reports its leader's health; while no leader serves, a draining
// server and a standby whose leader is gone get no calls, so none is cut
// short when a standby's forwarding port closes at its takeover.
inline constexpr char kBalancedServiceConfig[] =
    R"({"loadBalancingConfig": [{"round_robin": {}}],)"
    R"( "healthCheckConfig": {"serviceName": ""}})";

// A channel to another service at "host:port" (or any gRPC target, e.g.
// "dns:///routing.desk.svc.cluster.local:7102"), secured as `security` says
// (the service's --peer_tls_* flags), with keepalive so that a dead peer is
// noticed on long-lived streams, a capped reconnect backoff, and
// kBalancedServiceConfig.
std::shared_ptr<grpc::Channel> PeerChannel(const std::string& address,
                                           const ChannelSecurity& security);
// The same in plaintext, for tests and tools on loopback.
std::shared_ptr<grpc::Channel> PeerChannel(const std::string& address);

// A ClientContext for one call to another service: carries `token` and a
// deadline of `timeout` from now, or the incoming call's deadline if that is
// sooner (deadlines propagate; a call past its caller's deadline is not
// worth making). `incoming` may be null for calls made on the service's own
// behalf (background work).
std::unique_ptr<grpc::ClientContext> PeerContext(
    const std::string& token, absl::Duration timeout,
    const grpc::ServerContextBase* incoming = nullptr);

// The same for code that carries its caller's deadline as a time (domain
// logic knows nothing of gRPC): the deadline is `timeout` from now, or
// `caller_deadline` if that is sooner (absl::InfiniteFuture() for none).
std::unique_ptr<grpc::ClientContext> PeerContext(const std::string& token,
                                                 absl::Duration timeout,
                                                 absl::Time caller_deadline);

}  // namespace switchboard::client
