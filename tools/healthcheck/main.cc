// Asks a server's grpc.health.v1 service whether it is SERVING.
//
//   healthcheck --address=localhost:7104 [--service=NAME] [--timeout=2s] [--wait=30s]
//               [--tls_ca_file=ca.pem [--tls_cert_file=c.pem --tls_key_file=c.key]]
//
// Exit 0 when SERVING, 1 otherwise (printing the status or error), 2 on bad
// flags. With --wait it retries every 200 ms until SERVING or the wait ends,
// which is how the local launcher waits for services to come up.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <thread>

#include "absl/time/clock.h"
#include "libs/client/tls.h"
#include "libs/config/flags.h"
#include "grpc/health/v1/health.grpc.pb.h"

int main(int argc, char** argv) {
  std::string address = "localhost:7104";
  std::string service;
  absl::Duration timeout = absl::Seconds(2);
  absl::Duration wait = absl::ZeroDuration();
  switchboard::config::FlagSet flags("healthcheck");
  flags.Add("address", &address, "host:port of the gRPC server");
  flags.Add("service", &service, "service name to check; empty for the whole server");
  flags.Add("timeout", &timeout, "deadline of each check");
  flags.Add("wait", &wait, "keep retrying this long until SERVING");
  switchboard::client::ClientTlsOptions tls;
  switchboard::client::AddClientTlsFlags(flags, &tls, "");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "healthcheck: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::StatusOr<switchboard::client::ChannelSecurity> security =
      switchboard::client::ChannelSecurity::Create(tls, "");
  if (!security.ok()) {
    std::fprintf(stderr, "healthcheck: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }
  auto stub = grpc::health::v1::Health::NewStub(security->Channel(address));
  const absl::Time give_up = absl::Now() + wait;
  std::string last;
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, request, &response);
    if (status.ok()) {
      last = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
      if (response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
        std::printf("%s SERVING\n", address.c_str());
        return 0;
      }
    } else {
      last = status.error_message().empty() ? "unreachable" : status.error_message();
    }
    if (absl::Now() >= give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::fprintf(stderr, "%s %s\n", address.c_str(), last.c_str());
  return 1;
}
