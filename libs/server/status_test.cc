#include "libs/server/status.h"

#include "gtest/gtest.h"

namespace switchboard::server {
namespace {

TEST(StatusTest, CallerErrorsKeepTheirCodeAndMessage) {
  grpc::Status s = ToGrpcStatus(absl::InvalidArgumentError("agent_id: too long"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "agent_id: too long");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(StatusTest, InternalDetailStaysInTheLog) {
  grpc::Status s = ToGrpcStatus(absl::InternalError("disk I/O error in /var/x.db"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(s.error_message().find("/var/x.db"), std::string::npos);
  EXPECT_NE(s.error_message().find("reference"), std::string::npos);
}

}  // namespace
}  // namespace switchboard::server
