#pragma once

#include <sys/types.h>

#include <string>

#include "libs/testing/reserved_port.h"

namespace switchboard::testing {

// A real S3-compatible server for a test: gofakes3 (tools/setup.sh builds it
// from the Go module proxy into /usr/local/bin), run as a child process on a
// reserved loopback port with an in-memory backend and one bucket. It speaks
// S3's REST API (PUT, GET, HEAD, DELETE, ListObjectsV2) but does not check
// request signatures, so tests of signing compare against AWS's published
// examples instead. The constructor returns once the server accepts
// connections; if it does not within 30 s, it aborts the test with its log.
class FakeS3Server {
 public:
  static constexpr char kBucket[] = "attachments";
  static constexpr char kAccessKeyId[] = "test-access-key";
  static constexpr char kSecretAccessKey[] = "test-secret-key";

  FakeS3Server();
  // Kills the server if it runs.
  ~FakeS3Server();
  FakeS3Server(const FakeS3Server&) = delete;
  FakeS3Server& operator=(const FakeS3Server&) = delete;

  // "http://127.0.0.1:PORT".
  std::string endpoint() const { return "http://" + port_.address(); }
  // Stops the server (SIGTERM) and waits for it; everything stored is gone.
  void Stop();

 private:
  bool Accepts() const;

  std::string log_path_;
  ReservedPort port_;
  pid_t pid_ = -1;
};

}  // namespace switchboard::testing
