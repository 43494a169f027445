#pragma once

#include <memory>
#include <string>

#include "libs/blob/blob_store.h"
#include "libs/clock/clock.h"

namespace switchboard::blob {

// Blobs as objects in a bucket of any S3-compatible store, named by their
// key, over plain HTTP(S) with libcurl signing each request (AWS Signature
// Version 4, path-style addressing: `<endpoint>/<bucket>/<key>`). Every
// request carries the payload's SHA-256, so the store can refuse a body
// damaged on the way. SignedUrl gives presigned GET URLs, so a client can
// download straight from the store.
class S3BlobStore : public BlobStore {
 public:
  struct Options {
    // "http://127.0.0.1:9000" or "https://s3.eu-west-1.amazonaws.com".
    std::string endpoint;
    std::string bucket;
    std::string region = "us-east-1";
    std::string access_key_id;
    std::string secret_access_key;
    // Per request; a store that does not answer in time is UNAVAILABLE.
    absl::Duration timeout = absl::Seconds(30);
    const Clock* clock = RealClock();
  };
  // Checks the options (not the store: it may come up later).
  static absl::StatusOr<std::unique_ptr<S3BlobStore>> Create(Options options);

  absl::StatusOr<std::string> Put(absl::string_view bytes) override;
  absl::StatusOr<std::string> Get(absl::string_view key) override;
  absl::StatusOr<bool> Exists(absl::string_view key) override;
  absl::Status Delete(absl::string_view key) override;
  absl::StatusOr<std::vector<std::string>> List(absl::string_view after, int limit) override;
  std::optional<std::string> SignedUrl(absl::string_view key,
                                       absl::Duration expires_in) override;

 private:
  struct Response {
    long status = 0;
    std::string body;
  };
  S3BlobStore(Options options, std::string host);
  // One signed request; UNAVAILABLE when the store cannot be reached.
  absl::StatusOr<Response> Send(const std::string& method, const std::string& path_and_query,
                                absl::string_view body, const std::string& payload_sha256);

  const Options options_;
  // "host[:port]" of the endpoint: what the Host header and SigV4 sign.
  const std::string host_;
};

}  // namespace switchboard::blob
