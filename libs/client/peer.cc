#include "libs/client/peer.h"

#include <algorithm>

#include "libs/auth/grpc_auth.h"

namespace switchboard::client {

ServiceToken::ServiceToken(const auth::TokenSigner* signer, std::string caller,
                           std::string callee, Clock* clock)
    : signer_(signer),
      caller_(std::move(caller)),
      callee_(std::move(callee)),
      clock_(clock) {}

std::string ServiceToken::Get() {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (now + kRenewBefore >= expires_at_) {
    absl::StatusOr<std::string> token =
        auth::MintServiceToken(*signer_, caller_, callee_, now, kLifetime);
    // Minting fails only if OpenSSL cannot sign; keep the old token rather
    // than send none (the peer refuses it once it expires).
    if (token.ok()) {
      token_ = std::move(*token);
      expires_at_ = now + kLifetime;
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
  args.SetServiceConfigJSON(kBalancedServiceConfig);
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
