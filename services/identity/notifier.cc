#include "services/identity/notifier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace switchboard::identity {
namespace {

absl::Status WriteAll(int fd, absl::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("write failed: ", std::strerror(errno)));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<DevelopmentCodeOutbox>> DevelopmentCodeOutbox::Open(
    const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open the development code outbox ", path, ": ",
                     std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size == 0) {
    if (absl::Status s = WriteAll(fd, absl::StrCat(kHeader, "\n")); !s.ok()) {
      ::close(fd);
      return absl::UnavailableError(absl::StrCat(path, ": ", s.message()));
    }
  }
  return std::unique_ptr<DevelopmentCodeOutbox>(new DevelopmentCodeOutbox(fd, path));
}

DevelopmentCodeOutbox::~DevelopmentCodeOutbox() { ::close(fd_); }

absl::Status DevelopmentCodeOutbox::Deliver(const v1::CodeDeliveryRequest& request) {
  std::string line;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(request, &line, options).ok()) {
    return absl::InternalError("cannot format a code delivery request");
  }
  line.push_back('\n');
  absl::MutexLock lock(&mu_);
  if (absl::Status s = WriteAll(fd_, line); !s.ok()) {
    return absl::UnavailableError(absl::StrCat(path_, ": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace switchboard::identity
