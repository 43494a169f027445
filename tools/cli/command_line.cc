#include "tools/cli/command_line.h"

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace switchboard::cli {
namespace {

// CHANNEL_CHAT -> "CHANNEL_": the common prefix of an enum's value names,
// taken from its UNSPECIFIED value (every Switchboard enum has one).
std::string Prefix(const google::protobuf::EnumDescriptor* type) {
  const std::string& first = type->value(0)->name();
  if (absl::EndsWith(first, "_UNSPECIFIED")) {
    return first.substr(0, first.size() - std::string("UNSPECIFIED").size());
  }
  return "";
}

}  // namespace

SplitArgs Split(const std::vector<std::string>& args,
                const std::set<std::string>& bool_flags) {
  SplitArgs split;
  split.flags.push_back("switchboard");
  bool flags_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_ended || !absl::StartsWith(arg, "--") || arg == "--") {
      if (arg == "--" && !flags_ended) {
        flags_ended = true;
        continue;
      }
      split.positional.push_back(arg);
      continue;
    }
    split.flags.push_back(arg);
    if (arg.find('=') != std::string::npos) continue;
    std::string name = arg.substr(2);
    const bool is_bool =
        bool_flags.count(name) > 0 || name == "help" ||
        (absl::StartsWith(name, "no") && bool_flags.count(name.substr(2)) > 0);
    if (!is_bool && i + 1 < args.size()) split.flags.push_back(args[++i]);
  }
  return split;
}

absl::StatusOr<int> ParseEnum(const google::protobuf::EnumDescriptor* type,
                              absl::string_view flag, absl::string_view text) {
  std::string name = absl::AsciiStrToUpper(text);
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  const std::string prefix = Prefix(type);
  const google::protobuf::EnumValueDescriptor* value =
      type->FindValueByName(prefix + name);
  if (value == nullptr) value = type->FindValueByName(name);
  if (value != nullptr && value->number() != 0) return value->number();
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0) {
      names.push_back(EnumLabel(type, type->value(i)->number()));
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": unknown value \"", text, "\"; use one of ",
                   absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::vector<int>> ParseEnumList(
    const google::protobuf::EnumDescriptor* type, absl::string_view flag,
    absl::string_view text) {
  std::vector<int> values;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    absl::StatusOr<int> value = ParseEnum(type, flag, absl::StripAsciiWhitespace(item));
    if (!value.ok()) return value.status();
    values.push_back(*value);
  }
  return values;
}

std::string EnumLabel(const google::protobuf::EnumDescriptor* type, int value) {
  const google::protobuf::EnumValueDescriptor* found = type->FindValueByNumber(value);
  if (found == nullptr) return absl::StrCat(value);
  std::string name = found->name();
  const std::string prefix = Prefix(type);
  if (absl::StartsWith(name, prefix)) name = name.substr(prefix.size());
  return absl::AsciiStrToLower(name);
}

absl::StatusOr<std::vector<std::pair<std::string, int>>> ParseNamedCounts(
    absl::string_view flag, absl::string_view text) {
  std::vector<std::pair<std::string, int>> items;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ':');
    int count = 0;
    if (parts.size() != 2 || parts[0].empty() ||
        !absl::SimpleAtoi(parts[1], &count) || count < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": \"", item,
                       "\" is not NAME:COUNT (e.g. chat:3)"));
    }
    items.emplace_back(std::string(absl::StripAsciiWhitespace(parts[0])), count);
  }
  return items;
}

std::string HumanDuration(absl::Duration duration) {
  if (duration < absl::ZeroDuration()) return "-" + HumanDuration(-duration);
  if (duration < absl::Seconds(1)) {
    return absl::StrCat(absl::ToInt64Milliseconds(duration), " ms");
  }
  if (duration < absl::Minutes(1)) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f s", absl::ToDoubleSeconds(duration));
    return text;
  }
  const int64_t seconds = absl::ToInt64Seconds(duration);
  char text[48];
  if (duration < absl::Hours(1)) {
    std::snprintf(text, sizeof(text), "%lld min %02lld s",
                  static_cast<long long>(seconds / 60), static_cast<long long>(seconds % 60));
  } else {
    std::snprintf(text, sizeof(text), "%lld h %02lld min",
                  static_cast<long long>(seconds / 3600),
                  static_cast<long long>((seconds % 3600) / 60));
  }
  return text;
}

std::string HumanBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, bytes == 1 ? " byte" : " bytes");
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit + 1 < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f %s", value, kUnits[unit]);
  return text;
}

}  // namespace switchboard::cli
