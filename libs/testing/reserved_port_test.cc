#include "libs/testing/reserved_port.h"

#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/server/server.h"

namespace switchboard::testing {
namespace {

// Binds 127.0.0.1:`port` as an unrelated program would (no reuse options);
// returns the port bound, or -1.
int PlainBind(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t length = sizeof(address);
  int bound = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    bound = ntohs(address.sin_port);
  }
  close(fd);
  return bound;
}

TEST(ReservedPortTest, NobodyElseGetsThePortUntilItIsReleased) {
  auto reserved = std::make_unique<ReservedPort>();
  const int port = reserved->port();
  ASSERT_TRUE(reserved->held());
  ASSERT_GT(port, 0);
  EXPECT_EQ(PlainBind(port), -1);
  EXPECT_FALSE(ReservedPort(port).held()) << "two reservations of one port";
  for (int i = 0; i < 2000; ++i) ASSERT_NE(PlainBind(0), port) << "handed out for port 0";
  reserved.reset();
  EXPECT_EQ(PlainBind(port), port);
  EXPECT_TRUE(ReservedPort(port).held());
}

TEST(ReservedPortTest, TheServerItIsForBindsItAndGetsTheConnections) {
  ReservedPort grpc_port;
  ReservedPort metrics_port;
  server::ServerOptions options;
  options.service_name = "reserved";
  options.bind_address = "127.0.0.1";
  options.port = grpc_port.port();
  options.metrics_port = metrics_port.port();
  auto server = server::Server::Start(options, {}, std::make_shared<prometheus::Registry>());
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->port(), grpc_port.port());
  EXPECT_EQ((*server)->metrics_port(), metrics_port.port());
  auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      grpc_port.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, {}, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  (*server)->Shutdown();
}

}  // namespace
}  // namespace switchboard::testing
