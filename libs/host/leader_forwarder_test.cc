// LeaderForwarder between a client and a fake leader, all real gRPC servers
// on loopback: messages both ways, what travels with a call (metadata,
// deadline, status, trailers), and how calls end when there is no leader,
// the leader goes away, or the standby takes over.
#include "libs/host/leader_forwarder.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"

namespace switchboard::host {
namespace {

grpc::ByteBuffer Buffer(const std::string& text) {
  grpc::Slice slice(text);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Text(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return "<undumpable>";
  std::string text;
  for (const grpc::Slice& slice : slices) {
    text.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return text;
}

std::string MetadataValue(const grpc::GenericCallbackServerContext& context,
                          const std::string& key) {
  auto it = context.client_metadata().find(key);
  if (it == context.client_metadata().end()) return "-";
  return std::string(it->second.data(), it->second.size());
}

// The leader: /test.Leader/Echo sends each message back and ends OK at the
// client's half-close; Refuse ends RESOURCE_EXHAUSTED with a retry-after
// trailer; Metadata answers the caller's token, the forwarding mark and
// whether a deadline under a minute came along; Hang reads and never ends
// until cancelled. Methods of gRPC's health service, which is linked in:
// Check (unary) answers its request's bytes reversed, with the caller's
// token as a trailer, once the request is half-closed (a request "hang" is
// never answered); Watch (streaming) ends NOT_FOUND naming its request.
constexpr char kCheck[] = "/grpc.health.v1.Health/Check";
constexpr char kWatch[] = "/grpc.health.v1.Health/Watch";

class FakeLeader : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    return new Call(context);
  }

 private:
  class Call : public grpc::ServerGenericBidiReactor {
   public:
    explicit Call(grpc::GenericCallbackServerContext* context)
        : context_(context), method_(context->method()) {
      if (method_ == "/test.Leader/Refuse") {
        context->AddTrailingMetadata("retry-after", "3");
        End(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "busy: try later"));
      } else if (method_ == "/test.Leader/Metadata") {
        const bool near_deadline =
            context->deadline() < std::chrono::system_clock::now() + std::chrono::minutes(1);
        out_ = Buffer(absl::StrCat(MetadataValue(*context, "authorization"), "|",
                                   MetadataValue(*context, "x-switchboard-forwarded-by"), "|",
                                   near_deadline ? "deadline" : "none"));
        absl::MutexLock lock(&mu_);
        finished_ = true;
        StartWriteAndFinish(&out_, grpc::WriteOptions(), grpc::Status::OK);
      } else {
        StartRead(&in_);
      }
    }
    void OnReadDone(bool ok) override {
      if (method_ == kCheck) {
        if (ok) {
          request_ = Text(in_);
          StartRead(&in_);  // answered at the half-close
          return;
        }
        if (request_ == "hang") return;
        std::reverse(request_.begin(), request_.end());
        out_ = Buffer(request_);
        context_->AddTrailingMetadata("token", MetadataValue(*context_, "authorization"));
        absl::MutexLock lock(&mu_);
        finished_ = true;
        StartWriteAndFinish(&out_, grpc::WriteOptions(), grpc::Status::OK);
        return;
      }
      if (method_ == kWatch && ok) {
        return End(grpc::Status(grpc::StatusCode::NOT_FOUND, "no " + Text(in_)));
      }
      if (method_ == "/test.Leader/Echo") {
        if (!ok) return End(grpc::Status::OK);
        out_ = in_;
        StartWrite(&out_);
      } else if (ok) {
        StartRead(&in_);
      }
    }
    void OnWriteDone(bool ok) override {
      if (ok) StartRead(&in_);
    }
    void OnCancel() override { End(grpc::Status::CANCELLED); }
    void OnDone() override { delete this; }

   private:
    void End(grpc::Status status) {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      Finish(std::move(status));
    }

    grpc::GenericCallbackServerContext* const context_;
    const std::string method_;
    std::string request_;
    grpc::ByteBuffer in_;
    grpc::ByteBuffer out_;
    absl::Mutex mu_;
    bool finished_ ABSL_GUARDED_BY(mu_) = false;
  };
};

std::unique_ptr<grpc::Server> Listen(grpc::CallbackGenericService* service, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  builder.RegisterCallbackGenericService(service);
  return builder.BuildAndStart();
}

// A port in front of `server` that takes each connection `delay` after it
// arrived: a leader too busy to answer a new connection at once.
class SlowAcceptor {
 public:
  SlowAcceptor(grpc::Server* server, absl::Duration delay) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        listen(listener_, 16) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "cannot listen";
      return;
    }
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this, server, delay] {
      for (int connection; (connection = accept(listener_, nullptr, nullptr)) >= 0;) {
        absl::SleepFor(delay);
        grpc::AddInsecureChannelFromFd(server, connection);
      }
    });
  }
  ~SlowAcceptor() {
    shutdown(listener_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    close(listener_);
  }
  int port() const { return port_; }

 private:
  int listener_ = -1;
  int port_ = 0;
  std::thread acceptor_;
};

