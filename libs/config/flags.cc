#include "libs/config/flags.h"

#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace switchboard::config {
namespace {

std::string EnvName(absl::string_view prefix, absl::string_view name) {
  std::string env = absl::StrCat("SWITCHBOARD_", prefix, prefix.empty() ? "" : "_", name);
  absl::AsciiStrToUpper(&env);
  for (char& c : env) {
    if (c == '-') c = '_';
  }
  return env;
}

bool ParseBool(absl::string_view text, bool* out) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "true" || lower == "1" || lower == "yes") {
    *out = true;
    return true;
  }
  if (lower == "false" || lower == "0" || lower == "no") {
    *out = false;
    return true;
  }
  return false;
}

}  // namespace

FlagSet::FlagSet(std::string program, Environment environment)
    : program_(std::move(program)), environment_(std::move(environment)) {}

void FlagSet::AddFlag(absl::string_view name, Flag flag) {
  flags_[std::string(name)] = std::move(flag);
}

void FlagSet::Add(absl::string_view name, std::string* value,
                  absl::string_view help) {
  AddFlag(name, {std::string(help), *value, false, [value](absl::string_view v) {
                   *value = std::string(v);
                   return true;
                 }});
}

void FlagSet::Add(absl::string_view name, int* value, absl::string_view help) {
  AddFlag(name, {std::string(help), absl::StrCat(*value), false,
                 [value](absl::string_view v) { return absl::SimpleAtoi(v, value); }});
}

void FlagSet::Add(absl::string_view name, int64_t* value,
                  absl::string_view help) {
  AddFlag(name, {std::string(help), absl::StrCat(*value), false,
                 [value](absl::string_view v) { return absl::SimpleAtoi(v, value); }});
}

void FlagSet::Add(absl::string_view name, bool* value, absl::string_view help) {
  AddFlag(name, {std::string(help), *value ? "true" : "false", true,
                 [value](absl::string_view v) { return ParseBool(v, value); }});
}

void FlagSet::Add(absl::string_view name, absl::Duration* value,
                  absl::string_view help) {
  AddFlag(name, {std::string(help), absl::FormatDuration(*value), false,
                 [value](absl::string_view v) {
                   absl::Duration d;
                   if (!absl::ParseDuration(std::string(v), &d) ||
                       d < absl::ZeroDuration()) {
                     return false;
                   }
                   *value = d;
                   return true;
                 }});
}

absl::Status FlagSet::Set(const std::string& name, absl::string_view value,
                          absl::string_view source) {
  auto it = flags_.find(name);
  if (it == flags_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag --", name, " (try --help)"));
  }
  if (!it->second.set(value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid value \"", value, "\" for --", name, " from ", source));
  }
  return absl::OkStatus();
}

absl::Status FlagSet::Parse(int argc, const char* const* argv) {
  std::set<std::string> from_command_line;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(Usage().c_str(), stdout);
      return absl::CancelledError("help requested");
    }
    if (!absl::StartsWith(arg, "--") || arg.size() == 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\"; flags look like --name=value"));
    }
    arg.remove_prefix(2);
    std::string name;
    std::string value;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
    } else {
      name = std::string(arg);
      auto it = flags_.find(name);
      if (it == flags_.end() && absl::StartsWith(name, "no") &&
          flags_.count(name.substr(2)) && flags_[name.substr(2)].is_bool) {
        name = name.substr(2);
        value = "false";
      } else if (it != flags_.end() && it->second.is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value"));
      }
    }
    if (absl::Status s = Set(name, value, "the command line"); !s.ok()) return s;
    from_command_line.insert(name);
  }
  for (const auto& [name, flag] : flags_) {
    if (from_command_line.count(name)) continue;
    for (const std::string& env : {EnvName(program_, name), EnvName("", name)}) {
      if (const char* value = environment_(env.c_str()); value != nullptr) {
        if (absl::Status s = Set(name, value, env); !s.ok()) return s;
        break;
      }
    }
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::string usage = absl::StrCat("Usage: ", program_, " [--flag=value ...]\n");
  for (const auto& [name, flag] : flags_) {
    absl::StrAppend(&usage, "  --", name, "  ", flag.help, " (default \"",
                    flag.default_text, "\"; env ", EnvName(program_, name),
                    " or ", EnvName("", name), ")\n");
  }
  return usage;
}

}  // namespace switchboard::config
