#include "libs/events/read_json_lines.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace switchboard::events {

absl::StatusOr<std::vector<JsonLine>> ReadJsonLines(absl::string_view path) {
  std::ifstream in{std::string(path)};
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<JsonLine> lines;
  std::string text;
  int number = 0;
  while (std::getline(in, text)) {
    ++number;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " line ", number, ": ", why));
    };
    // Through Struct, so that "event" is parsed back by the protobuf JSON
    // parser itself, as a consumer would.
    google::protobuf::Struct line;
    if (!google::protobuf::util::JsonStringToMessage(text, &line).ok()) {
      return bad("not a JSON object");
    }
    const auto& fields = line.fields();
    if (fields.count("topic") == 0 || fields.count("key") == 0 ||
        fields.count("event") == 0) {
      return bad("topic, key or event missing");
    }
    std::string event_json;
    if (!google::protobuf::util::MessageToJsonString(fields.at("event"),
                                                     &event_json)
             .ok()) {
      return bad("event is not printable");
    }
    JsonLine parsed;
    parsed.topic = fields.at("topic").string_value();
    parsed.key = fields.at("key").string_value();
    google::protobuf::util::JsonParseOptions strict;
    strict.ignore_unknown_fields = false;
    if (!google::protobuf::util::JsonStringToMessage(event_json, &parsed.event,
                                                     strict)
             .ok()) {
      return bad("event is not a switchboard.events.v1.Event");
    }
    lines.push_back(std::move(parsed));
  }
  return lines;
}

}  // namespace switchboard::events
