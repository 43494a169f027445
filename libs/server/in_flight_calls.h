#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <cstdint>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace switchboard::server {

// The calls a server is handling, gRPC health Watch streams left out: a
// watch stays open for as long as its client looks (load balancers and
// every health-checking channel hold one), so a drain that waited for it
// would always last its whole deadline. Counted by an interceptor that
// lives as long as its call. Thread-safe.
class InFlightCalls {
 public:
  // Registers each call with this count (the server must not outlive it).
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  int count() const;
  // Waits until no counted call has been in flight or begun for `quiet`, or
  // until `deadline`; true if no call is in flight when it returns.
  bool AwaitQuiet(absl::Duration quiet, absl::Time deadline) const;

 private:
  friend class CountedCall;
  void Add(int delta);

  mutable absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
  // Calls begun so far.
  int64_t begun_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace switchboard::server
