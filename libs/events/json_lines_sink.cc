#include "libs/events/json_lines_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "libs/log/log.h"
#include "libs/protoutil/json.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::events {
namespace {

absl::Status ErrnoError(int error, absl::string_view what,
                        absl::string_view path) {
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(what, " \"", path, "\": ", strerror(error)));
}

std::string Quoted(absl::string_view s) {
  return absl::StrCat("\"", log::JsonEscape(s), "\"");
}

// Makes a newly created file's name durable, not just its contents.
void SyncParentFolder(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string folder =
      slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int fd = open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

}  // namespace

std::string FormatJsonLine(const OutboxRecord& record) {
  v1::Event event;
  std::string json;
  // protoutil's printer prints what protobuf's does at a fraction of its
  // cost; protobuf's takes what it does not cover.
  if (event.ParseFromString(record.value) &&
      (protoutil::AppendJson(event, &json) ||
       google::protobuf::util::MessageToJsonString(event, &json).ok())) {
    return absl::StrCat("{\"topic\":", Quoted(record.topic),
                        ",\"key\":", Quoted(record.key), ",\"event\":", json,
                        "}");
  }
  return absl::StrCat("{\"topic\":", Quoted(record.topic),
                      ",\"key\":", Quoted(record.key),
                      ",\"event_id\":", Quoted(record.event_id),
                      ",\"type\":", Quoted(record.type), ",\"value_base64\":",
                      Quoted(absl::Base64Escape(record.value)), "}");
}

absl::StatusOr<std::unique_ptr<JsonLinesSink>> JsonLinesSink::Open(
    absl::string_view path) {
  std::string file(path);
  struct stat before;
  const bool existed = stat(file.c_str(), &before) == 0;
  const int fd =
      open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return ErrnoError(errno, "cannot open the event file for appending", file);
  }
  if (!existed) SyncParentFolder(file);
  return std::unique_ptr<JsonLinesSink>(new JsonLinesSink(fd, std::move(file)));
}

JsonLinesSink::JsonLinesSink(int fd, std::string path)
    : fd_(fd), path_(std::move(path)) {}

JsonLinesSink::~JsonLinesSink() { close(fd_); }

std::vector<absl::Status> JsonLinesSink::Publish(
    const std::vector<OutboxRecord>& records) {
  std::string text;
  for (const OutboxRecord& record : records) {
    absl::StrAppend(&text, FormatJsonLine(record), "\n");
  }

  struct stat before;
  absl::Status status;
  if (fstat(fd_, &before) != 0) {
    status = ErrnoError(errno, "cannot stat the event file", path_);
  }
  size_t written = 0;
  while (status.ok() && written < text.size()) {
    const ssize_t n = write(fd_, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = ErrnoError(errno, "cannot write the event file", path_);
    } else {
      written += static_cast<size_t>(n);
    }
  }
  if (status.ok() && fsync(fd_) != 0) {
    status = ErrnoError(errno, "cannot sync the event file", path_);
  }
  if (!status.ok()) {
    // Cut back any partial batch: the records will be retried whole.
    if (written > 0 && ftruncate(fd_, before.st_size) != 0) {
      log::Error("event_file_truncate_failed",
                 {{"path", path_}, {"error", strerror(errno)}});
    }
    status = absl::UnavailableError(status.message());
    log::Warning("event_file_write_failed",
                 {{"path", path_}, {"error", status.message()}});
  }
  return std::vector<absl::Status>(records.size(), status);
}

}  // namespace switchboard::events
