#pragma once

#include <string>

#include "absl/time/time.h"

namespace switchboard::blob {

// A request to presign with AWS Signature Version 4 in the query string (a
// presigned URL), as S3 and S3-compatible stores check it.
struct PresignRequest {
  std::string method = "GET";
  // The Host header: "bucket.s3.amazonaws.com" or "127.0.0.1:9000".
  std::string host;
  // The URI path, already percent-encoded where needed ("/bucket/key").
  std::string path;
  std::string region;
  std::string access_key_id;
  std::string secret_access_key;
  absl::Time now;
  absl::Duration expires_in;
};

// The query string of the presigned URL: the X-Amz-* parameters and
// X-Amz-Signature, with `host` as the only signed header and an unsigned
// payload.
std::string PresignQuery(const PresignRequest& request);

}  // namespace switchboard::blob
