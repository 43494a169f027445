#include "libs/server/status.h"

#include <atomic>
#include <optional>

#include "absl/strings/str_cat.h"
#include "libs/limits/retry_after.h"
#include "libs/log/log.h"

namespace switchboard::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss: {
      static std::atomic<int64_t> next_reference{1};
      const int64_t reference = next_reference.fetch_add(1);
      log::Error("internal_error", {{"reference", reference},
                                    {"code", absl::StatusCodeToString(status.code())},
                                    {"detail", status.message()}});
      return grpc::Status(code, absl::StrCat("internal error (server log reference ",
                                             reference, ")"));
    }
    default:
      return grpc::Status(code, std::string(status.message()));
  }
}

grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContextBase& context) {
  if (std::optional<int64_t> seconds = limits::RetryAfterSeconds(status)) {
    context.AddTrailingMetadata(limits::kRetryAfter, absl::StrCat(*seconds));
  }
  return ToGrpcStatus(status);
}

}  // namespace switchboard::server
