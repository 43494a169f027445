#include "libs/server/status.h"

#include <atomic>

#include "absl/strings/str_cat.h"
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

}  // namespace switchboard::server
