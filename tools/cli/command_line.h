#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"

namespace switchboard::cli {

// A command's arguments after the group and command names, split into
// positional arguments and flags. Flags are `--name=value`, `--name value`
// or, for the names in `bool_flags`, a bare `--name` / `--noname`; anything
// else not starting with "--" is positional. `--` ends the flags: what
// follows is positional even if it starts with "--".
struct SplitArgs {
  std::vector<std::string> positional;
  // argv for config::FlagSet::Parse: a program name first, then the flags.
  std::vector<std::string> flags;
};
SplitArgs Split(const std::vector<std::string>& args,
                const std::set<std::string>& bool_flags);

// The value of enum `type` named by `text`, case-insensitively, with or
// without the enum's prefix: for Channel, "chat", "CHAT" and "CHANNEL_CHAT"
// all name CHANNEL_CHAT; '-' stands for '_' ("account-security"). The
// UNSPECIFIED value is never accepted. InvalidArgument names `flag` and
// lists the accepted names.
absl::StatusOr<int> ParseEnum(const google::protobuf::EnumDescriptor* type,
                              absl::string_view flag, absl::string_view text);

// A comma-separated list of ParseEnum names; empty text is an empty list.
absl::StatusOr<std::vector<int>> ParseEnumList(
    const google::protobuf::EnumDescriptor* type, absl::string_view flag,
    absl::string_view text);

// The short lower-case name of an enum value, as ParseEnum accepts it:
// CATEGORY_ACCOUNT_SECURITY -> "account_security". Unknown numbers print
// as the number.
std::string EnumLabel(const google::protobuf::EnumDescriptor* type, int value);

// "chat:3,email:5" -> {{"chat", 3}, {"email", 5}}: a name and a whole
// number per item. InvalidArgument naming `flag` otherwise.
absl::StatusOr<std::vector<std::pair<std::string, int>>> ParseNamedCounts(
    absl::string_view flag, absl::string_view text);

// A positive duration for a human: "850 ms", "4.2 s", "3 min 05 s",
// "2 h 10 min".
std::string HumanDuration(absl::Duration duration);

// A size for a human: "850 bytes", "12.3 KiB", "4.0 MiB", "1.5 GiB".
std::string HumanBytes(int64_t bytes);

}  // namespace switchboard::cli
