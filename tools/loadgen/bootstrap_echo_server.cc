// The bootstrap baseline: the same Echo behind everything every Switchboard
// service puts in front of its handlers: libs/server's Server::Start (health,
// reflection, per-RPC Prometheus metrics, keepalive, receive limits, drain)
// and an access token checked and authorized from the RPC's access option on
// every call (libs/auth), as a service's adapter does. The handler then
// answers on the callback thread, since echo has no blocking work for the
// pool.
//
//   bootstrap_echo_server --port=7191 --metrics_port=9191 --keys_dir=DIR
//
// Logs "server_started" (with the ports) like every service, and drains on
// SIGTERM or SIGINT.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <string>

#include "libs/auth/grpc_auth.h"
#include "libs/auth/policy.h"
#include "libs/auth/service_keys.h"
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
  explicit AuthenticatedEchoService(const auth::TokenVerifier* tokens)
      : tokens_(tokens),
        policy_(auth::ServicePolicy::Of(bench::v1::EchoService::service_full_name())) {}

  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const bench::v1::EchoRequest* request,
                                 bench::v1::EchoResponse* response) override {
    absl::StatusOr<auth::Principal> caller =
        auth::AuthenticateAndAuthorize(*context, *tokens_, policy_, RealClock()->Now(), "Echo");
    if (!caller.ok()) return server::FinishNow(context, caller.status());
    response->set_payload(request->payload());
    return server::FinishNow(context, absl::OkStatus());
  }

 private:
  const auth::TokenVerifier* const tokens_;
  const auth::ServicePolicy& policy_;
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
  auth::KeyOptions keys;
  config::FlagSet flags("bootstrap_echo");
  server::AddServerFlags(flags, &options);
  auth::AddKeyFlags(flags, &keys, /*signs_service_tokens=*/false);
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "bootstrap_echo_server: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (keys.keys_dir.empty()) {
    std::fprintf(stderr, "bootstrap_echo_server: --keys_dir is required\n");
    return 2;
  }
  absl::StatusOr<auth::ServiceKeys> loaded =
      auth::LoadServiceKeys(keys, "bench", "", /*signs_service_tokens=*/false);
  if (!loaded.ok()) return Fail("keys", loaded.status());
  AuthenticatedEchoService service(loaded->verifier.get());
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
