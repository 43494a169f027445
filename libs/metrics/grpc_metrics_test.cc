#include "libs/metrics/grpc_metrics.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "libs/metrics/exposer.h"
#include "libs/metrics/scrape.h"
#include "libs/metrics/testdata/echo.grpc.pb.h"
#include "prometheus/registry.h"

namespace switchboard::metrics {
namespace {

using ::switchboard::testing::v1::EchoRequest;
using ::switchboard::testing::v1::EchoResponse;
using ::switchboard::testing::v1::EchoService;
using ::switchboard::testing::v1::EchoStreamRequest;
using ::testing::IsSupersetOf;
using ::testing::Not;

constexpr char kUnary[] =
    R"(grpc_method="Echo",grpc_service="switchboard.testing.v1.EchoService",grpc_type="unary")";
constexpr char kStream[] =
    R"(grpc_method="EchoStream",grpc_service="switchboard.testing.v1.EchoService",grpc_type="server_stream")";

// Writes the requested responses, then ends as asked. Ends exactly once, also
// when the call is cancelled first.
class EchoStreamReactor : public grpc::ServerWriteReactor<EchoResponse> {
 public:
  EchoStreamReactor(const EchoStreamRequest& request,
                    std::atomic<int>& streams_done)
      : request_(request), streams_done_(streams_done) {
    response_.set_text(request.text());
    WriteNextOrEnd();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      FinishOnce(grpc::Status::CANCELLED);
      return;
    }
    ++written_;
    WriteNextOrEnd();
  }

  void OnCancel() override { FinishOnce(grpc::Status::CANCELLED); }

  void OnDone() override {
    streams_done_.fetch_add(1);
    delete this;
  }

 private:
  void WriteNextOrEnd() {
    if (written_ < request_.count()) {
      StartWrite(&response_);
    } else if (!request_.hold()) {
      FinishOnce(request_.fail()
                     ? grpc::Status(grpc::StatusCode::ABORTED, "asked to fail")
                     : grpc::Status::OK);
    }
  }

  void FinishOnce(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  const EchoStreamRequest request_;
  std::atomic<int>& streams_done_;
  EchoResponse response_;
  int written_ = 0;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class EchoServiceImpl final : public EchoService::CallbackService {
 public:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const EchoRequest* request,
                                 EchoResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (request->text().empty()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "text: must not be empty"));
      return reactor;
    }
    response->set_text(request->text());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerWriteReactor<EchoResponse>* EchoStream(
      grpc::CallbackServerContext* context,
      const EchoStreamRequest* request) override {
    return new EchoStreamReactor(*request, streams_done_);
  }

  // Streams whose reactor is done: all of their hooks have run.
  int streams_done() const { return streams_done_.load(); }

 private:
  std::atomic<int> streams_done_{0};
};

// The same service on the sync API, whose calls take other paths through
// gRPC.
class SyncEchoServiceImpl final : public EchoService::Service {
 public:
  grpc::Status Echo(grpc::ServerContext* context, const EchoRequest* request,
                    EchoResponse* response) override {
    if (request->text().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "text: must not be empty");
    }
    response->set_text(request->text());
    return grpc::Status::OK;
  }

  grpc::Status EchoStream(grpc::ServerContext* context,
                          const EchoStreamRequest* request,
                          grpc::ServerWriter<EchoResponse>* writer) override {
    grpc::Status status = Stream(*context, *request, *writer);
    streams_done_.fetch_add(1);
    return status;
  }

  int streams_done() const { return streams_done_.load(); }

 private:
  static grpc::Status Stream(grpc::ServerContext& context,
                             const EchoStreamRequest& request,
                             grpc::ServerWriter<EchoResponse>& writer) {
    EchoResponse response;
    response.set_text(request.text());
    for (int i = 0; i < request.count(); ++i) {
      if (!writer.Write(response)) return grpc::Status::CANCELLED;
    }
    if (request.hold()) {
      const absl::Time give_up = absl::Now() + absl::Seconds(10);
      while (!context.IsCancelled() && absl::Now() < give_up) {
        absl::SleepFor(absl::Milliseconds(5));
      }
      return grpc::Status::CANCELLED;
    }
    return request.fail()
               ? grpc::Status(grpc::StatusCode::ABORTED, "asked to fail")
               : grpc::Status::OK;
  }

  std::atomic<int> streams_done_{0};
};

