#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "switchboard/identity/v1/code_delivery.pb.h"

namespace switchboard::identity {

// Hands one-time codes to whatever delivers them by email or SMS. The
// request holds the code: implementations must never log it.
class CodeNotifier {
 public:
  virtual ~CodeNotifier() = default;
  // Called before the challenge is committed, which happens only once this
  // returned OK (a committed challenge always had its code handed over; a
  // code whose challenge then fails to commit is merely useless). Blocking;
  // thread-safe.
  virtual absl::Status Deliver(const v1::CodeDeliveryRequest& request) = 0;
};

// The embedded default: appends each request as a JSON line to a local file
// that starts with a line saying it is for development only, so that a local
// run can show the code. Never use it in production: the file holds live
// codes.
class DevelopmentCodeOutbox : public CodeNotifier {
 public:
  // The file's name in the data folder (see code_delivery.proto).
  static constexpr char kFileName[] = "DEVELOPMENT-ONLY-code-outbox.jsonl";
  // The first line of the file.
  static constexpr char kHeader[] =
      "{\"warning\":\"DEVELOPMENT ONLY: one-time codes of a local Switchboard "
      "run, in plain text. Never enable this outbox in production.\"}";

  // Opens `path` for appending (mode 0600), writing the header first when
  // the file is new or empty. Errors name the path.
  static absl::StatusOr<std::unique_ptr<DevelopmentCodeOutbox>> Open(
      const std::string& path);
  ~DevelopmentCodeOutbox() override;

  absl::Status Deliver(const v1::CodeDeliveryRequest& request) override;

 private:
  DevelopmentCodeOutbox(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  absl::Mutex mu_;
  const int fd_;
  const std::string path_;
};

}  // namespace switchboard::identity