// A blocking client of one streaming call.
class Client : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  Client(grpc::GenericStub& stub, const std::string& method,
         absl::Duration deadline = absl::Seconds(10), const std::string& token = "") {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    if (!token.empty()) context_.AddMetadata("authorization", token);
    stub.PrepareBidiStreamingCall(&context_, method, grpc::StubOptions(), this);
    AddHold();
    StartCall();
  }
  grpc::ClientContext& context() { return context_; }

  bool Write(const std::string& text) {
    out_ = Buffer(text);
    StartWrite(&out_);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&wrote_));
    wrote_ = false;
    return write_ok_;
  }
  std::optional<std::string> Read() {
    StartRead(&in_);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&read_));
    read_ = false;
    if (!read_ok_) return std::nullopt;
    return Text(in_);
  }
  void HalfClose() { StartWritesDone(); }
  // Starts nothing more; waits for the call's end.
  grpc::Status End() {
    RemoveHold();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
    return status_;
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    write_ok_ = ok;
    wrote_ = true;
  }
  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    read_ok_ = ok;
    read_ = true;
  }
  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }

 private:
  grpc::ClientContext context_;
  grpc::ByteBuffer out_;
  grpc::ByteBuffer in_;
  absl::Mutex mu_;
  bool wrote_ ABSL_GUARDED_BY(mu_) = false;
  bool write_ok_ ABSL_GUARDED_BY(mu_) = false;
  bool read_ ABSL_GUARDED_BY(mu_) = false;
  bool read_ok_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

// One unary call, started at once; End waits for its status.
class UnaryClient {
 public:
  UnaryClient(grpc::GenericStub& stub, const std::string& method, const std::string& request,
              const std::string& token = "")
      : request_(Buffer(request)) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!token.empty()) context_.AddMetadata("authorization", token);
    stub.UnaryCall(&context_, method, grpc::StubOptions(), &request_, &response_,
                   [this](grpc::Status status) {
                     status_ = std::move(status);
                     done_.Notify();
                   });
  }
  grpc::Status End() {
    if (!done_.WaitForNotificationWithTimeout(absl::Seconds(15))) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the call never ended");
    }
    return status_;
  }
  bool done() const { return done_.HasBeenNotified(); }
  std::string response() const { return Text(response_); }
  grpc::ClientContext& context() { return context_; }

 private:
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  grpc::Status status_;
  absl::Notification done_;
};

class LeaderForwarderTest : public ::testing::Test {
 protected:
  LeaderForwarderTest() {
    leader_ = Listen(&leader_service_, &leader_port_);
    standby_ = Listen(&forwarder_, &standby_port_);
    stub_ = std::make_unique<grpc::GenericStub>(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", standby_port_), grpc::InsecureChannelCredentials()));
  }
  ~LeaderForwarderTest() override {
    standby_->Shutdown(std::chrono::system_clock::now());
    if (leader_ != nullptr) leader_->Shutdown(std::chrono::system_clock::now());
  }
  void FollowTheLeader() { forwarder_.Follow(absl::StrCat("127.0.0.1:", leader_port_)); }

  FakeLeader leader_service_;
  prometheus::Registry registry_;
  LeaderForwarder forwarder_{"test", registry_};
  int leader_port_ = 0;
  int standby_port_ = 0;
  std::unique_ptr<grpc::Server> leader_;
  std::unique_ptr<grpc::Server> standby_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

TEST_F(LeaderForwarderTest, RefusesWhileNoLeaderHasPublishedItsAddress) {
  Client call(*stub_, "/test.Leader/Echo");
  const grpc::Status status = call.End();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(),
            "no test leader is serving yet (this process is a standby); retry the call");
  EXPECT_EQ(forwarder_.forwarded(), 0);
  EXPECT_EQ(forwarder_.ended(grpc::StatusCode::UNAVAILABLE), 1);
}

TEST_F(LeaderForwarderTest, StreamsMessagesBothWaysUntilTheClientHalfCloses) {
  FollowTheLeader();
  Client call(*stub_, "/test.Leader/Echo");
  for (const std::string& text :
       std::vector<std::string>{"first", std::string(100'000, 'x'), "", "last"}) {
    ASSERT_TRUE(call.Write(text));
    EXPECT_EQ(call.Read(), text);
  }
  call.HalfClose();
  EXPECT_EQ(call.Read(), std::nullopt);
  const grpc::Status status = call.End();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(forwarder_.forwarded(), 1);
  EXPECT_TRUE(forwarder_.WaitUntilIdle(absl::Seconds(5)));
  EXPECT_EQ(forwarder_.ended(grpc::StatusCode::OK), 1);
}

TEST_F(LeaderForwarderTest, PassesTheTokenAndDeadlineAndMarksTheCallForwarded) {
  FollowTheLeader();
  Client call(*stub_, "/test.Leader/Metadata", absl::Seconds(30), "Bearer t0ken");
  call.HalfClose();
  EXPECT_EQ(call.Read(), "Bearer t0ken|test|deadline");
  EXPECT_TRUE(call.End().ok());
}

TEST_F(LeaderForwarderTest, PassesTheLeadersStatusMessageAndTrailers) {
  FollowTheLeader();
  Client call(*stub_, "/test.Leader/Refuse");
  call.HalfClose();
  const grpc::Status status = call.End();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(), "busy: try later");
  const auto& trailers = call.context().GetServerTrailingMetadata();
  auto retry_after = trailers.find("retry-after");
  ASSERT_NE(retry_after, trailers.end());
  EXPECT_EQ(std::string(retry_after->second.data(), retry_after->second.size()), "3");
  EXPECT_EQ(forwarder_.ended(grpc::StatusCode::RESOURCE_EXHAUSTED), 1);
}

// A unary method goes to the leader as one unary call: request, answer,
// status, trailers and the caller's token; a streaming one as a stream.
TEST_F(LeaderForwarderTest, ForwardsAUnaryMethodAsOneCall) {
  FollowTheLeader();
  UnaryClient check(*stub_, kCheck, "abc", "Bearer t0ken");
  grpc::Status status = check.End();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(check.response(), "cba");
  auto token = check.context().GetServerTrailingMetadata().find("token");
  ASSERT_NE(token, check.context().GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(token->second.data(), token->second.size()), "Bearer t0ken");

  // An empty request and answer (an empty message) pass too.
  UnaryClient empty(*stub_, kCheck, "");
  status = empty.End();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(empty.response(), "");

  // The request reaches the leader half-closed, though this caller has not
  // half-closed yet: the standby sent one unary call.
  Client open(*stub_, kCheck);
  ASSERT_TRUE(open.Write("xyz"));
  EXPECT_EQ(open.Read(), "zyx");
  EXPECT_TRUE(open.End().ok());

  Client watch(*stub_, kWatch);
  ASSERT_TRUE(watch.Write("service-x"));
  EXPECT_EQ(watch.Read(), std::nullopt);
  status = watch.End();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "no service-x");
  EXPECT_TRUE(forwarder_.WaitUntilIdle(absl::Seconds(5)));
  EXPECT_EQ(forwarder_.ended(grpc::StatusCode::OK), 3);
  EXPECT_EQ(forwarder_.ended(grpc::StatusCode::NOT_FOUND), 1);
}

// A unary call in flight when the standby takes over ends UNAVAILABLE.
TEST_F(LeaderForwarderTest, StopEndsAUnaryCallInFlightUnavailable) {
  FollowTheLeader();
  UnaryClient hanging(*stub_, kCheck, "hang");
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(hanging.done());
  forwarder_.Stop();
  const grpc::Status status = hanging.End();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(),
            "this test standby is taking over as the leader; retry the call");
  EXPECT_TRUE(forwarder_.WaitUntilIdle(absl::Seconds(5)));
}