enum class Api { kCallback, kSync };

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// A server with the interceptor, a client, and its /metrics.
class GrpcMetricsTest : public ::testing::TestWithParam<Api> {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &grpc_port_);
    if (GetParam() == Api::kCallback) {
      builder.RegisterService(&callback_service_);
    } else {
      builder.RegisterService(&sync_service_);
    }
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        creators;
    creators.push_back(MakeGrpcServerMetricsInterceptorFactory(*registry_));
    builder.experimental().SetInterceptorCreators(std::move(creators));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port_),
                                   grpc::InsecureChannelCredentials());
    stub_ = EchoService::NewStub(channel_);

    absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
        MetricsExposer::Start("127.0.0.1", 0, registry_);
    ASSERT_TRUE(exposer.ok()) << exposer.status();
    exposer_ = std::move(*exposer);
  }

  void TearDown() override {
    // Cancels calls a failed test left open, instead of waiting for them.
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(1));
    }
  }

  static std::chrono::system_clock::time_point Deadline() {
    return std::chrono::system_clock::now() + std::chrono::seconds(10);
  }

  grpc::Status Echo(const std::string& text) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    EchoRequest request;
    request.set_text(text);
    EchoResponse response;
    return stub_->Echo(&context, request, &response);
  }

  // Reads a whole stream; returns its status and how many responses came.
  std::pair<grpc::Status, int> EchoStream(int count, bool fail) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    EchoStreamRequest request;
    request.set_text("x");
    request.set_count(count);
    request.set_fail(fail);
    std::unique_ptr<grpc::ClientReader<EchoResponse>> reader =
        stub_->EchoStream(&context, request);
    EchoResponse response;
    int received = 0;
    while (reader->Read(&response)) ++received;
    return {reader->Finish(), received};
  }

  // Calls an unimplemented method through the generic stub.
  grpc::Status CallUnimplemented(const std::string& path) {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Slice slice("x");
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&context, path, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    return status;
  }

  std::string Scrape() {
    absl::StatusOr<std::string> text =
        ScrapeMetrics("127.0.0.1", exposer_->port());
    EXPECT_TRUE(text.ok()) << text.status();
    return text.value_or("");
  }

  // Scrapes until every line of `expected` is there (the server counts a call
  // when gRPC reports it closed, a moment after the client saw its end) or 5
  // seconds pass; returns the last scrape's lines.
  std::vector<std::string> ScrapeWhenThere(
      const std::vector<std::string>& expected) {
    const absl::Time give_up = absl::Now() + absl::Seconds(5);
    std::vector<std::string> lines = Lines(Scrape());
    while (!::testing::Value(lines, IsSupersetOf(expected)) &&
           absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(10));
      lines = Lines(Scrape());
    }
    return lines;
  }

  int StreamsDone() const {
    return GetParam() == Api::kCallback ? callback_service_.streams_done()
                                        : sync_service_.streams_done();
  }

  void WaitForStreamsDone(int n) {
    const absl::Time give_up = absl::Now() + absl::Seconds(5);
    while (StreamsDone() < n && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_EQ(StreamsDone(), n);
  }

  const std::shared_ptr<prometheus::Registry> registry_ =
      std::make_shared<prometheus::Registry>();
  EchoServiceImpl callback_service_;
  SyncEchoServiceImpl sync_service_;
  int grpc_port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<EchoService::Stub> stub_;
  std::unique_ptr<MetricsExposer> exposer_;
};

std::string Line(absl::string_view name, absl::string_view labels,
                 absl::string_view value) {
  return absl::StrCat(name, "{", labels, "} ", value);
}

std::string Handled(absl::string_view code, absl::string_view labels,
                    absl::string_view value) {
  return absl::StrCat("grpc_server_handled_total{grpc_code=\"", code, "\",",
                      labels, "} ", value);
}

// The grpc_server_handled_total lines with exactly `labels` plus a grpc_code:
// one per code seen.
std::vector<std::string> HandledLines(const std::vector<std::string>& lines,
                                      absl::string_view labels) {
  std::vector<std::string> handled;
  for (const std::string& line : lines) {
    if (absl::StartsWith(line, "grpc_server_handled_total{") &&
        absl::StrContains(line, absl::StrCat(",", labels, "} "))) {
      handled.push_back(line);
    }
  }
  return handled;
}

