// Fuzzes ReadJsonLines, the reader of the event files JsonLinesSink writes
// (what data teams and tests read when Kafka is off). The input is the
// file's content. Reading must succeed or fail with INVALID_ARGUMENT; every
// line it accepted, written again the way JsonLinesSink writes it
// (FormatJsonLine), must read back as the same topic, key and event.

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "google/protobuf/util/message_differencer.h"
#include "libs/events/json_lines_sink.h"
#include "libs/events/read_json_lines.h"
#include "libs/storage/test_dir.h"

namespace {

using namespace switchboard::events;

const std::string& Path() {
  static const std::string* path =
      new std::string(switchboard::storage::MakeTempDir() + "/events.jsonl");
  return *path;
}

void Write(const std::string& content) {
  std::ofstream out(Path(), std::ios::binary | std::ios::trunc);
  out << content;
  if (!out.flush()) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Write(std::string(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<std::vector<JsonLine>> lines = ReadJsonLines(Path());
  if (!lines.ok()) {
    if (lines.status().code() != absl::StatusCode::kInvalidArgument) abort();
    return 0;
  }

  std::string rewritten;
  for (const JsonLine& line : *lines) {
    OutboxRecord record;
    record.topic = line.topic;
    record.key = line.key;
    record.event_id = line.event.event_id();
    record.type = line.event.type();
    if (!line.event.SerializeToString(&record.value)) abort();
    rewritten += FormatJsonLine(record) + "\n";
  }
  Write(rewritten);
  absl::StatusOr<std::vector<JsonLine>> again = ReadJsonLines(Path());
  if (!again.ok() || again->size() != lines->size()) abort();
  for (size_t i = 0; i < lines->size(); ++i) {
    const JsonLine& a = (*lines)[i];
    const JsonLine& b = (*again)[i];
    if (a.topic != b.topic || a.key != b.key ||
        !google::protobuf::util::MessageDifferencer::Equals(a.event, b.event)) {
      abort();
    }
  }
  return 0;
}
