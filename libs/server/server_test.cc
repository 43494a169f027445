// Server's drain, on a real in-process gRPC server: health watches do not
// hold it up, calls in flight and calls still arriving are served.
#include "libs/server/server.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/metrics/testdata/echo.grpc.pb.h"

namespace switchboard::server {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::switchboard::testing::v1::EchoRequest;
using ::switchboard::testing::v1::EchoResponse;
using ::switchboard::testing::v1::EchoService;

// Echoes; "hold" answers only once `release` is notified.
class HoldingEcho final : public EchoService::CallbackService {
 public:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context, const EchoRequest* request,
                                 EchoResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    response->set_text(request->text());
    if (request->text() != "hold") {
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    held.Notify();
    threads_.emplace_back([this, reactor] {
      release.WaitForNotification();
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  ~HoldingEcho() override {
    for (std::thread& thread : threads_) thread.join();
  }

  absl::Notification held, release;

 private:
  std::vector<std::thread> threads_;
};

class ServerDrainTest : public ::testing::Test {
 protected:
  ServerDrainTest() {
    ServerOptions options;
    options.service_name = "echo";
    options.bind_address = "127.0.0.1";
    options.drain_deadline = absl::Seconds(30);
    server_ = *Server::Start(options, {&service_}, std::make_shared<prometheus::Registry>());
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  absl::Duration ShutdownTime() {
    const absl::Time start = absl::Now();
    server_->Shutdown();
    return absl::Now() - start;
  }

  grpc::Status Echo(const std::string& text) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    EchoRequest request;
    request.set_text(text);
    EchoResponse response;
    return EchoService::NewStub(channel_)->Echo(&context, request, &response);
  }

  HoldingEcho service_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// A health watch (load balancers and health-checking channels hold one all
// the time) is told NOT_SERVING and then ended: the drain does not wait out
// its 30 s deadline for it.
TEST_F(ServerDrainTest, AHealthWatchIsToldNotServingAndDoesNotHoldTheDrain) {
  grpc::ClientContext context;
  HealthCheckRequest request;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> watch =
      Health::NewStub(channel_)->Watch(&context, request);
  HealthCheckResponse status;
  ASSERT_TRUE(watch->Read(&status));
  EXPECT_EQ(status.status(), HealthCheckResponse::SERVING);

  std::thread stop([&] { EXPECT_LT(ShutdownTime(), absl::Seconds(10)); });
  ASSERT_TRUE(watch->Read(&status));
  EXPECT_EQ(status.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&status));
  EXPECT_FALSE(watch->Finish().ok());
  stop.join();
}

// The drain waits for a call in flight, and serves calls that arrive
// meanwhile from clients that have not seen NOT_SERVING yet.
TEST_F(ServerDrainTest, ACallInFlightFinishesAndLateCallsAreServed) {
  grpc::Status held_status;
  std::thread held([&] { held_status = Echo("hold"); });
  service_.held.WaitForNotification();

  absl::Notification stopped;
  std::thread stop([&] {
    server_->Shutdown();
    stopped.Notify();
  });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(stopped.HasBeenNotified());
  EXPECT_TRUE(Echo("late").ok());
  EXPECT_FALSE(stopped.HasBeenNotified());

  service_.release.Notify();
  held.join();
  EXPECT_TRUE(held_status.ok()) << held_status.error_message();
  stop.join();
}

}  // namespace
}  // namespace switchboard::server