// Calls wait for a connection that takes long to set up rather than fail:
// a loaded leader, or the standby's calls arriving together at start.
TEST_F(LeaderForwarderTest, WaitsForAConnectionTheLeaderIsSlowToTake) {
  SlowAcceptor slow(leader_.get(), absl::Milliseconds(500));
  forwarder_.Follow(absl::StrCat("127.0.0.1:", slow.port()));
  Client call(*stub_, "/test.Leader/Echo");
  ASSERT_TRUE(call.Write("hello"));
  EXPECT_EQ(call.Read(), "hello");
  call.HalfClose();
  const grpc::Status status = call.End();
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_TRUE(forwarder_.WaitUntilIdle(absl::Seconds(5)));
}

// The client keeps its side open: the leader's end still ends the call.
TEST_F(LeaderForwarderTest, EndsAnOpenStreamWhenTheLeaderGoesAway) {
  FollowTheLeader();
  Client call(*stub_, "/test.Leader/Hang");
  ASSERT_TRUE(call.Write("waiting"));
  leader_->Shutdown(std::chrono::system_clock::now());
  leader_.reset();
  const grpc::Status status = call.End();
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(forwarder_.WaitUntilIdle(absl::Seconds(5)));
}

TEST_F(LeaderForwarderTest, StopEndsTheCallsInFlightAndRefusesNewOnesUnavailable) {
  FollowTheLeader();
  Client open(*stub_, "/test.Leader/Hang");
  ASSERT_TRUE(open.Write("waiting"));
  forwarder_.Stop();
  grpc::Status status = open.End();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(),
            "this test standby is taking over as the leader; retry the call");
  EXPECT_TRUE(forwarder_.WaitUntilIdle(absl::Seconds(5)));

  Client late(*stub_, "/test.Leader/Echo");
  status = late.End();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(),
            "this test standby is taking over as the leader; retry the call");
}

// An address that leads back to a standby must not send calls round.
TEST_F(LeaderForwarderTest, RefusesACallAnotherStandbyForwarded) {
  forwarder_.Follow(absl::StrCat("127.0.0.1:", standby_port_));
  Client call(*stub_, "/test.Leader/Echo");
  const grpc::Status status = call.End();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("--advertise_address"), std::string::npos)
      << status.error_message();
  EXPECT_TRUE(forwarder_.WaitUntilIdle(absl::Seconds(5)));
}

}  // namespace
}  // namespace switchboard::host
