// Fuzzes FlagSet::Parse, which reads a service's command line and its
// SWITCHBOARD_* environment. The input is a list of NUL-separated items:
// an item starting with '$' is an environment variable ("$NAME=value"),
// any other item is the next command-line argument. Parse must succeed,
// refuse with INVALID_ARGUMENT, or stop with CANCELLED for --help; and
// whatever it accepted must be accepted again when given back as
// --name=value.

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "libs/config/flags.h"

namespace {

using switchboard::config::FlagSet;

struct Values {
  std::string data_dir = "data";
  int port = 7104;
  int64_t max_bytes = 1 << 20;
  bool kafka = false;
  absl::Duration idle_timeout = absl::Minutes(30);
  std::string fault_point;
};

std::unique_ptr<FlagSet> Flags(Values& v, std::map<std::string, std::string>& env) {
  auto flags = std::make_unique<FlagSet>("presence", [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  flags->Add("data_dir", &v.data_dir, "folder of the database");
  flags->Add("port", &v.port, "gRPC port");
  flags->Add("max_bytes", &v.max_bytes, "largest request");
  flags->Add("kafka", &v.kafka, "publish to Kafka");
  flags->Add("idle_timeout", &v.idle_timeout, "idle sessions close after this");
  flags->Add("fault-point", &v.fault_point, "crash tests");
  return flags;
}

absl::Status Parse(FlagSet& flags, const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"presence"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return flags.Parse(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  for (absl::string_view item : absl::StrSplit(input, '\0')) {
    if (!item.empty() && item[0] == '$') {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(item.substr(1), absl::MaxSplits('=', 1));
      env[kv.first] = kv.second;
    } else {
      args.emplace_back(item);
    }
  }

  Values values;
  std::unique_ptr<FlagSet> flags = Flags(values, env);
  absl::Status status = Parse(*flags, args);
  if (!status.ok()) {
    if (status.code() != absl::StatusCode::kInvalidArgument &&
        status.code() != absl::StatusCode::kCancelled) {
      abort();
    }
    return 0;
  }
  if (flags->Usage().empty()) abort();

  // What was accepted, given back on a command line, is accepted again and
  // means the same.
  Values again;
  std::map<std::string, std::string> no_env;
  std::unique_ptr<FlagSet> check = Flags(again, no_env);
  absl::Status reparsed = Parse(
      *check, {absl::StrCat("--data_dir=", values.data_dir), absl::StrCat("--port=", values.port),
               absl::StrCat("--max_bytes=", values.max_bytes),
               values.kafka ? "--kafka" : "--nokafka",
               absl::StrCat("--idle_timeout=", absl::FormatDuration(values.idle_timeout)),
               absl::StrCat("--fault-point=", values.fault_point)});
  if (!reparsed.ok() || again.data_dir != values.data_dir || again.port != values.port ||
      again.max_bytes != values.max_bytes || again.kafka != values.kafka ||
      again.fault_point != values.fault_point) {
    abort();
  }
  return 0;
}
