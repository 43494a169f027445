#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "libs/server/server.h"
#include "prometheus/registry.h"

namespace switchboard::testing {

// A real gRPC server on 127.0.0.1 with a free port, metrics on another free
// port, reflection and health on, as the services' main() would start it.
class TestServer {
 public:
  // Aborts the test binary if the server cannot start. Metrics go to
  // `registry` (a new one if null), so a service's domain metrics created on
  // the same registry appear on /metrics too.
  explicit TestServer(const std::vector<grpc::Service*>& services,
                      std::shared_ptr<prometheus::Registry> registry = nullptr,
                      absl::Duration drain_deadline = absl::Seconds(2));

  server::Server& server() { return *server_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  prometheus::Registry& registry() { return *registry_; }
  // The current /metrics text.
  std::string Metrics() const;
  // Polls /metrics (up to 5 s) until it contains every one of `lines`, and
  // returns the last text. A call is counted when the server sees it close,
  // which can be just after the client has its answer.
  std::string WaitForMetrics(const std::vector<std::string>& lines) const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<server::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// A ClientContext with `token` (if not empty) and a deadline.
std::unique_ptr<grpc::ClientContext> ContextWithToken(
    const std::string& token, absl::Duration deadline = absl::Seconds(10));

}  // namespace switchboard::testing
