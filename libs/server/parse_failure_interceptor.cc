#include "libs/server/parse_failure_interceptor.h"

#include <google/protobuf/descriptor.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace switchboard::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

// The request type of "/package.Service/Method", or null if no such method
// is compiled into this binary.
const google::protobuf::Descriptor* RequestType(absl::string_view path) {
  if (path.empty() || path[0] != '/') return nullptr;
  path.remove_prefix(1);
  const size_t slash = path.find('/');
  if (slash == absl::string_view::npos) return nullptr;
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(path.substr(0, slash)));
  if (service == nullptr) return nullptr;
  const google::protobuf::MethodDescriptor* method =
      service->FindMethodByName(std::string(path.substr(slash + 1)));
  return method == nullptr ? nullptr : method->input_type();
}

class ParseFailureInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit ParseFailureInterceptor(const google::protobuf::Descriptor* request_type)
      : request_type_(request_type) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (request_type_ != nullptr &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("request is not a valid ", request_type_->full_name(),
                         " (a string field holds invalid UTF-8, or the bytes "
                         "are not that message)")));
      }
    }
    methods->Proceed();
  }

 private:
  const google::protobuf::Descriptor* const request_type_;
};

class ParseFailureInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ParseFailureInterceptor(RequestType(info->method()));
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeParseFailureInterceptorFactory() {
  return std::make_unique<ParseFailureInterceptorFactory>();
}

}  // namespace switchboard::server