TEST_P(GrpcMetricsTest, CountsUnaryCallsByCode) {
  EXPECT_TRUE(Echo("hello").ok());
  EXPECT_TRUE(Echo("again").ok());
  EXPECT_EQ(Echo("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  std::vector<std::string> expected = {
      Line("grpc_server_started_total", kUnary, "3"),
      Handled("OK", kUnary, "2"),
      Handled("InvalidArgument", kUnary, "1"),
      Line("grpc_server_msg_received_total", kUnary, "3"),
      // Only OK calls send their response.
      Line("grpc_server_msg_sent_total", kUnary, "2"),
      // One observation per handled call.
      Line("grpc_server_handling_seconds_count", kUnary, "3"),
      Line("grpc_server_handling_seconds_bucket",
           absl::StrCat(kUnary, ",le=\"+Inf\""), "3"),
  };
  std::vector<std::string> lines = ScrapeWhenThere(expected);
  EXPECT_THAT(lines, IsSupersetOf(expected));
  // Each call counted once: no other code appeared.
  EXPECT_EQ(HandledLines(lines, kUnary).size(), 2);
}

TEST_P(GrpcMetricsTest, WritesHelpAndTypeAsGoGrpcPrometheusDoes) {
  EXPECT_TRUE(Echo("hello").ok());

  std::vector<std::string> lines =
      ScrapeWhenThere({Handled("OK", kUnary, "1")});
  EXPECT_THAT(
      lines,
      IsSupersetOf({
          "# HELP grpc_server_started_total Total number of RPCs started on "
          "the server.",
          "# TYPE grpc_server_started_total counter",
          "# HELP grpc_server_handled_total Total number of RPCs completed on "
          "the server, regardless of success or failure.",
          "# TYPE grpc_server_handled_total counter",
          "# HELP grpc_server_handling_seconds Histogram of response latency "
          "(seconds) of gRPC that had been application-level handled by the "
          "server.",
          "# TYPE grpc_server_handling_seconds histogram",
          "# HELP grpc_server_msg_received_total Total number of RPC stream "
          "messages received on the server.",
          "# TYPE grpc_server_msg_received_total counter",
          "# HELP grpc_server_msg_sent_total Total number of gRPC stream "
          "messages sent by the server.",
          "# TYPE grpc_server_msg_sent_total counter",
      }));
  // The default buckets of Prometheus clients, cumulative.
  for (const char* le : {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                         "0.5", "1", "2.5", "5", "10", "+Inf"}) {
    std::string prefix = absl::StrCat("grpc_server_handling_seconds_bucket{",
                                      kUnary, ",le=\"", le, "\"} ");
    EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                            [&](const std::string& line) {
                              return absl::StartsWith(line, prefix);
                            }),
              1)
        << prefix;
  }
  EXPECT_THAT(lines, IsSupersetOf({Line("grpc_server_handling_seconds_bucket",
                                        absl::StrCat(kUnary, ",le=\"10\""),
                                        "1")}));
}

TEST_P(GrpcMetricsTest, CountsEachMessageOfAServerStream) {
  std::pair<grpc::Status, int> ok = EchoStream(3, /*fail=*/false);
  EXPECT_TRUE(ok.first.ok()) << ok.first.error_message();
  EXPECT_EQ(ok.second, 3);
  std::pair<grpc::Status, int> failed = EchoStream(2, /*fail=*/true);
  EXPECT_EQ(failed.first.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(failed.second, 2);
  WaitForStreamsDone(2);

  std::vector<std::string> expected = {
      Line("grpc_server_started_total", kStream, "2"),
      Handled("OK", kStream, "1"),
      Handled("Aborted", kStream, "1"),
      Line("grpc_server_msg_received_total", kStream, "2"),
      Line("grpc_server_msg_sent_total", kStream, "5"),
      Line("grpc_server_handling_seconds_count", kStream, "2"),
  };
  std::vector<std::string> lines = ScrapeWhenThere(expected);
  EXPECT_THAT(lines, IsSupersetOf(expected));
  EXPECT_EQ(HandledLines(lines, kStream).size(), 2);
}

TEST_P(GrpcMetricsTest, CountsAStreamTheClientCancelledOnceAsCanceled) {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  EchoStreamRequest request;
  request.set_text("x");
  request.set_count(1);
  request.set_hold(true);
  std::unique_ptr<grpc::ClientReader<EchoResponse>> reader =
      stub_->EchoStream(&context, request);
  EchoResponse response;
  ASSERT_TRUE(reader->Read(&response));
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The reactor ends the call after the cancellation too: that status must
  // not count a second time.
  WaitForStreamsDone(1);

  std::vector<std::string> expected = {
      Line("grpc_server_started_total", kStream, "1"),
      Handled("Canceled", kStream, "1"),
      Line("grpc_server_msg_received_total", kStream, "1"),
      Line("grpc_server_msg_sent_total", kStream, "1"),
      Line("grpc_server_handling_seconds_count", kStream, "1"),
  };
  std::vector<std::string> lines = ScrapeWhenThere(expected);
  EXPECT_THAT(lines, IsSupersetOf(expected));
  EXPECT_EQ(HandledLines(lines, kStream).size(), 1);
}

TEST_P(GrpcMetricsTest, CountsAStreamPastItsDeadlineOnce) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(300));
  EchoStreamRequest request;
  request.set_text("x");
  request.set_count(1);
  request.set_hold(true);
  std::unique_ptr<grpc::ClientReader<EchoResponse>> reader =
      stub_->EchoStream(&context, request);
  EchoResponse response;
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  WaitForStreamsDone(1);

  std::vector<std::string> lines = ScrapeWhenThere(
      {Line("grpc_server_handling_seconds_count", kStream, "1")});
  // The client's cancellation on its deadline and the server's own copy of
  // the deadline race: either code is right, once.
  std::vector<std::string> handled = HandledLines(lines, kStream);
  ASSERT_EQ(handled.size(), 1);
  EXPECT_THAT(handled[0],
              ::testing::AnyOf(Handled("DeadlineExceeded", kStream, "1"),
                               Handled("Canceled", kStream, "1")));
}

