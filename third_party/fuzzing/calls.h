#pragma once

// Helpers shared by the services' fuzz targets: reading a sequence of calls
// from an input, and the checks every target makes.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace switchboard::fuzzing {

// Aborts (a finding) with `what` on stderr unless `ok`.
inline void Check(bool ok, absl::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz check failed: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

// With SWITCHBOARD_FUZZ_VERBOSE set, targets print each call's outcome:
// how to see what a seed does when writing one.
inline bool Verbose() {
  static const bool verbose = std::getenv("SWITCHBOARD_FUZZ_VERBOSE") != nullptr;
  return verbose;
}

// A service's answer to a client must be a client error or a refusal a
// healthy server gives (NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED,
// UNAVAILABLE from a peer...), never a server fault: INTERNAL, UNKNOWN,
// DATA_LOSS or UNIMPLEMENTED for some input means a bug.
inline void CheckServed(const absl::Status& status, absl::string_view call) {
  if (Verbose()) {
    std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(call.size()), call.data(),
                 status.ToString().c_str());
  }
  const absl::StatusCode code = status.code();
  if (code == absl::StatusCode::kInternal || code == absl::StatusCode::kUnknown ||
      code == absl::StatusCode::kDataLoss || code == absl::StatusCode::kUnimplemented) {
    Check(false, std::string(call) + ": " + status.ToString());
  }
}

// The calls of an input holding a message whose field 1 is `repeated Call`
// (each target's Input), at most `max`. Calls are read one at a time from
// the wire form, so that a mutation breaking one call leaves the others.
template <typename Call>
std::vector<Call> ReadCalls(const uint8_t* data, size_t size, size_t max) {
  google::protobuf::io::CodedInputStream in(data, static_cast<int>(size));
  std::vector<Call> calls;
  while (calls.size() < max) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    if (tag != (1 << 3 | 2)) {  // field 1, length-delimited
      if (!google::protobuf::internal::WireFormatLite::SkipField(&in, tag)) break;
      continue;
    }
    uint32_t length = 0;
    std::string bytes;
    if (!in.ReadVarint32(&length) || !in.ReadString(&bytes, static_cast<int>(length))) break;
    Call call;
    if (call.ParseFromString(bytes)) calls.push_back(std::move(call));
  }
  return calls;
}

}  // namespace switchboard::fuzzing
