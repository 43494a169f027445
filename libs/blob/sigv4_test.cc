#include "libs/blob/sigv4.h"

#include <functional>
#include <vector>

#include "absl/time/civil_time.h"
#include "gtest/gtest.h"

namespace switchboard::blob {
namespace {

// The presigned-URL example of Amazon S3's documentation ("Authenticating
// Requests: Using Query Parameters (AWS Signature Version 4)").
TEST(SigV4Test, MatchesAwsPublishedPresignedUrlExample) {
  PresignRequest request;
  request.host = "examplebucket.s3.amazonaws.com";
  request.path = "/test.txt";
  request.region = "us-east-1";
  request.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  request.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  request.now = absl::FromCivil(absl::CivilSecond(2013, 5, 24, 0, 0, 0), absl::UTCTimeZone());
  request.expires_in = absl::Hours(24);
  EXPECT_EQ(PresignQuery(request),
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            "&X-Amz-Signature="
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST(SigV4Test, EveryPartIsSigned) {
  PresignRequest request;
  request.host = "127.0.0.1:9000";
  request.path = "/attachments/abc";
  request.region = "us-east-1";
  request.access_key_id = "key";
  request.secret_access_key = "secret";
  request.now = absl::FromUnixSeconds(1'800'000'000);
  request.expires_in = absl::Minutes(5);
  const std::string base = PresignQuery(request);
  for (auto change : std::vector<std::function<void(PresignRequest&)>>{
           [](PresignRequest& r) { r.host = "127.0.0.1:9001"; },
           [](PresignRequest& r) { r.path = "/attachments/abd"; },
           [](PresignRequest& r) { r.secret_access_key = "secreT"; },
           [](PresignRequest& r) { r.method = "PUT"; }}) {
    PresignRequest changed = request;
    change(changed);
    EXPECT_NE(PresignQuery(changed).substr(base.find("X-Amz-Signature")),
              base.substr(base.find("X-Amz-Signature")));
  }
}

}  // namespace
}  // namespace switchboard::blob
