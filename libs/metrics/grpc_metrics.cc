#include "libs/metrics/grpc_metrics.h"

#include <array>
#include <atomic>
#include <chrono>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"

namespace switchboard::metrics {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

constexpr int kNumCodes = 17;

// grpc-go's codes.Code.String(), indexed by code: what go-grpc-prometheus
// writes in grpc_code.
constexpr std::array<const char*, kNumCodes> kCodeNames = {
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
};

// The path under which calls to unimplemented methods count. Sync servers
// name them so already (it splits into service and method "unknown").
constexpr absl::string_view kUnknownPath = "unknown";

const char* TypeName(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "bidi_stream";
}

ServerRpcInfo::Type TypeOf(const google::protobuf::MethodDescriptor& method) {
  if (method.client_streaming()) {
    return method.server_streaming() ? ServerRpcInfo::Type::BIDI_STREAMING
                                     : ServerRpcInfo::Type::CLIENT_STREAMING;
  }
  return method.server_streaming() ? ServerRpcInfo::Type::SERVER_STREAMING
                                   : ServerRpcInfo::Type::UNARY;
}

// "/pkg.Service/Method" -> grpc_service and grpc_method, split as
// go-grpc-prometheus splits them ("unknown" for both without a '/').
prometheus::Labels MethodLabels(absl::string_view path,
                                ServerRpcInfo::Type type) {
  absl::string_view service = "unknown";
  absl::string_view method = "unknown";
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (size_t slash = path.find('/'); slash != absl::string_view::npos) {
    service = path.substr(0, slash);
    method = path.substr(slash + 1);
  }
  return {{"grpc_type", TypeName(type)},
          {"grpc_service", std::string(service)},
          {"grpc_method", std::string(method)}};
}

// The metric families, registered (or found, when already registered) in one
// registry.
struct Families {
  explicit Families(prometheus::Registry& registry)
      : started(prometheus::BuildCounter()
                    .Name("grpc_server_started_total")
                    .Help("Total number of RPCs started on the server.")
                    .Register(registry)),
        handled(prometheus::BuildCounter()
                    .Name("grpc_server_handled_total")
                    .Help("Total number of RPCs completed on the server, "
                          "regardless of success or failure.")
                    .Register(registry)),
        handling_seconds(
            prometheus::BuildHistogram()
                .Name("grpc_server_handling_seconds")
                .Help("Histogram of response latency (seconds) of gRPC that "
                      "had been application-level handled by the server.")
                .Register(registry)),
        msg_received(
            prometheus::BuildCounter()
                .Name("grpc_server_msg_received_total")
                .Help("Total number of RPC stream messages received on the "
                      "server.")
                .Register(registry)),
        msg_sent(prometheus::BuildCounter()
                     .Name("grpc_server_msg_sent_total")
                     .Help("Total number of gRPC stream messages sent by the "
                           "server.")
                     .Register(registry)) {}

  prometheus::Family<prometheus::Counter>& started;
  prometheus::Family<prometheus::Counter>& handled;
  prometheus::Family<prometheus::Histogram>& handling_seconds;
  prometheus::Family<prometheus::Counter>& msg_received;
  prometheus::Family<prometheus::Counter>& msg_sent;
};

// Prometheus's client default buckets, which go-grpc-prometheus uses.
const prometheus::Histogram::BucketBoundaries& HandlingBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}

// The series of one method. Handles point into the registry's families,
// which never remove them.
class MethodMetrics {
 public:
  MethodMetrics(Families& families, prometheus::Labels labels)
      : families_(families),
        labels_(std::move(labels)),
        started_(families.started.Add(labels_)),
        handling_seconds_(
            families.handling_seconds.Add(labels_, HandlingBuckets())),
        msg_received_(families.msg_received.Add(labels_)),
        msg_sent_(families.msg_sent.Add(labels_)) {}

  prometheus::Counter& started() { return started_; }
  prometheus::Histogram& handling_seconds() { return handling_seconds_; }
  prometheus::Counter& msg_received() { return msg_received_; }
  prometheus::Counter& msg_sent() { return msg_sent_; }

  // The handled counter of `code`, created on its first use: most methods
  // only ever see a few codes.
  prometheus::Counter& handled(int code) {
    if (code < 0 || code >= kNumCodes) code = grpc::StatusCode::UNKNOWN;
    prometheus::Counter* counter =
        handled_[code].load(std::memory_order_acquire);
    if (counter == nullptr) {
      // Racing first calls get the same series back from Add().
      prometheus::Labels labels = labels_;
      labels.emplace("grpc_code", kCodeNames[code]);
      counter = &families_.handled.Add(labels);
      handled_[code].store(counter, std::memory_order_release);
    }
    return *counter;
  }

 private:
  Families& families_;
  const prometheus::Labels labels_;
  prometheus::Counter& started_;
  prometheus::Histogram& handling_seconds_;
  prometheus::Counter& msg_received_;
  prometheus::Counter& msg_sent_;
  std::array<std::atomic<prometheus::Counter*>, kNumCodes> handled_{};
};

// The factory's state, shared with its interceptors so that a call still
// running when the server drops the factory finds it alive.
class ServerMetrics {
 public:
  explicit ServerMetrics(prometheus::Registry& registry)
      : families_(registry) {}

