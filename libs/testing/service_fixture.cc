#include "libs/testing/service_fixture.h"

#include <cstdio>
#include <cstdlib>

#include "libs/auth/grpc_auth.h"
#include "absl/time/clock.h"
#include "libs/metrics/scrape.h"

namespace switchboard::testing {

TestServer::TestServer(const std::vector<grpc::Service*>& services,
                       std::shared_ptr<prometheus::Registry> registry,
                       absl::Duration drain_deadline)
    : registry_(registry ? std::move(registry) : std::make_shared<prometheus::Registry>()) {
  server::ServerOptions options;
  options.service_name = "test";
  options.bind_address = "127.0.0.1";
  options.drain_deadline = drain_deadline;
  absl::StatusOr<std::unique_ptr<server::Server>> started =
      server::Server::Start(options, services, registry_);
  if (!started.ok()) {
    std::fprintf(stderr, "test server failed to start: %s\n",
                 started.status().ToString().c_str());
    std::abort();
  }
  server_ = std::move(*started);
  channel_ = server_->InProcessChannel();
}

std::string TestServer::Metrics() const {
  absl::StatusOr<std::string> text =
      metrics::ScrapeMetrics("127.0.0.1", server_->metrics_port());
  return text.ok() ? *text : text.status().ToString();
}

std::string TestServer::WaitForMetrics(const std::vector<std::string>& lines) const {
  std::string text;
  for (int attempt = 0; attempt < 100; ++attempt) {
    text = Metrics();
    bool all = true;
    for (const std::string& line : lines) all = all && text.find(line) != std::string::npos;
    if (all) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return text;
}

std::unique_ptr<grpc::ClientContext> ContextWithToken(const std::string& token,
                                                      absl::Duration deadline) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) auth::AttachToken(*context, token);
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  return context;
}

}  // namespace switchboard::testing
