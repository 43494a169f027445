#pragma once

#include <string>

#include <google/protobuf/message.h>

namespace switchboard::protoutil {

// Appends `message` as proto3 JSON to `out`, exactly as
// google::protobuf::util::MessageToJsonString prints it with default options
// (lowerCamelCase names, enums by name, 64-bit integers quoted, fields in
// field-number order, the same string escapes and float digits), but by
// walking the parsed message's reflection. Protobuf 3.21's printer
// serializes the message again and re-reads it through a type resolver,
// which made JSON the largest single cost of a durable message in sessions
// (the event file's relay).
//
// Covers scalars, enums, nested and repeated messages, Timestamp and
// Duration. Returns false, with `out` as it was, for what it does not cover
// (maps, Any, Struct, Value, wrappers, FieldMask, groups) and for a
// Timestamp or Duration outside JSON's range: call MessageToJsonString then.
// Thread-safe (reads only `message`).
bool AppendJson(const google::protobuf::Message& message, std::string* out);

}  // namespace switchboard::protoutil
