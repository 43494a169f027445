#pragma once

// Reads back the file a JsonLinesSink wrote, for tests (of the sink, the
// relay, or a service's events).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "switchboard/events/v1/event.pb.h"

namespace switchboard::events {

struct JsonLine {
  std::string topic;
  std::string key;
  v1::Event event;
};

// Parses every line of the file at `path`. INVALID_ARGUMENT naming the line
// number if a line is not {"topic":...,"key":...,"event":{...}} with a valid
// Event; NOT_FOUND if the file is missing.
absl::StatusOr<std::vector<JsonLine>> ReadJsonLines(absl::string_view path);

}  // namespace switchboard::events
