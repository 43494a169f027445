// The bootstrap baseline: the same Echo behind everything every Switchboard
// service puts in front of its handlers: libs/server's Server::Start (health,
// reflection, per-RPC Prometheus metrics, keepalive, receive limits, drain)
// and an access token checked on every call (libs/auth), as a service's
// adapter checks it. The handler then answers on the callback thread, since
// echo has no blocking work for the pool.
//
//   bootstrap_echo_server --port=7191 --metrics_port=9191 --token_key_file=KEY
//
// Logs "server_started" (with the ports) like every service, and drains on
// SIGTERM or SIGINT.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <string>

#include "libs/auth/grpc_auth.h"
#include "libs/auth/token.h"
#include "libs/clock/clock.h"
#include "libs/config/flags.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "libs/server/status.h"
#include "libs/server/unary.h"
#include "tools/loadgen/echo.grpc.pb.h"

namespace switchboard::loadgen {
namespace {

class AuthenticatedEchoService final : public bench::v1::EchoService::CallbackService {
 public:
  explicit AuthenticatedEchoService(const auth::TokenCodec* tokens) : tokens_(tokens) {}

  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const bench::v1::EchoRequest* request,
                                 bench::v1::EchoResponse* response) override {
    absl::StatusOr<auth::Principal> caller =
        auth::AuthenticateCall(*context, *tokens_, RealClock()->Now());
    if (!caller.ok()) return server::FinishNow(context, caller.status());
    if (absl::Status s = auth::Authorize(*caller,
                                         {auth::Role::kCustomer, auth::Role::kAgent,
                                          auth::Role::kSupervisor, auth::Role::kService},
                                         "Echo");
        !s.ok()) {
      return server::FinishNow(context, s);
    }
    response->set_payload(request->payload());
    return server::FinishNow(context, absl::OkStatus());
  }

 private:
  const auth::TokenCodec* tokens_;
};

int Fail(absl::string_view what, const absl::Status& status) {
  log::Error("startup_failed",
             {{"service", "bootstrap_echo"}, {"step", what}, {"error", status.ToString()}});
  return 1;
}

int Run(int argc, char** argv) {
  server::BlockTerminationSignals();
  server::ServerOptions options;
  options.service_name = "bootstrap_echo";
  options.port = 7191;
  options.metrics_port = 9191;
  options.grpc_service_names = {bench::v1::EchoService::service_full_name()};
  std::string token_key_file;
  config::FlagSet flags("bootstrap_echo");
  server::AddServerFlags(flags, &options);
  flags.Add("token_key_file", &token_key_file, "HMAC key of access tokens (required)");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "bootstrap_echo_server: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (token_key_file.empty()) {
    std::fprintf(stderr, "bootstrap_echo_server: --token_key_file is required\n");
    return 2;
  }
  absl::StatusOr<std::string> key =
      auth::LoadOrCreateKey(token_key_file, /*create_if_missing=*/false);
  if (!key.ok()) return Fail("token_key", key.status());
  auth::TokenCodec tokens(*key);
  AuthenticatedEchoService service(&tokens);
  auto registry = std::make_shared<prometheus::Registry>();
  auto server = server::Server::Start(options, {&service}, registry);
  if (!server.ok()) return Fail("listen", server.status());
  const std::string signal = server::WaitForTerminationSignal();
  log::Info("shutdown_requested", {{"service", "bootstrap_echo"}, {"signal", signal}});
  (*server)->Shutdown();
  log::Info("shutdown_complete", {{"service", "bootstrap_echo"}});
  return 0;
}

}  // namespace
}  // namespace switchboard::loadgen

int main(int argc, char** argv) { return switchboard::loadgen::Run(argc, argv); }
