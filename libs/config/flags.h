#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace switchboard::config {

// Command-line flags with environment-variable fallbacks, so that a service
// starts with no flags at all and deployments can configure it either way.
//
// For a flag `name` of a program `program`, the value is taken from, in
// order: `--name=value` or `--name value` on the command line; the
// environment variable SWITCHBOARD_<PROGRAM>_<NAME>; SWITCHBOARD_<NAME>
// (shared by every service, e.g. SWITCHBOARD_DATA_DIR); the default, which
// is the value the bound variable holds when Add is called.
//
//   FlagSet flags("presence");
//   int port = 7104;
//   flags.Add("port", &port, "gRPC port");
//   if (absl::Status s = flags.Parse(argc, argv); !s.ok()) { ... }
//
// Boolean flags also accept `--name` and `--noname`. Durations use Abseil's
// syntax ("30s", "1m30s", "250ms"). `--help` makes Parse return
// kCancelled after printing the flags and their sources to stdout.
// Unknown flags and unparsable values are InvalidArgument naming the flag
// and where its value came from.
class FlagSet {
 public:
  using Environment = std::function<const char*(const char*)>;

  explicit FlagSet(std::string program, Environment environment = ::getenv);

  void Add(absl::string_view name, std::string* value, absl::string_view help);
  void Add(absl::string_view name, int* value, absl::string_view help);
  void Add(absl::string_view name, int64_t* value, absl::string_view help);
  void Add(absl::string_view name, bool* value, absl::string_view help);
  void Add(absl::string_view name, absl::Duration* value,
           absl::string_view help);

  absl::Status Parse(int argc, const char* const* argv);

  // The flags and their defaults, one per line, for --help.
  std::string Usage() const;

 private:
  struct Flag {
    std::string help;
    std::string default_text;
    bool is_bool = false;
    std::function<bool(absl::string_view)> set;
  };
  void AddFlag(absl::string_view name, Flag flag);
  absl::Status Set(const std::string& name, absl::string_view value,
                   absl::string_view source);

  std::string program_;
  Environment environment_;
  std::map<std::string, Flag> flags_;
};

}  // namespace switchboard::config
