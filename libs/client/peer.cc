#include "libs/client/peer.h"

#include <algorithm>

#include "libs/auth/grpc_auth.h"

namespace switchboard::client {
namespace {

constexpr absl::Duration kTokenLifetime = absl::Hours(1);
// Re-mint this long before expiry, so a token never expires mid-call.
constexpr absl::Duration kRenewBefore = absl::Minutes(10);

}  // namespace

ServiceToken::ServiceToken(const auth::TokenCodec* codec, std::string service_name,
                           Clock* clock)
    : codec_(codec), service_name_(std::move(service_name)), clock_(clock) {}

std::string ServiceToken::Get() {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (now + kRenewBefore >= expires_at_) {
    auth::Principal principal{service_name_, auth::Role::kService, now + kTokenLifetime};
    absl::StatusOr<std::string> token = auth::MintAccessToken(*codec_, principal, now);
    // Minting fails only for a key too short to sign with, which the service
    // refused at start; keep the old token rather than send none.
    if (token.ok()) {
      token_ = std::move(*token);
      expires_at_ = principal.expires_at;
    }
  }
  return token_;
}

std::shared_ptr<grpc::Channel> PeerChannel(const std::string& address) {
  return PeerChannel(address, ChannelSecurity());
}

std::shared_ptr<grpc::Channel> PeerChannel(const std::string& address,
                                           const ChannelSecurity& security) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5'000);
  return security.Channel(address, std::move(args));
}

std::unique_ptr<grpc::ClientContext> PeerContext(const std::string& token,
                                                 absl::Duration timeout,
                                                 const grpc::ServerContextBase* incoming) {
  return PeerContext(token, timeout,
                     incoming != nullptr ? absl::FromChrono(incoming->deadline())
                                         : absl::InfiniteFuture());
}

std::unique_ptr<grpc::ClientContext> PeerContext(const std::string& token,
                                                 absl::Duration timeout,
                                                 absl::Time caller_deadline) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(std::min(absl::Now() + timeout, caller_deadline)));
  if (!token.empty()) auth::AttachToken(*context, token);
  return context;
}

}  // namespace switchboard::client
