#pragma once

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"

namespace switchboard::protoutil {

// absl::Time <-> google.protobuf.Timestamp. Infinite times have no Timestamp:
// ToTimestamp leaves the message cleared for them, so APIs show "unset".
void ToTimestamp(absl::Time time, google::protobuf::Timestamp* out);
absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp);

void ToDuration(absl::Duration duration, google::protobuf::Duration* out);
absl::Duration FromDuration(const google::protobuf::Duration& duration);

}  // namespace switchboard::protoutil
