#include "libs/server/in_flight_calls.h"

#include <algorithm>
#include <cstring>

namespace switchboard::server {

// Counts its call from creation (the call has arrived) to destruction (gRPC
// is done with it).
class CountedCall : public grpc::experimental::Interceptor {
 public:
  explicit CountedCall(InFlightCalls* calls) : calls_(calls) { calls_->Add(1); }
  ~CountedCall() override { calls_->Add(-1); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  InFlightCalls* const calls_;
};

namespace {

class CountedCallFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CountedCallFactory(InFlightCalls* calls) : calls_(calls) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (std::strcmp(info->method(), "/grpc.health.v1.Health/Watch") == 0) return nullptr;
    return new CountedCall(calls_);
  }

 private:
  InFlightCalls* const calls_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
InFlightCalls::InterceptorFactory() {
  return std::make_unique<CountedCallFactory>(this);
}

void InFlightCalls::Add(int delta) {
  absl::MutexLock lock(&mu_);
  count_ += delta;
  if (delta > 0) begun_ += delta;
}

int InFlightCalls::count() const {
  absl::MutexLock lock(&mu_);
  return count_;
}

bool InFlightCalls::AwaitQuiet(absl::Duration quiet, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto none = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return count_ == 0; };
  while (mu_.AwaitWithDeadline(absl::Condition(&none), deadline)) {
    // Quiet once `quiet` passes with no call begun; a call begun starts
    // the wait over.
    const int64_t begun = begun_;
    auto another = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return begun_ != begun; };
    const absl::Time quiet_until = std::min(absl::Now() + quiet, deadline);
    if (!mu_.AwaitWithDeadline(absl::Condition(&another), quiet_until)) return true;
  }
  return false;
}

}  // namespace switchboard::server