  // The metrics of the method at `path`, created on its first call.
  MethodMetrics& ForMethod(absl::string_view path, ServerRpcInfo::Type type) {
    {
      absl::ReaderMutexLock lock(&mu_);
      if (auto it = methods_.find(path); it != methods_.end()) {
        return *it->second;
      }
    }
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = methods_.try_emplace(path);
    if (inserted) {
      it->second = std::make_unique<MethodMetrics>(families_,
                                                   MethodLabels(path, type));
    }
    return *it->second;
  }

 private:
  Families families_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<MethodMetrics>> methods_
      ABSL_GUARDED_BY(mu_);
};

// sent_code_ before a status and after the close, when none may be set.
constexpr int kNoStatus = -1;
constexpr int kClosed = -2;

// Records one call. gRPC creates it when the call starts and deletes it after
// the call ends; hooks may run on different threads, concurrently.
//
// The hooks used, which fire on callback and sync servers alike:
//   POST_RECV_MESSAGE  each read; a read that found the end of the stream
//                      has no message.
//   POST_SEND_MESSAGE  each write, with whether it succeeded.
//   PRE_SEND_STATUS    the status, if the server sends one.
//   POST_RECV_CLOSE    once, when the call is over, whether it ended by the
//                      server's status or by a cancellation (client, deadline,
//                      TryCancel): the one place to count it handled.
// gRPC reports a call closed uncancelled only after its status went out, so
// a status seen before the close is the call's, unless the call was
// cancelled. On callback servers the close is reported as soon as it
// happens, with whether it was a cancellation (IsCancelled() is final by
// then), while OnCancel() may be running and finishing the call on another
// thread: there a cancellation decides. Sync servers report the close only
// after the handler returned its status, as go-grpc-prometheus records the
// handler's status: there the status decides.
class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(std::shared_ptr<ServerMetrics> server,
                     MethodMetrics& method, grpc::ServerContextBase* context)
      : server_(std::move(server)),
        method_(method),
        context_(context),
        callback_api_(dynamic_cast<grpc::CallbackServerContext*>(context) !=
                      nullptr),
        start_(std::chrono::steady_clock::now()) {
    method_.started().Increment();
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() != nullptr) {
      method_.msg_received().Increment();
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_SEND_MESSAGE) &&
        methods->GetSendMessageStatus()) {
      method_.msg_sent().Increment();
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      int expected = kNoStatus;
      sent_code_.compare_exchange_strong(
          expected, methods->GetSendStatus().error_code(),
          std::memory_order_acq_rel);
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_CLOSE)) {
      RecordHandled();
    }
    methods->Proceed();
  }

 private:
  void RecordHandled() {
    // A status sent after the close came too late for the client.
    int code = sent_code_.exchange(kClosed, std::memory_order_acq_rel);
    if (code == kNoStatus || (callback_api_ && context_->IsCancelled())) {
      code = context_->deadline() <= std::chrono::system_clock::now()
                 ? grpc::StatusCode::DEADLINE_EXCEEDED
                 : grpc::StatusCode::CANCELLED;
    }
    method_.handled(code).Increment();
    method_.handling_seconds().Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                      start_)
            .count());
  }

  const std::shared_ptr<ServerMetrics> server_;
  MethodMetrics& method_;
  grpc::ServerContextBase* const context_;
  const bool callback_api_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<int> sent_code_{kNoStatus};
};

class MetricsInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(prometheus::Registry& registry)
      : server_(std::make_shared<ServerMetrics>(registry)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      ServerRpcInfo* info) override {
    const char* path = info->method();
    // A generic context means no registered method matched: the path is
    // whatever the client sent, and must not become a label value.
    const bool unknown =
        path == nullptr ||
        dynamic_cast<grpc::GenericCallbackServerContext*>(
            info->server_context()) != nullptr ||
        dynamic_cast<grpc::GenericServerContext*>(info->server_context()) !=
            nullptr;
    absl::string_view method = unknown ? kUnknownPath : absl::string_view(path);
    return new MetricsInterceptor(server_,
                                  server_->ForMethod(method, info->type()),
                                  info->server_context());
  }

 private:
  const std::shared_ptr<ServerMetrics> server_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeGrpcServerMetricsInterceptorFactory(prometheus::Registry& registry) {
  return std::make_unique<MetricsInterceptorFactory>(registry);
}

absl::Status InitializeGrpcServerMetrics(prometheus::Registry& registry,
                                         absl::string_view service_full_name) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(service_full_name));
  if (service == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "service ", service_full_name, " is not in the generated pool"));
  }
  Families families(registry);
  for (int i = 0; i < service->method_count(); ++i) {
    const google::protobuf::MethodDescriptor& method = *service->method(i);
    MethodMetrics metrics(
        families, MethodLabels(absl::StrCat("/", service->full_name(), "/",
                                            method.name()),
                               TypeOf(method)));
    for (int code = 0; code < kNumCodes; ++code) metrics.handled(code);
  }
  return absl::OkStatus();
}

absl::string_view GrpcCodeName(int code) {
  if (code < 0 || code >= kNumCodes) code = grpc::StatusCode::UNKNOWN;
  return kCodeNames[code];
}

}  // namespace switchboard::metrics
