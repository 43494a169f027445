#pragma once

// The embedded default Sink: appends each event as one JSON line to a local
// file, so that a run without Kafka still shows (and keeps) its events:
//   {"topic":"switchboard.presence.v1","key":"agent-1","event":{...}}
// where "event" is the protobuf JSON form of the switchboard.events.v1.Event
// (parse it back with google::protobuf::util::JsonStringToMessage). A value
// that is not a valid Event (which AppendToOutbox never writes) is kept
// rather than dropped, as
//   {"topic":...,"key":...,"event_id":...,"type":...,"value_base64":"..."}
//
// Threading: Publish from one thread at a time (the Relay's).

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/events/sink.h"

namespace switchboard::events {

class JsonLinesSink : public Sink {
 public:
  // Opens `path` for appending, creating the file (not its folder) if
  // needed. Errors name the path and the reason: NOT_FOUND (missing
  // folder), PERMISSION_DENIED, or another errno-derived code.
  static absl::StatusOr<std::unique_ptr<JsonLinesSink>> Open(
      absl::string_view path);

  JsonLinesSink(const JsonLinesSink&) = delete;
  JsonLinesSink& operator=(const JsonLinesSink&) = delete;
  ~JsonLinesSink() override;

  // Appends one line per record, then fsyncs once: all records are
  // confirmed together, or, if writing or syncing fails, all fail with
  // UNAVAILABLE and the file is cut back to where it was (no torn line).
  std::vector<absl::Status> Publish(
      const std::vector<OutboxRecord>& records) override;

  const std::string& path() const { return path_; }

 private:
  JsonLinesSink(int fd, std::string path);

  const int fd_;
  const std::string path_;
};

// The line (without the newline) that JsonLinesSink writes for `record`.
std::string FormatJsonLine(const OutboxRecord& record);

}  // namespace switchboard::events
