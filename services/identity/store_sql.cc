#include "services/identity/store_sql.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/storage/time_column.h"

namespace switchboard::identity {

std::string JoinTimes(const std::vector<absl::Time>& times) {
  return absl::StrJoin(times, ",", [](std::string* out, absl::Time t) {
    absl::StrAppend(out, storage::ToMicros(t));
  });
}

absl::StatusOr<std::vector<absl::Time>> SplitTimes(absl::string_view text) {
  std::vector<absl::Time> times;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t micros = 0;
    if (!absl::SimpleAtoi(part, &micros)) {
      return absl::DataLossError("identity store: unreadable time list");
    }
    times.push_back(storage::FromMicros(micros));
  }
  return times;
}

std::string JoinMethods(const std::vector<common::v1::VerificationMethod>& methods) {
  return absl::StrJoin(methods, ",", [](std::string* out, common::v1::VerificationMethod m) {
    absl::StrAppend(out, static_cast<int>(m));
  });
}

absl::StatusOr<std::vector<common::v1::VerificationMethod>> SplitMethods(absl::string_view text) {
  std::vector<common::v1::VerificationMethod> methods;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int method = 0;
    if (!absl::SimpleAtoi(part, &method)) {
      return absl::DataLossError("identity store: unreadable notified list");
    }
    methods.push_back(static_cast<common::v1::VerificationMethod>(method));
  }
  return methods;
}

}  // namespace switchboard::identity