TEST_P(GrpcMetricsTest, CountsUnimplementedMethodsAsUnknown) {
  for (const char* path : {"/switchboard.testing.v1.EchoService/Nope",
                           "/made.Up/M1", "/made.Up/M2", "no-slash"}) {
    EXPECT_EQ(CallUnimplemented(path).error_code(),
              grpc::StatusCode::UNIMPLEMENTED)
        << path;
  }

  constexpr char kUnknown[] =
      R"(grpc_method="unknown",grpc_service="unknown",grpc_type="bidi_stream")";
  std::vector<std::string> expected = {
      Line("grpc_server_started_total", kUnknown, "4"),
      Handled("Unimplemented", kUnknown, "4"),
      Line("grpc_server_handling_seconds_count", kUnknown, "4"),
  };
  std::vector<std::string> lines = ScrapeWhenThere(expected);
  EXPECT_THAT(lines, IsSupersetOf(expected));
  EXPECT_THAT(lines, Not(::testing::Contains(::testing::HasSubstr("Nope"))));
  EXPECT_THAT(lines, Not(::testing::Contains(::testing::HasSubstr("made.Up"))));
}

TEST_P(GrpcMetricsTest, InitializesMethodsAtZero) {
  ASSERT_TRUE(InitializeGrpcServerMetrics(*registry_,
                                          "switchboard.testing.v1.EchoService")
                  .ok());

  std::vector<std::string> lines = Lines(Scrape());
  EXPECT_THAT(lines,
              IsSupersetOf({
                  Line("grpc_server_started_total", kUnary, "0"),
                  Line("grpc_server_started_total", kStream, "0"),
                  Handled("OK", kUnary, "0"),
                  Handled("Unauthenticated", kUnary, "0"),
                  Handled("Canceled", kStream, "0"),
                  Line("grpc_server_msg_sent_total", kStream, "0"),
                  Line("grpc_server_msg_received_total", kStream, "0"),
                  Line("grpc_server_handling_seconds_count", kUnary, "0"),
              }));
  EXPECT_EQ(HandledLines(lines, kUnary).size(), 17);

  // Calls then count on the same series.
  EXPECT_TRUE(Echo("hello").ok());
  lines = ScrapeWhenThere({Handled("OK", kUnary, "1")});
  EXPECT_THAT(lines, IsSupersetOf({Line("grpc_server_started_total", kUnary,
                                        "1"),
                                   Handled("OK", kUnary, "1"),
                                   Handled("Internal", kUnary, "0")}));
  EXPECT_EQ(HandledLines(lines, kUnary).size(), 17);
}

TEST_P(GrpcMetricsTest, InitializingAnUnknownServiceIsNotFound) {
  EXPECT_EQ(InitializeGrpcServerMetrics(*registry_, "no.such.Service").code(),
            absl::StatusCode::kNotFound);
}

TEST_P(GrpcMetricsTest, CountsConcurrentCallsExactly) {
  constexpr int kThreads = 4;
  constexpr int kCallsPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        EXPECT_TRUE(Echo("x").ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  const std::string total = std::to_string(kThreads * kCallsPerThread);
  std::vector<std::string> expected = {
      Line("grpc_server_started_total", kUnary, total),
      Handled("OK", kUnary, total),
      Line("grpc_server_msg_sent_total", kUnary, total),
      Line("grpc_server_handling_seconds_count", kUnary, total),
  };
  EXPECT_THAT(ScrapeWhenThere(expected), IsSupersetOf(expected));
}

INSTANTIATE_TEST_SUITE_P(Apis, GrpcMetricsTest,
                         ::testing::Values(Api::kCallback, Api::kSync),
                         [](const ::testing::TestParamInfo<Api>& info) {
                           return info.param == Api::kCallback ? "Callback"
                                                               : "Sync";
                         });

}  // namespace
}  // namespace switchboard::metrics
