// The bare baseline: gRPC's callback API answering Echo and nothing else (no
// auth, no metrics, no health, no reflection), so that it measures the stack's
// own limit on this machine.
//
//   bare_echo_server --port=7190
//
// Prints "bare_echo_server listening on port N" to stderr once it serves, and
// stops on SIGTERM or SIGINT.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "libs/config/flags.h"
#include "libs/server/server.h"
#include "tools/loadgen/echo.grpc.pb.h"

namespace switchboard::loadgen {
namespace {

class BareEchoService final : public bench::v1::EchoService::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const bench::v1::EchoRequest* request,
                                 bench::v1::EchoResponse* response) override {
    response->set_payload(request->payload());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

int Run(int argc, char** argv) {
  server::BlockTerminationSignals();
  int port = 7190;
  std::string bind_address = "0.0.0.0";
  config::FlagSet flags("bare_echo");
  flags.Add("port", &port, "gRPC port; 0 picks a free one");
  flags.Add("bind_address", &bind_address, "address to listen on");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "bare_echo_server: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  BareEchoService service;
  int bound_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(bind_address, ":", port),
                           grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::fprintf(stderr, "bare_echo_server: cannot listen on port %d\n", port);
    return 1;
  }
  std::fprintf(stderr, "bare_echo_server listening on port %d\n", bound_port);
  server::WaitForTerminationSignal();
  server->Shutdown();
  return 0;
}

}  // namespace
}  // namespace switchboard::loadgen

int main(int argc, char** argv) { return switchboard::loadgen::Run(argc, argv); }
